"""Rules over ``.alerts-security.*``: Vigil's alerts are that index's documents.

Elastic's "Potential Buffer Overflow Attack Detected" is a threshold rule over the alerts
of the "Segfault Detected" building block (``kibana.alert.rule.rule_id`` of that rule,
``event.kind:signal``, 100 per ``event.kind`` and ``host.id``). Both run here, in serve's
scheduler (the alert store searched as the index) and in ``vigil scan`` (the scan's
alerts fed to the replay), on segfault lines at and one short of the threshold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vigil.eql.dates import iso_from_millis
from vigil.scheduler.clock import ManualClock
from vigil.scheduler.runner import Scheduler
from vigil.store.alert_index import SIGNAL_ALIASES, alert_event, reads_alerts
from vigil.store.alerts import AlertStore
from vigil.store.events import EventStore, Write
from vigil.store.runs import RunStore

REPO = Path(__file__).resolve().parents[2]
SEGFAULT = "5c81fc9d-1eae-437f-ba07-268472967013"
OVERFLOW = "b7c05aaf-78c2-4558-b069-87fa25973489"
T = 1_780_000_200_000
M = 60_000


def _segfault(ms: int, i: int) -> dict:
    return {
        "@timestamp": iso_from_millis(ms),
        "event": {"dataset": "system.syslog"},
        "data_stream": {"dataset": "system.syslog"},
        "host": {"os": {"type": "linux"}, "id": "host-1", "name": "h1"},
        "process": {"name": "kernel"},
        "message": f"app[{i}]: segfault at 0 ip 00007f0000001000 sp 00007ffd00000000 error 4 in libc.so.6",
    }


def _rules(prebuilt_rules) -> list:
    return [r for r in prebuilt_rules if r.rule_id in (SEGFAULT, OVERFLOW)]


def _serve(tmp_path, prebuilt_rules, n: int) -> list[dict]:
    db = tmp_path / "vigil.db"
    rules = _rules(prebuilt_rules)
    s = Scheduler(rules, EventStore(db), AlertStore(db), RunStore(db), clock=ManualClock(T), workers=1)
    for r in rules:
        s.set_enabled(r.rule_id, True)
    for i in range(n):
        ms = T + M + i * 1000
        s.events.write([Write("logs-system.syslog-default", _segfault(ms, i))], ms)
    for k in (1, 2, 3):
        s.clock.now = T + k * 5 * M
        assert all(run.error is None for run in s.tick())
    return s.alerts.list()


def test_the_alert_store_is_the_alerts_index(prebuilt_rules):
    overflow = next(r for r in prebuilt_rules if r.rule_id == OVERFLOW)
    assert reads_alerts(overflow)
    event = alert_event(
        {"kibana.alert.uuid": "u1", "kibana.alert.rule.name": "R", "kibana.alert.rule.tags": ["a", "b"]}
    )
    assert event.index == ".alerts-security.alerts-default" and event.id == "u1"
    # signal_aad_mapping.json: the legacy names read the kibana.alert.* fields.
    assert event.doc["signal.rule.name"] == "R" and event.doc["signal.rule.tags"] == ["a", "b"]
    assert SIGNAL_ALIASES["signal.status"] == "kibana.alert.workflow_status"


def test_serve_threshold_rule_over_the_alerts_of_a_building_block(tmp_path, prebuilt_rules):
    alerts = _serve(tmp_path, prebuilt_rules, 120)
    by_rule = {}
    for a in alerts:
        by_rule.setdefault(a["kibana.alert.rule.rule_id"], []).append(a)
    # The building block is capped at max_signals (100) per run; the same events again
    # in the next runs give the same alerts.
    assert len(by_rule[SEGFAULT]) == 100
    (overflow,) = by_rule[OVERFLOW]
    result = overflow["kibana.alert.threshold_result"]
    assert result["count"] == 100
    assert result["terms"] == [
        {"field": "event.kind", "value": "signal"},
        {"field": "host.id", "value": "host-1"},
    ]


def test_serve_one_alert_short_of_the_threshold(tmp_path, prebuilt_rules):
    alerts = _serve(tmp_path, prebuilt_rules, 99)
    assert {a["kibana.alert.rule.rule_id"] for a in alerts} == {SEGFAULT}


def _scan(tmp_path, n: int) -> list[dict]:
    shared = REPO.parent / "shared" / "detection-rules"
    events = tmp_path / "segfaults.ndjson"
    events.write_text("".join(json.dumps(_segfault(T + i * 1000, i)) + "\n" for i in range(n)))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vigil.cli",
            "scan",
            "--rules",
            str(shared / "rules_building_block" / "execution_linux_segfault.toml"),
            "--rules",
            str(shared / "rules" / "linux" / "privilege_escalation_potential_bufferoverflow_attack.toml"),
            "--index",
            "logs-system.syslog-default",
            "--format",
            "ndjson",
            str(events),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_scan_threshold_rule_over_the_alerts_written_earlier_in_the_scan(tmp_path, prebuilt_rules):
    alerts = _scan(tmp_path, 120)
    overflow = [a for a in alerts if a["kibana.alert.rule.rule_id"] == OVERFLOW]
    assert len(overflow) == 1
    assert overflow[0]["kibana.alert.threshold_result"]["count"] == 120
    assert len(_scan(tmp_path, 99)) == 99  # the building block's alerts only


DISCOVERY_NEW_TERMS = "29ef5686-9b93-433e-91b5-683911094698"  # over alerts: host.id, user.id, command line


def _discovery_alert(uuid: str, ingested_ms: int, command_line: str) -> dict:
    """An alert of one of the discovery rules the new terms rule reads, as the store keeps it."""
    return {
        "@timestamp": iso_from_millis(ingested_ms + 60_000),
        "kibana.alert.uuid": uuid,
        "kibana.alert.rule.rule_id": "d68e95ad-1c82-4074-a12a-125fe10ac8ba",
        "kibana.alert.rule.name": "discovery",
        "event": {"kind": "signal", "ingested": iso_from_millis(ingested_ms)},
        "host": {"os": {"type": "windows"}, "id": "host-1"},
        "user": {"id": "S-1-5-21-1"},
        "process": {"command_line": command_line},
    }


def test_serve_new_terms_rule_over_alerts_keeps_its_history_across_a_restart(tmp_path, prebuilt_rules):
    rule = next(r for r in prebuilt_rules if r.rule_id == DISCOVERY_NEW_TERMS)
    db = tmp_path / "vigil.db"
    day = 86_400_000

    def start(now: int) -> Scheduler:
        s = Scheduler([rule], EventStore(db), AlertStore(db), RunStore(db), clock=ManualClock(now), workers=1)
        s.set_enabled(rule.rule_id, True)
        return s

    def tick(s: Scheduler, now: int) -> None:
        s.clock.now = now
        assert all(run.error is None for run in s.tick())

    s = start(T)
    s.alerts.add([_discovery_alert("a1", T + 1 * M, "whoami /all")])
    tick(s, T + 5 * M)
    s.close()
    s = start(T + day)  # a restart: the history comes back from the alert store
    s.alerts.add(
        [
            _discovery_alert("a2", T + day + 1 * M, "whoami /all"),
            _discovery_alert("a3", T + day + 2 * M, "net user"),
        ]
    )
    tick(s, T + day + 5 * M)
    found = s.alerts.list(rule=rule.rule_id)
    # "whoami /all" was seen a day before, inside the 5 days of history: only "net user" is new.
    assert sorted(a["kibana.alert.new_terms"][2] for a in found) == ["net user", "whoami /all"]
    assert [
        a["kibana.alert.new_terms"][2] for a in found if a["kibana.alert.ancestors"][0]["id"] == "a3"
    ] == ["net user"]
