"""SIGKILL the server mid-ingest and mid-run: nothing accepted is lost, nothing doubled."""

from __future__ import annotations

import http.client
import json
import sqlite3
import threading
import time

from conftest import MIN, T0, action_rule
from vigil.store.events import iso_millis


def bulk_body(batch: int, n: int) -> bytes:
    lines = []
    for i in range(n):
        lines.append(json.dumps({"create": {"_index": "logs-a", "_id": f"b{batch}-{i}"}}))
        lines.append(json.dumps({"@timestamp": iso_millis(T0), "event": {"action": "x"}, "n": i}))
    return ("\n".join(lines) + "\n").encode()


def stored_ids(s) -> list[str]:
    db = sqlite3.connect(s.data / "vigil.db")
    try:
        return [r[0] for r in db.execute("SELECT id FROM events")]
    finally:
        db.close()


def test_kill_during_ingest_loses_no_acknowledged_event(make_server):
    s = make_server([action_rule("r", "nothing", name="R")])
    s.start()
    acked: list[int] = []
    stop = threading.Event()

    def ship() -> None:
        batch = 0
        while not stop.is_set():
            try:
                status, resp, _ = s.call("POST", "/_bulk", bulk_body(batch, 200))
            except (OSError, http.client.HTTPException):
                return  # the server died mid-request: this batch was never acknowledged
            if status == 200 and not resp["errors"]:
                acked.append(batch)
            batch += 1

    t = threading.Thread(target=ship)
    t.start()
    while len(acked) < 5:
        time.sleep(0.01)
    s.kill()
    stop.set()
    t.join()
    ids = stored_ids(s)
    assert len(ids) == len(set(ids))
    for batch in acked:
        assert {f"b{batch}-{i}" for i in range(200)} <= set(ids)
    # Shippers retry what was not acknowledged; everything acknowledged comes back as a conflict.
    s.start()
    last = max(acked) + 2
    for batch in range(last + 1):
        status, resp, _ = s.call("POST", "/_bulk", bulk_body(batch, 200))
        codes = {i["create"]["status"] for i in resp["items"]}
        assert codes <= {201, 409}
        if batch in acked:
            assert codes == {409}
    ids = stored_ids(s)
    assert len(ids) == len(set(ids)) == 200 * (last + 1)


def test_kill_during_rule_run_repeats_it_without_doubles(make_server):
    n = 20_000
    s = make_server([action_rule("r", "x", name="R", max_signals=100_000)])
    s.start()
    s.wait_runs(1)
    lines = []
    for i in range(n):
        lines.append(b'{"index":{"_index":"logs-a","_id":"e%d"}}' % i)
        lines.append(b'{"@timestamp":"%s","event":{"action":"x"}}' % iso_millis(T0 + i).encode())
    status, resp, _ = s.call("POST", "/_bulk", b"\n".join(lines) + b"\n")
    assert status == 200 and not resp["errors"]
    s.set_clock(T0 + 5 * MIN)
    deadline = time.monotonic() + 15
    while not s.get("/health")["runs"]["running"]:
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.01)
    s.kill()  # in the middle of the run
    db = sqlite3.connect(s.data / "vigil.db")
    runs_before = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    alerts_before = db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
    db.close()
    assert runs_before == 1  # the killed run is not recorded: it will be repeated
    assert alerts_before in (0, n)  # alerts of a run are written in one transaction
    s.start()
    deadline = time.monotonic() + 30
    while not [r for r in s.runs() if r["window_to_ms"] == T0 + 5 * MIN]:
        assert time.monotonic() < deadline, "the run was not repeated"
        time.sleep(0.05)
    (repeated,) = [r for r in s.runs() if r["window_to_ms"] == T0 + 5 * MIN]
    assert repeated["matches"] == n and repeated["alerts_written"] == n - alerts_before
    db = sqlite3.connect(s.data / "vigil.db")
    ancestors = [
        json.loads(d)["kibana.alert.ancestors"][0]["id"] for (d,) in db.execute("SELECT doc FROM alerts")
    ]
    db.close()
    # Every match alerted exactly once: none lost, none doubled.
    assert sorted(ancestors) == sorted(f"e{i}" for i in range(n))
