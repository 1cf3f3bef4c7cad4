"""A KQL custom query rule through the engine: routing, alerts, exceptions, as for EQL."""

from __future__ import annotations

import json

from vigil.engine import Engine
from vigil.events.model import Event
from vigil.rules.exceptions import parse_exceptions
from vigil.rules.model import rule_from_dict

QUERY = 'event.category: process and process.name: (whoami or "net.exe") and not user.name: SYSTEM'


def _rule(**extra):
    return rule_from_dict(
        {
            "rule_id": "kql-e2e",
            "name": "Discovery command",
            "description": "d",
            "type": "query",
            "language": "kuery",
            "query": QUERY,
            "index": ["logs-endpoint.events.*"],
            "severity": "medium",
            "risk_score": 47,
            **extra,
        }
    )


def _event(n: int, name: str, user: str, index: str = "logs-endpoint.events.process-default") -> Event:
    doc = {
        "@timestamp": f"2026-11-01T00:00:0{n}Z",
        "event": {"category": ["process"], "kind": "event"},
        "process": {"name": name},
        "user": {"name": user},
        "host": {"name": "web-1"},
    }
    return Event(doc, index=index, id=f"e{n}")


EVENTS = [
    _event(1, "whoami", "alice"),
    _event(2, "whoami", "SYSTEM"),  # excluded by `not user.name: SYSTEM`
    _event(3, "net.exe", "bob"),
    _event(4, "WHOAMI", "carol"),  # keyword terms are case-sensitive
    _event(5, "whoami", "dave", index="logs-other-default"),  # not an index of the rule
]


def test_kql_rule_raises_query_rule_alerts():
    rule = _rule()
    assert rule.runnable
    alerts = list(Engine([rule]).scan(EVENTS))
    assert [a["user"]["name"] for a in alerts] == ["alice", "bob"]
    first = alerts[0]
    assert first["kibana.alert.rule.type"] == "query"
    assert first["kibana.alert.rule.rule_type_id"] == "siem.queryRule"
    assert first["kibana.alert.rule.category"] == "Custom Query Rule"
    params = first["kibana.alert.rule.parameters"]
    assert (params["type"], params["language"], params["query"]) == ("query", "kuery", QUERY)
    # The reason sentence is the one Kibana writes for every rule type.
    assert first["kibana.alert.reason"] == (
        "process event with process whoami, by alice on web-1 created medium alert Discovery command."
    )
    assert first["event"]["kind"] == "signal" and first["kibana.alert.original_event.kind"] == "event"


def test_exceptions_apply_to_kql_rules():
    rule = _rule(exceptions_list=[{"list_id": "ours", "namespace_type": "single", "type": "detection"}])
    item = {
        "list_id": "ours",
        "item_id": "bob",
        "type": "simple",
        "namespace_type": "single",
        "name": "bob",
        "entries": [{"field": "user.name", "type": "match", "operator": "included", "value": "bob"}],
    }
    lists = parse_exceptions(json.dumps(item) + "\n", "ours.ndjson")
    assert lists.problems == []
    alerts = list(Engine([rule], exceptions=lists).scan(EVENTS))
    assert [a["user"]["name"] for a in alerts] == ["alice"]


def test_unsupported_kql_rule_is_not_run():
    rule = _rule(query="process.*: whoami")  # a wildcard in a field name
    assert not rule.runnable
    assert Engine([rule]).rules == []
