"""Elastic's prebuilt ES|QL rules replayed on their schedule as ``vigil scan`` runs them,
with the alerts Kibana's ES|QL executor makes (rule_types/esql/: esql.ts,
wrap_esql_alerts.ts, utils/generate_alert_id.ts, utils/merge_esql_result_in_source.ts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from vigil.engine import Engine
from vigil.engine.replay import replay
from vigil.events.model import Event

BEDROCK_PHANTOM = "71159cad-f8b3-4b3c-ac6e-9cab05594670"  # non-aggregating, KEEP aws.*, user.*
WIDESPREAD_MALWARE = "28371aa1-14ed-46cf-ab5b-2fc7d1942278"  # aggregating, count_distinct >= 3
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _rule(prebuilt_rules, rule_id):
    rule = next(r for r in prebuilt_rules if r.rule_id == rule_id)
    assert rule.runnable, rule.why_not_runnable
    return rule


def _at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def _iam(n: int, target: str, minutes: float) -> Event:
    doc = {
        "@timestamp": _at(minutes),
        "event": {
            "provider": "iam.amazonaws.com",
            "action": "CreateAccessKey",
            "outcome": "success",
            "ingested": _at(minutes),
        },
        "user": {"target": {"name": target}, "name": "attacker"},
        "aws": {"cloudtrail": {"user_identity": {"arn": "arn:aws:iam::1:user/x"}}},
        "host": {"name": "not-kept"},
    }
    return Event(doc, index="logs-aws.cloudtrail-default", id=f"doc-{n}")


def test_non_aggregating_rule_alerts_once_per_event_with_columns_merged(prebuilt_rules):
    rule = _rule(prebuilt_rules, BEDROCK_PHANTOM)
    assert not rule.compiled().query.aggregating
    events = [
        _iam(1, "BedrockAPIKey-abc", 0),
        _iam(2, "alice", 1),  # not a phantom user
        _iam(3, "BedrockAPIKey-def", 12),
        _iam(4, "BedrockAPIKey-zzz", 3),
    ]
    events[3].index = "logs-okta.system-default"  # not read: FROM logs-aws.cloudtrail-*
    alerts = list(replay(Engine([rule]).scheduled, events))
    # from now-30m every 5m: each event lies in six overlapping windows, yet alerts once.
    assert sorted(a["user.target.name"] for a in alerts) == [
        "BedrockAPIKey-abc",
        "BedrockAPIKey-def",
    ]
    assert len({a["kibana.alert.uuid"] for a in alerts}) == 2
    alert = alerts[0]
    # The source event is the alert (host.name was not kept but stays), the columns set over it.
    assert alert["host"]["name"] == "not-kept"
    # mergeEsqlResultInSource: the nested key goes, the dotted column takes its place.
    assert "name" not in alert["user"]["target"] and alert["user.name"] == "attacker"
    assert alert["kibana.alert.rule.rule_id"] == BEDROCK_PHANTOM
    assert alert["kibana.alert.ancestors"][0]["id"] in ("doc-1", "doc-3")
    assert alert["event"]["kind"] == "signal"


def _malware(host: str, minutes: float, code: str = "malicious_file") -> Event:
    # Built fresh each time: a test may change its document.
    doc = {
        "@timestamp": _at(minutes),
        "event": {"code": code, "ingested": _at(minutes)},
        "rule": {"name": "EICAR"},
        "host": {"id": host},
    }
    return Event(doc, index="logs-endpoint.alerts-default", id=f"{host}-{minutes}")


def test_aggregating_rule_alert_holds_the_returned_columns(prebuilt_rules):
    rule = _rule(prebuilt_rules, WIDESPREAD_MALWARE)
    assert rule.compiled().query.aggregating
    # Runs at 6, 11 and 16 (the first event's time, then every 5m), each looking back 9m:
    # the runs at 6 and 11 both see the three hosts.
    # (the replay runs until a run reaches the last event the query's WHERE keeps).
    later = _malware("h9", 12)
    later.doc["rule"]["name"] = "Other"
    events = [
        _malware("h1", 6),
        _malware("h2", 6),
        _malware("h3", 6),
        _malware("h4", 7, code="behavior"),
        later,
    ]
    alerts = list(replay(Engine([rule]).scheduled, events))
    assert alerts, "three hosts with the same malicious_file rule alert"
    alert = alerts[0]
    assert alert["Esql.host_id_count_distinct"] == 3
    assert alert["rule.name"] == "EICAR"
    assert "host" not in alert and "host.id" not in alert  # only the returned columns
    # from now-9m every 5m: a look-back that sees the group again alerts again (Kibana
    # documents these duplicates for aggregating queries), with another id each run.
    assert len({a["kibana.alert.uuid"] for a in alerts}) == len(alerts) == 2
    two_hosts = [_malware("h1", 0), _malware("h2", 1)]
    assert list(replay(Engine([rule]).scheduled, two_hosts)) == []


def test_completion_rules_are_not_runnable_with_the_reason(prebuilt_rules):
    from vigil import esql
    from vigil.esql.tree import Completion

    completion = [
        r
        for r in prebuilt_rules
        if r.type == "esql" and any(isinstance(c, Completion) for c in esql.parse(r.query).commands)
    ]
    assert len(completion) == 7
    assert all("language model" in r.why_not_runnable for r in completion)


def test_scan_runs_esql_rules(prebuilt_rules, tmp_path, capsys):
    from vigil.cli import main

    rule = _rule(prebuilt_rules, WIDESPREAD_MALWARE)
    events = tmp_path / "alerts.ndjson"
    docs = [_malware(h, i).doc for i, h in enumerate(("a", "b", "c"))]
    events.write_text("".join(json.dumps(d) + "\n" for d in docs))
    code = main(
        [
            "scan",
            "--rules",
            rule.source,
            "--index",
            "logs-endpoint.alerts-x",
            str(events),
            "--format",
            "ndjson",
        ]
    )
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert code in (0, 1)
    assert out and all(a["kibana.alert.rule.rule_id"] == WIDESPREAD_MALWARE for a in out)
    assert out[0]["Esql.host_id_count_distinct"] == 3


@pytest.mark.parametrize("with_limit", [1])
def test_max_signals_caps_a_run(prebuilt_rules, with_limit):
    import copy

    rule = copy.copy(_rule(prebuilt_rules, BEDROCK_PHANTOM))
    rule.max_signals = with_limit
    events = [_iam(i, f"BedrockAPIKey-{i}", 0) for i in range(5)]
    alerts = list(replay(Engine([rule]).scheduled, events))
    # One alert per run; later runs that still see the others alert on them one by one.
    assert 1 <= len(alerts) <= 5
    assert len({a["kibana.alert.uuid"] for a in alerts}) == len(alerts)


POSH_AGG = "f770ce79-05fd-4d74-9866-1c5d66c9b34b"  # FROM .alerts-security.*: 5 PowerShell rules, one script


def test_rule_over_the_alerts_index_reads_alerts_written_earlier(prebuilt_rules):
    from vigil.store.alert_index import alert_event, reads_alerts

    rule = _rule(prebuilt_rules, POSH_AGG)
    assert reads_alerts(rule)
    alerts = [
        {
            "@timestamp": _at(1),
            "kibana.alert.uuid": f"a{i}",
            "kibana.alert.rule.name": f"Potential PowerShell Obfuscation {i}",
            "message": "Creating Scriptblock text (1 of 1): ... ScriptBlock ID: 4b7e-11",
            "host": {"id": "h1"},
            "user": {"id": "S-1-5-21"},
        }
        for i in range(5)
    ]
    found = list(replay(Engine([rule]).scheduled, [alert_event(a) for a in alerts]))
    assert len(found) == 1
    assert found[0]["Esql.kibana_alert_rule_name_count_distinct"] == 5
    assert found[0]["host.id"] == "h1" and found[0]["Esql.script_block_id"] == "4b7e-11"
    four = list(replay(Engine([rule]).scheduled, [alert_event(a) for a in alerts[:4]]))
    assert four == []


NFS_BURST = (
    "8e78b1a5-9674-4a96-8ce7-76ef54566a85"  # aggregating, alert_suppression by source.ip, destination.ip
)


def _nfs(n: int, minutes: float, opcode: str, src: str = "10.0.0.1") -> Event:
    doc = {
        "@timestamp": _at(minutes),
        "event": {"ingested": _at(minutes)},
        "network_traffic": {"nfs": {"opcode": opcode, "status": "NFS_OK"}},
        "source": {"ip": src},
        "destination": {"ip": "10.0.0.2"},
    }
    return Event(doc, index="logs-network_traffic.nfs-default", id=f"nfs-{n}")


def test_suppression_folds_an_aggregating_rules_repeated_alerts(prebuilt_rules):
    import copy

    rule = _rule(prebuilt_rules, NFS_BURST)
    burst = [_nfs(i, 1, "WRITE" if i < 70 else "REMOVE") for i in range(100)]
    events = burst + [_nfs(999, 7, "WRITE", src="10.9.9.9")]
    # Runs at 1 and 6 both see the burst (9m look-back): without suppression two alerts...
    plain = copy.copy(rule)
    plain.raw = {k: v for k, v in rule.raw.items() if k != "alert_suppression"}
    unsuppressed = list(replay(Engine([plain]).scheduled, events))
    assert len(unsuppressed) == 2
    assert unsuppressed[0]["Esql.mutating_ops"] == 100 and unsuppressed[0]["Esql.destructive_ops"] == 30
    # ...with the rule's suppression (source.ip, destination.ip for 1h) one, counting the other.
    suppressed = list(replay(Engine([rule]).scheduled, events))
    assert len(suppressed) == 1
    assert suppressed[0]["kibana.alert.suppression.docs_count"] == 1
    terms = {t["field"]: t["value"] for t in suppressed[0]["kibana.alert.suppression.terms"]}
    assert set(terms) == {"source.ip", "destination.ip"}
