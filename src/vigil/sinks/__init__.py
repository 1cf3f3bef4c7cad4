"""Where alerts go: NDJSON lines, a table for people, the embedded alert store.

A sink only writes; it never reads events or runs rules.
"""

from vigil.sinks.ndjson import NdjsonSink
from vigil.sinks.store import StoreSink
from vigil.sinks.table import AlertTable, alert_summary

__all__ = ["AlertTable", "NdjsonSink", "StoreSink", "alert_summary"]
