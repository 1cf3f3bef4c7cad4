"""Alert documents shaped as Kibana writes them for EQL rules."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from vigil.eql.fields import lookup
from vigil.events.model import Event


def event_key(event: Event) -> str:
    """The event's ``_id``, or a hash of its canonical content when it has none."""
    if event.id is not None:
        return event.id
    return hashlib.sha256(orjson.dumps(event.doc, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def alert_uuid(*parts: Any) -> str:
    """Deterministic id: the same event and rule give the same alert on every scan."""
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()


def _first(doc: dict, path: str) -> Any:
    values = lookup(doc, path)
    return values[0] if values else None


def _mapped(rule, doc: dict) -> tuple[str, int]:
    """Severity and risk after the rule's mappings: the first matching entry wins, as in Kibana."""
    severity, risk = rule.severity, rule.risk_score
    for entry in rule.severity_mapping or []:
        if str(entry.get("value")) in [str(v) for v in lookup(doc, entry.get("field", ""))]:
            severity = entry.get("severity", severity)
            break
    for entry in rule.risk_score_mapping or []:
        value = _first(doc, entry.get("field", ""))
        if isinstance(value, (int, float)) and 0 <= value <= 100:
            risk = int(value)
            break
    return severity, risk


def build_reason(rule, doc: dict, severity: str) -> str:
    """Kibana's reason sentence: '<category> event with process P, file F, by U on H created <sev> alert <name>.'"""
    category = _first(doc, "event.category")
    parts = [f"{category} event" if category else "event"]
    details = [("process", "process.name"), ("file", "file.name")]
    with_parts = [f"{label} {_first(doc, path)}" for label, path in details if _first(doc, path) is not None]
    text = parts[0]
    if with_parts:
        text += " with " + ", ".join(with_parts) + ","
    user, host = _first(doc, "user.name"), _first(doc, "host.name")
    if user is not None:
        text += f" by {user}"
    if host is not None:
        text += f" on {host}"
    return f"{text} created {severity} alert {rule.name}."


def build_alert(rule, event: Event, *, now: datetime | None = None, group: dict | None = None) -> dict:
    now = now or datetime.now(UTC)
    doc = event.doc
    severity, risk = _mapped(rule, doc)
    alert: dict[str, Any] = {k: v for k, v in doc.items() if k != "event"}
    original_event = doc.get("event") if isinstance(doc.get("event"), dict) else {}
    alert["event"] = dict(original_event, kind="signal")
    for key, value in original_event.items():
        alert[f"kibana.alert.original_event.{key}"] = value
    uuid = alert_uuid(event.index, event_key(event), rule.rule_id, (group or {}).get("id", ""))
    alert.update(
        {
            "@timestamp": now.isoformat().replace("+00:00", "Z"),
            "kibana.alert.uuid": uuid,
            "kibana.alert.original_time": _first(doc, "@timestamp"),
            "kibana.alert.ancestors": [
                {"id": event.id or event_key(event), "type": "event", "index": event.index or "", "depth": 0}
            ],
            "kibana.alert.depth": 1,
            "kibana.alert.status": "active",
            "kibana.alert.workflow_status": "open",
            "kibana.alert.severity": severity,
            "kibana.alert.risk_score": risk,
            "kibana.alert.reason": build_reason(rule, doc, severity),
            "kibana.alert.rule.name": rule.name,
            "kibana.alert.rule.rule_id": rule.rule_id,
            "kibana.alert.rule.uuid": rule.rule_id,
            "kibana.alert.rule.category": "Event Correlation Rule",
            "kibana.alert.rule.type": rule.type,
            "kibana.alert.rule.severity": rule.severity,
            "kibana.alert.rule.risk_score": rule.risk_score,
            "kibana.alert.rule.version": rule.version,
            "kibana.alert.rule.tags": rule.tags,
            "kibana.alert.rule.from": rule.from_,
            "kibana.alert.rule.interval": rule.interval,
            "kibana.alert.rule.max_signals": rule.max_signals,
            "kibana.alert.rule.description": rule.description,
            "kibana.alert.rule.references": rule.references,
            "kibana.alert.rule.author": rule.author,
            "kibana.alert.rule.license": rule.license,
            "kibana.alert.rule.threat": rule.threat,
            "kibana.alert.rule.parameters": rule.kibana_parameters(),
            "kibana.space_ids": ["default"],
        }
    )
    if rule.building_block_type or group:
        alert["kibana.alert.building_block_type"] = rule.building_block_type or "default"
    if group:
        alert["kibana.alert.group.id"] = group["id"]
        alert["kibana.alert.group.index"] = group["index"]
    return alert
