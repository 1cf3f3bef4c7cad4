"""``vigil serve`` over HTTP: Elasticsearch-compatible ingest and Vigil's REST API."""
