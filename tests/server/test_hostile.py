"""``vigil serve`` against hostile events and hostile HTTP, a real server process on 127.0.0.1."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

from test_serve_seed_rule import SEED_ID, STREAM, defend_file_event

from conftest import MIN, REPO, T0

DRACUT = "/usr/lib/dracut/modules.d/99evil/module-setup.sh"
HOSTILE_TIMESTAMPS = [1e30, 1e300, "1234567890123456789012345", "not a date", {"a": 1}, float(2**70)]


def bulk_lines(*pairs) -> bytes:
    return b"".join(json.dumps(a).encode() + b"\n" + json.dumps(d).encode() + b"\n" for a, d in pairs)


def deep(levels: int) -> dict:
    doc: dict = {"leaf": 1}
    for _ in range(levels):
        doc = {"n": doc}
    return doc


def raw(s, request: bytes, timeout: float = 10) -> bytes:
    """Send bytes as they are; the whole answer until the server closes or goes quiet."""
    host, port = s.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and _complete(out):
                    break
        except TimeoutError:
            pass
    return out


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- class 1 and 4: a bad document costs that document only ------------------------------------


def test_hostile_documents_fail_alone_and_the_dracut_module_in_their_batch_still_alerts(make_server):
    s = make_server(None)  # the bundled Dracut Module Creation rule
    s.start()
    s.wait_runs(1)
    s.set_clock(T0 + 2 * MIN)
    evil = defend_file_event(DRACUT, "/bin/cp", T0 + 2 * MIN)
    action = {"create": {"_index": STREAM}}
    pairs = [(action, dict(evil, **{"@timestamp": ts})) for ts in HOSTILE_TIMESTAMPS]
    pairs.append((action, dict(evil, deep=deep(300))))  # 255+ levels: the old store's writer failed
    pairs.append((action, dict(evil, deep=deep(21))))  # past index.mapping.depth.limit (20)
    pairs.append((action, evil))
    status, resp, _ = s.call("POST", "/_bulk", bulk_lines(*pairs), {"Content-Type": "application/x-ndjson"})
    assert status == 200 and resp["errors"] is True
    items = [i["create"] for i in resp["items"]]
    assert [i["status"] for i in items] == [400] * (len(pairs) - 1) + [201]
    assert {i["error"]["type"] for i in items[:-1]} == {"document_parsing_exception"}
    assert "[@timestamp]" in items[0]["error"]["reason"]
    assert "depth [20]" in items[-2]["error"]["reason"]
    assert s.get("/health")["ingest"]["stored"] == 1
    runs = s.advance_and_wait(3 * MIN, 2)  # the 5m run
    assert runs[0]["error"] is None and runs[0]["alerts_written"] == 1
    (alert,) = s.get(f"/api/alerts?rule={SEED_ID}")["alerts"]
    assert alert["file"]["path"] == DRACUT
    assert s.get("/health")["runs"]["failed_runs"] == 0


def test_index_names_are_validated_as_elasticsearch_does_on_every_endpoint(make_server):
    s = make_server([])
    s.start()
    bad = [
        "../../etc",
        "Logs-a",
        "a\x00b",
        "tab\there",
        "_hidden",
        "-x",
        "+x",
        ".",
        "..",
        "a#b",
        "a:b",
        "a" * 256,
    ]
    body = bulk_lines(
        *[({"index": {"_index": name}}, {"x": 1}) for name in bad], ({"index": {"_index": 5}}, {"x": 1})
    )
    status, resp, _ = s.call("POST", "/_bulk", body)
    assert status == 200 and resp["errors"] is True
    items = [i["index"] for i in resp["items"]]
    assert [i["error"]["type"] for i in items[:-1]] == ["invalid_index_name_exception"] * len(bad)
    assert "must be lowercase" in items[1]["error"]["reason"]
    # BulkRequestParser reads a number's text: index "5".
    assert items[-1]["status"] == 201 and items[-1]["_index"] == "5"
    # An array or object where a name goes fails the request, as in Elasticsearch (400, never 500).
    for meta in ({"_index": ["a", "b"]}, {"_index": {"a": 1}}, {"_id": [1]}):
        status, resp, _ = s.call("POST", "/_bulk", bulk_lines(({"index": meta}, {"x": 1})))
        assert status == 400 and "expected a simple value" in resp["error"]["reason"]
    for path in ("/events/Logs-a", "/events/..", "/_x/_doc", "/Up/_doc/1", "/a%00b/_doc"):
        status, resp, _ = s.call("POST", path, b'{"x":1}\n')
        assert status in (400, 404) and status != 500, (path, resp)
        if status == 400:
            assert "invalid_index_name_exception" in json.dumps(resp)
    assert s.get("/health")["ingest"]["stored"] == 1


def test_error_answers_are_bounded(make_server):
    s = make_server([])
    s.start()
    body = b"not json at all, line after line\n" * 150_000  # 5 MB of bad lines
    status, resp, headers = s.call("POST", "/events/logs-a", body)
    assert status == 400 and resp["error_count"] == 150_000 and len(resp["errors"]) == 100
    assert int(headers["Content-Length"]) < 64 * 1024


# --- class 3: bounded before and after authentication -----------------------------------------


def test_the_token_is_checked_before_the_body_is_read_or_inflated(make_server):
    s = make_server([], ["--token", "a-long-enough-token-1"])
    s.start()
    bomb = gzip.compress(b"\0" * (300 * 1024 * 1024), 9)  # 300 MB once inflated
    before = rss_kb(s.proc.pid)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    status, _, hdrs = s.call("POST", "/_bulk", bomb, dict(headers, Authorization="Bearer wrong"))
    assert status == 401 and hdrs["Connection"] == "close"
    status, resp, _ = s.call(
        "POST", "/_bulk", bomb, dict(headers, Authorization="Bearer a-long-enough-token-1")
    )
    assert status == 413 and resp["error"]["type"] == "content_too_long_exception"
    assert rss_kb(s.proc.pid) - before < 150 * 1024  # never the 300 MB
    # Non-ASCII credentials are a plain 401, not a dropped connection.
    for auth in (b"Bearer \xff\xfe", b"Basic " + base64.b64encode("x:\u00e9".encode())):
        answer = raw(s, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + auth + b"\r\n\r\n")
        assert status_of(answer) == 401


def test_malformed_framing_is_refused_as_a_hardened_server_does(make_server):
    s = make_server([])
    s.start()
    head = b"POST /events/logs-a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    smuggle = head + b'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"a":1}\r\n0\r\n\r\n'
    assert status_of(raw(s, smuggle)) == 400
    assert status_of(raw(s, head + b"Content-Length: -1\r\n\r\n{}")) == 400
    assert status_of(raw(s, head + b"Content-Length: 1, 2\r\n\r\n{}")) == 400
    assert status_of(raw(s, head + b"Transfer-Encoding: gzip\r\n\r\n")) == 501
    # A chunk larger than the cap is refused from its size line, before any of it is read.
    assert status_of(raw(s, head + b"Transfer-Encoding: chunked\r\n\r\n10000000\r\n")) == 413
    assert status_of(raw(s, head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")) == 400
    ok = head + b'Transfer-Encoding: chunked\r\n\r\n7\r\n{"a":1}\r\n0\r\n\r\n'
    assert status_of(raw(s, ok)) == 200
    deflated = zlib.compress(b'{"a":2}\n')
    status, resp, _ = s.call("POST", "/events/logs-a", deflated, {"Content-Encoding": "deflate"})
    assert status == 200 and resp["accepted"] == 1
    assert s.get("/health")["ingest"]["stored"] == 2


def test_connections_are_bounded_and_idle_ones_closed(make_server):
    s = make_server([], ["--max-connections", "4", "--idle-timeout", "2s"])
    s.start()
    host, port = s.url.removeprefix("http://").rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(4)]
    idle[0].sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # half a request head
    time.sleep(0.3)
    extra = socket.create_connection((host, int(port)), timeout=10)
    assert status_of(extra.recv(4096)) == 503
    extra.close()
    t0 = time.monotonic()
    for sock in idle:
        assert sock.recv(4096) == b""  # closed by the server
        sock.close()
    assert time.monotonic() - t0 < 6
    health = s.get("/health")["http"]
    assert health["refused_connections"] == 1 and health["max_connections"] == 4


# --- class 5: cross-site requests, DNS rebinding, tokens ----------------------------------------


def test_rebinding_and_cross_site_requests_are_refused(make_server):
    s = make_server([{"rule_id": "r", "name": "R", "query": 'any where event.action == "x"'}])
    s.start()
    port = s.url.rsplit(":", 1)[1]
    assert s.call("GET", "/api/alerts", headers={"Host": "rebind.attacker.example"})[0] == 403
    assert s.call("GET", "/api/alerts", headers={"Host": f"rebind.attacker.example:{port}"})[0] == 403
    assert s.call("GET", "/api/alerts", headers={"Host": f"localhost:{port}"})[0] == 200
    assert s.call("GET", "/api/alerts", headers={"Host": f"127.0.0.1:{int(port) + 1}"})[0] == 403
    # What a page on another site can send without a preflight: refused, nothing changes.
    for headers in (
        {"Content-Type": "text/plain", "Origin": "http://evil.example"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/json", "Origin": "http://evil.example"},
        {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
    ):
        assert s.call("POST", "/api/rules/r/disable", b"{}", headers)[0] in (403, 406)
        assert s.call("POST", "/events/logs-a", b'{"x":1}\n', headers)[0] in (403, 406)
    assert s.call("POST", "/api/rules/r/disable", None, {"Origin": "http://evil.example"})[0] == 403
    assert s.get("/api/rules")["rules"][0]["enabled"] is True
    assert s.get("/health")["ingest"]["stored"] == 0
    same = {"Content-Type": "application/json", "Origin": s.url, "Sec-Fetch-Site": "same-origin"}
    assert s.call("POST", "/api/rules/r/disable", b"{}", same)[0] == 200


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vigil.cli", "serve", "--data", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(REPO / "src")},
    )


def test_weak_tokens_are_refused_off_loopback(tmp_path):
    # Refused before anything listens: no socket is opened off loopback.
    for token, why in (
        ("x", "at least 16"),
        ("fifteen-chars-x", "at least 16"),
        ("has a space in it 123", "spaces"),
    ):
        proc = _serve(tmp_path, "--listen", "0.0.0.0:0", "--token", token)
        assert proc.returncode == 2 and why in proc.stderr and "Traceback" not in proc.stderr


def test_a_server_error_carries_no_python_text(tmp_path, monkeypatch):
    import threading

    from vigil.scheduler.clock import ManualClock
    from vigil.scheduler.runner import Scheduler
    from vigil.server import app
    from vigil.server.guard import allowed_hosts
    from vigil.store.alerts import AlertStore
    from vigil.store.events import EventStore
    from vigil.store.runs import RunStore

    db = tmp_path / "v.db"
    events, alerts = EventStore(db), AlertStore(db)
    sched = Scheduler([], events, alerts, RunStore(db), clock=ManualClock(T0))
    svc = app.Service(events, alerts, sched, hosts=allowed_hosts("127.0.0.1"))
    server = app.make_server(svc, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def broken(*_args, **_kwargs):
        raise RuntimeError("secret detail from /etc/vigil")

    monkeypatch.setattr(app, "route", broken)
    try:
        port = server.server_address[1]

        class S:
            url = f"http://127.0.0.1:{port}"

        answer = raw(S, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert status_of(answer) == 500
        assert b"secret" not in answer and b"RuntimeError" not in answer and b"Traceback" not in answer
    finally:
        server.shutdown()
        server.server_close()
        sched.close()
