"""The bundled seed rule (Dracut Module Creation) served end to end: _bulk in, alerts out.

The rule runs every 5m over ``now-9m`` on ``event.ingested``: each window overlaps the
previous one by 4m, as in Kibana, so every event is searched twice and must alert once.
"""

from __future__ import annotations

import json
import time

from conftest import MIN, T0
from vigil.cli import main
from vigil.server.client import Client
from vigil.store.events import iso_millis

SEED_ID = "dc765fb2-0c99-4e57-8c11-dafdf1992b66"
STREAM = "logs-endpoint.events.file-default"  # where Elastic Defend writes file events


def defend_file_event(path: str, executable: str, ts_ms: int, host: str = "web-1", **extra) -> dict:
    """A file creation shaped as Elastic Defend sends it (see conformance/elastic-defend)."""
    name = path.rsplit("/", 1)[-1]
    doc = {
        "@timestamp": iso_millis(ts_ms),
        "agent": {"type": "endpoint", "version": "8.15.1"},
        "data_stream": {"namespace": "default", "type": "logs", "dataset": "endpoint.events.file"},
        "event": {
            "kind": "event",
            "module": "endpoint",
            "action": "creation",
            "category": ["file"],
            "type": ["creation"],
            "dataset": "endpoint.events.file",
        },
        "file": {
            "path": path,
            "name": name,
            **({"extension": name.rsplit(".", 1)[1]} if "." in name else {}),
        },
        "host": {"name": host, "os": {"type": "linux", "family": "debian", "name": "Linux"}},
        "process": {"executable": executable, "name": executable.rsplit("/", 1)[-1], "pid": 4242},
        "user": {"name": "root", "id": "0"},
        "message": "Endpoint file event",
    }
    doc.update(extra)
    return doc


def lines(out: str) -> list[dict]:
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_seed_rule_alerts_once_and_respects_its_exclusions(make_server, capsys):
    s = make_server(None)  # no --rules: the bundled rules
    s.start()
    s.wait_runs(1)
    s.set_clock(T0 + 2 * MIN)
    bad = defend_file_event("/usr/lib/dracut/modules.d/99evil/module-setup.sh", "/usr/bin/vi", T0 + 2 * MIN)
    s.bulk(
        STREAM,
        [
            bad,
            # The rule's own exclusions: a package manager, an editor swap file, another folder.
            defend_file_event(
                "/usr/lib/dracut/modules.d/90pkg/module-setup.sh", "/usr/bin/dpkg", T0 + 2 * MIN
            ),
            defend_file_event(
                "/lib/dracut/modules.d/99evil/.module-setup.sh.swp", "/usr/bin/vi", T0 + 2 * MIN
            ),
            defend_file_event("/etc/dracut.conf.d/evil.conf", "/usr/bin/vi", T0 + 2 * MIN),
        ],
    )
    # The same creation in an index the rule does not read raises nothing.
    s.bulk("logs-other-default", [bad])
    runs = s.advance_and_wait(3 * MIN, 2)  # T0+5m: window [T0-4m, T0+5m]
    assert runs[0]["rule_id"] == SEED_ID
    assert runs[0]["events_searched"] == 4 and runs[0]["matches"] == 1 and runs[0]["alerts_written"] == 1
    (alert,) = s.get("/api/alerts")["alerts"]
    assert alert["kibana.alert.rule.name"] == "Dracut Module Creation"
    assert alert["kibana.alert.rule.rule_id"] == SEED_ID
    assert alert["kibana.alert.original_time"] == iso_millis(T0 + 2 * MIN)
    assert alert["kibana.alert.ancestors"][0]["index"] == STREAM
    assert alert["file"]["path"] == bad["file"]["path"]
    # The next run (T0+10m, window [T0+1m, T0+10m]) searches the event again: no second alert.
    runs = s.advance_and_wait(5 * MIN, 3)
    assert runs[0]["matches"] == 1 and runs[0]["alerts_written"] == 0
    assert s.get("/health")["alerts"] == 1

    # The CLI against the running server.
    assert main(["alerts", "list", "--server", s.url, "--format", "ndjson"]) == 0
    assert [a["kibana.alert.uuid"] for a in lines(capsys.readouterr().out)] == [alert["kibana.alert.uuid"]]
    assert main(["rules", "list", "--server", s.url, "--format", "ndjson"]) == 0
    (row,) = lines(capsys.readouterr().out)
    assert row["rule_id"] == SEED_ID and row["runnable"] is True and row["from"] == "now-9m"
    rules = Client(s.url).rules()
    assert rules[0]["type"] == "eql" and rules[0]["last_run_ms"] == T0 + 10 * MIN


def test_now_minus_9m_every_5m_never_doubles_over_half_an_hour(make_server):
    s = make_server(None)
    s.start()
    s.wait_runs(1)
    sent = 0
    expected_runs = 1
    for minute in range(1, 31):
        s.set_clock(T0 + minute * MIN)
        if minute % 5 == 0:
            expected_runs += 1
            s.wait_runs(expected_runs)  # the run at this minute, before more events arrive
        path = f"/usr/lib/dracut/modules.d/{minute:02d}x/module-setup.sh"
        s.bulk(STREAM, [defend_file_event(path, "/tmp/.x/dropper", T0 + minute * MIN)])
        sent += 1
    s.set_clock(T0 + 35 * MIN)
    runs = s.wait_runs(expected_runs + 1)
    assert not any(r["gap_ms"] or r["error"] for r in runs)
    assert sum(r["alerts_written"] for r in runs) == sent == s.get("/health")["alerts"]
    # The 4m look-back: events searched twice, matched twice, alerted once.
    assert sum(r["matches"] for r in runs) > sent
    paths = [a["file"]["path"] for a in s.get("/api/alerts?limit=100")["alerts"]]
    assert len(paths) == len(set(paths)) == sent


def test_short_intervals_on_the_real_clock(make_server):
    # 5m every / now-9m look-back, scaled down to 1s / now-1800ms, on the wall clock.
    rule = {
        "rule_id": "fast",
        "name": "Fast",
        "query": 'file where event.action == "creation" and file.path like "/usr/lib/dracut/*"',
        "interval": "1s",
        "from_": "now-1800ms",
    }
    s = make_server([rule], real_clock=True)
    s.start()
    n = 25
    for i in range(n):
        path = f"/usr/lib/dracut/modules.d/{i:02d}/x.sh"
        s.bulk(
            "logs-endpoint.events.file-default", [defend_file_event(path, "/bin/sh", int(time.time() * 1000))]
        )
        time.sleep(0.1)
    deadline = time.monotonic() + 20
    while s.get("/health")["alerts"] < n and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.5)  # two more runs: the look-back searches the last events again
    runs = s.runs()
    assert s.get("/health")["alerts"] == n
    assert sum(r["alerts_written"] for r in runs) == n
    assert sum(r["matches"] for r in runs) > n  # overlapping windows did see events twice


def test_raw_vendor_events_shipped_over_http_are_normalized_and_rerouted(make_server, shared):
    """Raw SentinelOne Cloud Funnel and legacy Endgame events become the ECS documents their
    Elastic integrations index, in those integrations' data streams, so the seed rule's
    ``logs-sentinel_one_cloud_funnel.*`` and ``endgame-*`` patterns read them."""
    from pathlib import Path

    data = Path(__file__).parents[1] / "events" / "data"
    s1 = [json.loads(x) for x in (data / "sentinelone-linux-file.ndjson").read_text().splitlines() if x]
    legacy = [json.loads(x) for x in (data / "endgame-legacy.ndjson").read_text().splitlines() if x]
    s = make_server(None)
    s.start()
    s.wait_runs(1)
    s.set_clock(T0 + 2 * MIN)
    resp = s.bulk("sentinelone-raw", s1)
    assert {item["create"]["_index"] for item in resp["items"]} == {
        "logs-sentinel_one_cloud_funnel.event-default"
    }
    s.send("endgame-raw", legacy)
    runs = s.advance_and_wait(3 * MIN, 2)
    assert runs[0]["alerts_written"] == 2
    alerts = s.get("/api/alerts")["alerts"]
    assert sorted(a["kibana.alert.ancestors"][0]["index"] for a in alerts) == [
        "endgame-3.0.0",
        "logs-sentinel_one_cloud_funnel.event-default",
    ]
