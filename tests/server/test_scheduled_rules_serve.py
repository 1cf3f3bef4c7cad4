"""A real ``vigil serve`` running Elastic's prebuilt threshold rule and a prebuilt custom query
rule with alert suppression on their schedules, killed and restarted between runs.

What must survive the restart is in the store: the threshold rule's signal history
(Kibana's ``threshold/build_signal_history.ts``, task state there) and the open alert a
suppressed group updates (rule_registry's ``alertWithSuppression``).
"""

from __future__ import annotations

import time
from pathlib import Path

from conftest import MIN, T0

SHARED = Path(__file__).resolve().parents[3] / "shared" / "detection-rules" / "rules"
THRESHOLD = SHARED / "cross-platform" / "guided_onboarding_sample_rule.toml"  # host.name >= 1, 30m
S3 = SHARED / "integrations" / "aws" / "credential_access_credentials_in_s3_bucket.toml"  # 5m


def _runs(s, rule_id: str) -> list[dict]:
    return s.get(f"/api/runs?rule={rule_id}&limit=1000")["runs"]


def _wait(s, rule_id: str, n: int, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _runs(s, rule_id)
        if len(runs) >= n:
            return runs
        time.sleep(0.05)
    raise AssertionError(f"{rule_id}: expected {n} runs, have {_runs(s, rule_id)}")


def _alerts(s, rule_id: str) -> list[dict]:
    return s.get(f"/api/alerts?rule={rule_id}")["alerts"]


def _s3_event(ip: str) -> dict:
    return {
        "@timestamp": "2026-05-28T00:00:00Z",
        "data_stream": {"dataset": "aws.cloudtrail"},
        "event": {"provider": "s3.amazonaws.com", "action": "GetObject", "outcome": "success"},
        "aws": {
            "cloudtrail": {
                "flattened": {"request_parameters": {"key": "/home/u/.aws/credentials"}},
                "user_identity": {"type": "IAMUser"},
            }
        },
        "source": {"ip": ip},
        "cloud": {"account": {"id": "123456789012"}},
    }


def test_threshold_history_and_suppression_survive_a_restart(make_server, tmp_path, shared):
    s = make_server([])
    for path in (THRESHOLD, S3):
        (s.rules_dir / path.name).write_text(path.read_text())
    s.start()
    rules = {r["name"]: r["rule_id"] for r in s.get("/api/rules")["rules"]}
    threshold, s3 = rules["My First Rule"], rules["AWS S3 Credential File Retrieved from Bucket"]
    for rid in (threshold, s3):
        assert s.call("POST", f"/api/rules/{rid}/enable", {})[0] == 200
    _wait(s, s3, 1)
    _wait(s, threshold, 1)  # both first run at T0

    s.set_clock(T0 + 1 * MIN)
    s.bulk("logs-aws.cloudtrail-default", [_s3_event("10.0.0.1")])
    s.set_clock(T0 + 5 * MIN)
    _wait(s, s3, 2)
    (first,) = _alerts(s, s3)
    assert first["kibana.alert.suppression.docs_count"] == 0

    s.kill()  # no clean shutdown: what suppression needs is in the store
    s.start()
    s.set_clock(T0 + 7 * MIN)
    s.bulk("logs-aws.cloudtrail-default", [_s3_event("10.0.0.1")])
    s.set_clock(T0 + 10 * MIN)
    _wait(s, s3, 3)
    (updated,) = _alerts(s, s3)
    assert updated["kibana.alert.uuid"] == first["kibana.alert.uuid"]
    assert updated["kibana.alert.suppression.docs_count"] == 1
    assert updated["kibana.alert.instance.id"] == first["kibana.alert.instance.id"]

    # The threshold rule (every 30m, from now-35m): one event for host h1 at 27m lies in
    # the windows of the runs at 30m and 60m.
    s.set_clock(T0 + 27 * MIN)
    s.bulk(
        "logs-vigil-default",
        [{"@timestamp": "2026-05-28T00:00:00Z", "event": {"kind": "event"}, "host": {"name": "h1"}}],
    )
    s.set_clock(T0 + 30 * MIN)
    _wait(s, threshold, 2)
    (alert,) = _alerts(s, threshold)
    assert alert["kibana.alert.threshold_result"]["terms"] == [{"field": "host.name", "value": "h1"}]
    s.kill()
    s.start()
    s.set_clock(T0 + 60 * MIN)
    runs = _wait(s, threshold, 3)
    assert runs[0]["events_searched"] == 1 and runs[0]["error"] is None
    # The signal history came back from the store: the event already counted is left out.
    assert len(_alerts(s, threshold)) == 1
