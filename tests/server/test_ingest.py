"""Ingest over real HTTP: Elasticsearch's _bulk as shippers send it, NDJSON, probes, auth."""

from __future__ import annotations

import base64
import gzip
import json
import sqlite3
import subprocess
import sys

from conftest import REPO, action_rule

RULES = [action_rule("r1", "dracut", name="R1")]

# What Filebeat 8 sends to /_bulk: a create action naming its data stream, then the
# event; every line ends with \n (gzip-compressed by default, compression_level 1).
FILEBEAT_BODY = (
    b'{"create":{"_index":"filebeat-8.11.0"}}\n'
    b'{"@timestamp":"2026-11-28T06:00:00.000Z","agent":{"type":"filebeat","version":"8.11.0",'
    b'"ephemeral_id":"1b7b5a5e","id":"a1f7","name":"web-1"},"ecs":{"version":"8.0.0"},'
    b'"host":{"name":"web-1"},"log":{"offset":0,"file":{"path":"/var/log/app.log"}},'
    b'"message":"hello","input":{"type":"filestream"},"event":{"action":"dracut"}}\n'
    b'{"create":{"_index":"filebeat-8.11.0"}}\n'
    b'{"@timestamp":"2026-11-28T06:00:01.000Z","message":"second","host":{"name":"web-1"}}\n'
)


def test_probes_answer_like_elasticsearch(make_server):
    s = make_server(RULES)
    s.start()
    status, body, headers = s.call("GET", "/")
    assert status == 200 and body["version"]["number"].startswith("8.")
    assert headers["X-Elastic-Product"] == "Elasticsearch"  # the 8.x clients refuse without it
    assert s.call("HEAD", "/")[0] == 200
    assert s.get("/_license")["license"]["status"] == "active"
    assert s.get("/_xpack")["features"]["ilm"]["available"] is True
    assert s.call("HEAD", "/_index_template/filebeat-8.11.0")[0] == 200
    assert s.get("/_ilm/policy/filebeat")["filebeat"]["policy"]
    assert s.call("PUT", "/_index_template/filebeat-8.11.0", {"index_patterns": ["filebeat-*"]})[1] == {
        "acknowledged": True
    }


def test_filebeat_bulk_body_accepted_gzip_and_plain(make_server):
    s = make_server(RULES)
    s.start()
    # Headers and query string as libbeat's bulk request carries them.
    beat = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-Elastic-Product-Origin": "beats",
        "User-Agent": "Go-http-client/1.1",
    }
    for body, headers in (
        (FILEBEAT_BODY, beat),
        (gzip.compress(FILEBEAT_BODY), dict(beat, **{"Content-Encoding": "gzip"})),
    ):
        status, resp, _ = s.call(
            "POST", "/_bulk?filter_path=errors,items.*.error,items.*.status", body, headers
        )
        assert status == 200
        assert resp["errors"] is False and isinstance(resp["took"], int)
        assert [list(i) for i in resp["items"]] == [["create"], ["create"]]
        assert all(
            i["create"]["status"] == 201 and i["create"]["_index"] == "filebeat-8.11.0" for i in resp["items"]
        )
    assert s.get("/health")["ingest"]["stored"] == 4
    db = sqlite3.connect(s.data / "vigil.db")
    docs = [r[0] for r in db.execute("SELECT doc FROM events ORDER BY seq")]
    assert all('"ingested":"20' in d for d in docs)  # event.ingested stamped on arrival


def test_bulk_item_errors_and_request_errors(make_server):
    s = make_server(RULES)
    s.start()
    body = (
        b'{"index":{"_index":"logs-a","_id":"1"}}\n{"a":1}\n'
        b'{"create":{"_index":"logs-a","_id":"1"}}\n{"a":2}\n'  # exists: conflict
        b'{"index":{"_index":"logs-a"}}\n{"a":\n'  # broken source
        b'{"index":{}}\n{"a":3}\n'  # no index anywhere
        b'{"delete":{"_index":"logs-a","_id":"1"}}\n'
    )
    status, resp, _ = s.call("POST", "/_bulk", body)
    assert status == 200 and resp["errors"] is True
    statuses = [next(iter(i.values()))["status"] for i in resp["items"]]
    assert statuses == [201, 409, 400, 400, 400]
    assert resp["items"][1]["create"]["error"]["type"] == "version_conflict_engine_exception"
    assert resp["items"][2]["index"]["error"]["type"] == "document_parsing_exception"
    assert s.get("/health")["ingest"]["stored"] == 1
    # Index from the path; a malformed action line fails the whole request, nothing stored.
    status, resp, _ = s.call("POST", "/logs-b/_bulk", b'{"index":{}}\n{"x":1}\n')
    assert status == 200 and resp["items"][0]["index"]["_index"] == "logs-b"
    status, resp, _ = s.call("POST", "/_bulk", b'{"index":{"_index":"logs-a"}}\n{"x":1}\nnot json\n{"y":2}\n')
    assert status == 400 and resp["error"]["type"] == "x_content_parse_exception"
    assert s.get("/health")["ingest"]["stored"] == 2


def test_ndjson_all_or_nothing_with_line_numbers(make_server):
    s = make_server(RULES)
    s.start()
    status, resp, _ = s.call("POST", "/events/logs-x", b'{"a":1}\n{"a":\n[1]\n')
    assert status == 400 and resp["accepted"] == 0
    assert [e["line"] for e in resp["errors"]] == [2, 3]
    assert s.get("/health")["ingest"]["stored"] == 0
    assert s.send("logs-x", [{"a": 1}, {"a": 2}])["accepted"] == 2


def test_token_required_and_accepted_forms(make_server):
    s = make_server(RULES, ["--token", "s3cret"])
    s.start()
    assert s.call("GET", "/health")[0] == 401
    assert s.call("GET", "/health", headers={"Authorization": "Bearer nope"})[0] == 401
    assert s.call("GET", "/health", headers={"Authorization": "Bearer s3cret"})[0] == 200
    basic = base64.b64encode(b"elastic:s3cret").decode()
    assert s.call("GET", "/", headers={"Authorization": f"Basic {basic}"})[0] == 200
    assert s.call("GET", "/", headers={"Authorization": "ApiKey s3cret"})[0] == 200


def test_token_from_the_environment(make_server):
    s = make_server(RULES)
    s.env_extra = {"VIGIL_TOKEN": "from-env"}
    s.start()
    assert s.call("GET", "/health")[0] == 401
    assert s.call("GET", "/health", headers={"Authorization": "Bearer from-env"})[0] == 200
    assert "from-env" not in " ".join(s.proc.args)


def test_refuses_to_listen_off_loopback_without_token(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "serve", "--listen", "0.0.0.0:0", "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 2
    assert "without --token" in proc.stderr and "Traceback" not in proc.stderr


def test_ipv6_loopback_and_unknown_routes(make_server):
    s = make_server(RULES)
    s.extra = ["--listen", "[::1]:0"]
    s.start()
    assert s.url.startswith("http://[::1]:")
    assert s.get("/health")["status"] == "ok"
    status, body, _ = s.call("GET", "/api/nothing")
    assert status == 404 and body["error"]["type"] == "not_found"
    status, body, _ = s.call("POST", "/api/alerts/nope/status", b"not json")
    assert status == 400
    status, body, _ = s.call("POST", "/_bulk", gzip.compress(b"x")[:5], {"Content-Encoding": "gzip"})
    assert status == 400 and body["error"]["type"] == "parse_exception"


def test_startup_line_in_both_formats(make_server):
    s = make_server(RULES)
    s.start()  # text by default, even into a pipe: scripts read the URL off it
    assert s.banner.startswith("vigil serve: listening on http://127.0.0.1:") and "1 runnable" in s.banner
    s.stop()
    s.extra = ["--format", "ndjson"]
    s.start()
    facts = json.loads(s.banner)
    assert facts["listening"] == s.url and facts["rules"] == facts["runnable"] == 1
