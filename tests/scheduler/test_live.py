"""``vigil watch``'s threshold and new terms rules (vigil.scheduler.live): events fed as they
arrive, each rule run on its interval, give the alerts of the replay started at the first
tick, for Elastic's prebuilt rules of both types."""

from __future__ import annotations

import sys
from pathlib import Path

from vigil.cli.watch import ByCategory
from vigil.engine import Engine
from vigil.engine.replay import replay
from vigil.events.model import Event
from vigil.scheduler.live import LiveRules
from vigil.scheduler.windows import duration_ms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scheduled import SECOND, T, _base, _doc, _index, _of_type  # noqa: E402


def _live(rule, docs: list[tuple[dict, int]], ticks: list[int]) -> list[dict]:
    # As vigil watch builds it: the engine split by event category (cli/watch.py).
    live = LiveRules(ByCategory(Engine([rule])))
    events = sorted(((ms, i, doc) for i, (doc, ms) in enumerate(docs)), key=lambda t: t[:2])
    out: list[dict] = []
    for t in ticks:
        while events and events[0][0] <= t:
            ms, i, doc = events.pop(0)
            live.feed_batch([Event(doc, _index(rule), f"e{i}")])
        out += live.tick(t)
    return out


def _ids(alerts: list[dict]) -> list[str]:
    return sorted(a["kibana.alert.uuid"] for a in alerts)


def test_live_threshold_rules_alert_as_the_replay(prebuilt_rules):
    rules = [r for r in _of_type(prebuilt_rules, "threshold") if _base(r) is not None]
    alerted = 0
    for rule in rules:
        interval = duration_ms(rule.interval, what="interval")
        spec = rule.kibana_parameters()["threshold"]
        n = max(spec["value"], spec["cardinality"][0]["value"] if spec.get("cardinality") else 1)
        cfield = spec["cardinality"][0]["field"] if spec.get("cardinality") else None
        base = _doc(rule, _base(rule), T, **{f: "group-a" for f in spec["field"]})
        docs = []
        for i in range(n):
            ms = T + 2 * interval - (n - i) * SECOND
            docs.append((_doc(rule, base, ms, **({cfield: f"c{i}"} if cfield else {})), ms))
        ticks = [T + i * interval for i in range(5)]
        got = _live(rule, docs, ticks)
        events = [Event(d, _index(rule), f"e{i}") for i, (d, _) in enumerate(docs)]
        assert _ids(got) == _ids(replay([rule], events, start_ms=T)), rule.name
        alerted += bool(got)
    assert alerted >= 20


def test_live_new_terms_rules_alert_as_the_replay(prebuilt_rules):
    rules = [r for r in _of_type(prebuilt_rules, "new_terms", 10) if _base(r) is not None]
    alerted = 0
    for rule in rules:
        interval = duration_ms(rule.interval, what="interval")
        h = duration_ms(rule.kibana_parameters()["history_window_start"], what="history")
        fields = rule.kibana_parameters()["new_terms_fields"]
        base = _base(rule)
        mid, late = T + (h // 2 // interval) * interval, T + (3 * h // interval) * interval
        docs = [
            (_doc(rule, base, ms, **{f: f"{tag}-{f}" for f in fields}), ms)
            for ms, tag in ((T, "a"), (mid, "a"), (mid, "b"), (late, "a"))
        ]
        ticks = [T, mid, mid + interval, late, late + interval]
        got = _live(rule, docs, ticks)
        events = [Event(d, _index(rule), f"e{i}") for i, (d, _) in enumerate(docs)]
        assert _ids(got) == _ids(replay([rule], events, start_ms=T)), rule.name
        alerted += len(got) == 3
    assert alerted >= 15


BEDROCK_PHANTOM = "71159cad-f8b3-4b3c-ac6e-9cab05594670"  # ES|QL, non-aggregating
WIDESPREAD_MALWARE = "28371aa1-14ed-46cf-ab5b-2fc7d1942278"  # ES|QL, aggregating


def _esql_docs(rule_id: str, start: int) -> list[tuple[dict, str, int]]:
    from vigil.store.events import iso_millis

    if rule_id == BEDROCK_PHANTOM:
        out = []
        for n, target in enumerate(["BedrockAPIKey-abc", "alice", "BedrockAPIKey-def"]):
            ms = start + n * 7 * 60_000
            doc = {
                "@timestamp": iso_millis(ms),
                "event": {"provider": "iam.amazonaws.com", "action": "CreateAccessKey", "outcome": "success"},
                "user": {"target": {"name": target}, "name": "attacker"},
                "aws": {"cloudtrail": {"user_identity": {"arn": "arn:aws:iam::1:user/x"}}},
            }
            out.append((doc, "logs-aws.cloudtrail-default", ms))
        return out
    return [
        (
            {
                "@timestamp": iso_millis(start + n * 60_000),
                "event": {"code": "malicious_file"},
                "rule": {"name": "EICAR"},
                "host": {"id": f"h{n}"},
            },
            "logs-endpoint.alerts-default",
            start + n * 60_000,
        )
        for n in range(3)
    ]


def test_live_esql_rules_alert_as_the_replay(prebuilt_rules):
    for rule_id in (BEDROCK_PHANTOM, WIDESPREAD_MALWARE):
        rule = next(r for r in prebuilt_rules if r.rule_id == rule_id)
        interval = duration_ms(rule.interval, what="interval")
        docs = _esql_docs(rule_id, T + SECOND)
        live = LiveRules(ByCategory(Engine([rule])))
        assert live.esql_rules == [rule]
        got: list[dict] = []
        pending = list(enumerate(docs))
        for t in [T + i * interval for i in range(8)]:
            while pending and pending[0][1][2] <= t:
                n, (doc, index, _) = pending.pop(0)
                live.feed_batch([Event(doc, index, f"e{n}")])
            got += live.tick(t)
        events = [Event(doc, index, f"e{n}") for n, (doc, index, _) in enumerate(docs)]
        expected = list(replay([rule], events, start_ms=T))
        assert got and _ids(got) == _ids(expected), rule.name
