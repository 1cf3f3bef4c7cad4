"""Elastic's prebuilt ES|QL rules on their schedule in ``vigil serve``'s scheduler: the same
alerts the scan's replay gives (rule_types/esql/ in Kibana), each document alerted once
across overlapping look-backs."""

from __future__ import annotations

from vigil.scheduler.clock import ManualClock
from vigil.scheduler.runner import Scheduler
from vigil.store.alerts import AlertStore
from vigil.store.events import EventStore, Write, iso_millis
from vigil.store.runs import RunStore

BEDROCK_PHANTOM = "71159cad-f8b3-4b3c-ac6e-9cab05594670"  # non-aggregating
WIDESPREAD_MALWARE = "28371aa1-14ed-46cf-ab5b-2fc7d1942278"  # aggregating, count_distinct >= 3
T = 1_780_000_000_000
M = 60_000


def _scheduler(tmp_path, rules, clock):
    db = tmp_path / "v.db"
    return Scheduler(rules, EventStore(db), AlertStore(db), RunStore(db), clock=clock)


def _iam(target: str, ts: int) -> dict:
    return {
        "@timestamp": iso_millis(ts),
        "event": {"provider": "iam.amazonaws.com", "action": "CreateAccessKey", "outcome": "success"},
        "user": {"target": {"name": target}, "name": "attacker"},
        "aws": {"cloudtrail": {"user_identity": {"arn": "arn:aws:iam::1:user/x"}}},
    }


def _malware(host: str, ts: int) -> dict:
    return {
        "@timestamp": iso_millis(ts),
        "event": {"code": "malicious_file"},
        "rule": {"name": "EICAR"},
        "host": {"id": host},
    }


def test_non_aggregating_rule_alerts_each_document_once_over_overlapping_runs(tmp_path, prebuilt_rules):
    rule = next(r for r in prebuilt_rules if r.rule_id == BEDROCK_PHANTOM)
    clock = ManualClock(T)
    s = _scheduler(tmp_path, [rule], clock)
    s.events.write([Write("logs-aws.cloudtrail-default", _iam("BedrockAPIKey-abc", T - M), id="a")], T - M)
    s.events.write([Write("logs-aws.cloudtrail-default", _iam("alice", T - M), id="b")], T - M)
    s.events.write([Write("logs-okta.system-default", _iam("BedrockAPIKey-x", T - M), id="c")], T - M)
    (first,) = s.tick()
    assert first.error is None and first.alerts_written == 1
    for k in range(1, 4):  # from now-30m every 5m: the next runs see the document again
        clock.now = T + k * 5 * M
        (run,) = s.tick()
        assert run.error is None and run.alerts_written == 0
    (alert,) = s.alerts.between(0, 2**62)
    assert alert["user.target.name"] == "BedrockAPIKey-abc"
    assert alert["kibana.alert.rule.rule_id"] == BEDROCK_PHANTOM


def test_aggregating_rule_alerts_on_the_returned_columns(tmp_path, prebuilt_rules):
    rule = next(r for r in prebuilt_rules if r.rule_id == WIDESPREAD_MALWARE)
    clock = ManualClock(T)
    s = _scheduler(tmp_path, [rule], clock)
    s.events.write(
        [Write("logs-endpoint.alerts-default", _malware(h, T - M), id=h) for h in ("h1", "h2")], T - M
    )
    (run,) = s.tick()
    assert run.error is None and run.alerts_written == 0  # two hosts: not widespread
    s.events.write([Write("logs-endpoint.alerts-default", _malware("h3", T + M), id="h3")], T + M)
    clock.now = T + 5 * M
    (run,) = s.tick()
    assert run.error is None and run.alerts_written == 1
    (alert,) = s.alerts.between(0, 2**62)
    assert alert["Esql.host_id_count_distinct"] == 3 and "host" not in alert
