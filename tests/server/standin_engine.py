"""A stand-in for vigil.rules / vigil.engine, loaded with ``vigil serve --plugin``.

It lets these tests drive the server's scheduling, storage and HTTP before the
real engine is wired; it follows the agreed interfaces: ``load_rules(paths)``
returns an object with ``.rules``; ``Engine(rules).scan(events)`` yields
Kibana-shaped alerts with a deterministic ``kibana.alert.uuid``.

A rule file is JSON: a list of rules with the Elastic rule fields used here and
``action``: the ``event.action`` value the rule matches.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Rule:
    rule_id: str
    name: str
    action: str
    index: list[str] = field(default_factory=lambda: ["logs-*"])
    interval: str = "5m"
    from_: str = "now-6m"
    max_signals: int = 100
    timestamp_override: str | None = "event.ingested"
    enabled: bool = True
    severity: str = "low"
    runnable: bool = True

    def matches_index(self, name: str | None) -> bool:
        return name is None or any(fnmatch.fnmatchcase(name, p) for p in self.index)


@dataclass
class RuleSet:
    rules: list[Rule]
    problems: list = field(default_factory=list)


def load_rules(paths: list[str]) -> RuleSet:
    rules = []
    for p in paths:
        for raw in json.loads(Path(p).read_text()):
            raw["from_"] = raw.pop("from", "now-6m")
            rules.append(Rule(**raw))
    return RuleSet(rules)


class Engine:
    def __init__(self, rules: list[Rule], exceptions=None) -> None:
        self.rules = rules

    def scan(self, events):
        for ev in events:
            event = ev.doc.get("event") or {}
            for rule in self.rules:
                if rule.matches_index(ev.index) and event.get("action") == rule.action:
                    uuid = hashlib.sha256(f"{rule.rule_id}|{ev.index}|{ev.id}".encode()).hexdigest()
                    yield {
                        "@timestamp": event.get("ingested"),
                        "kibana.alert.uuid": uuid,
                        "kibana.alert.original_time": ev.doc.get("@timestamp"),
                        "kibana.alert.rule.rule_id": rule.rule_id,
                        "kibana.alert.rule.name": rule.name,
                        "kibana.alert.severity": rule.severity,
                        "kibana.alert.workflow_status": "open",
                        "host.name": (ev.doc.get("host") or {}).get("name"),
                        "kibana.alert.ancestors": [{"id": ev.id, "index": ev.index}],
                    }
