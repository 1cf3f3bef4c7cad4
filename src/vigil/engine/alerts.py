"""Alert documents shaped as Kibana writes them for EQL and custom query rules.

The shape follows Kibana's security detection engine (x-pack security_solution,
``rule_types/factories/utils/build_alert.ts`` for the ``kibana.alert.*`` fields,
``transform_hit_to_alert.ts`` for an event alert, ``eql/build_alert_group_from_sequence.ts``
for a sequence, ``utils/reason_formatters.ts`` for the reason sentence and
``utils/mappings/build_{severity,risk_score}_from_mapping.ts`` for the mappings):

- a custom query (KQL) rule's alert is an event alert like an EQL rule's; only the
  rule type differs (``siem.queryRule``, "Custom Query Rule", registered in Kibana's
  security_solution ``plugin.ts``); the reason sentence is the one every rule type
  shares (``reason_formatters.ts``: "all security solution rule types share a common
  reason message string");
- an event alert is the source event, ``event.kind`` set to ``signal``, the source's
  ``event.*`` copied under ``kibana.alert.original_event.*``, and the alert fields;
  one ancestor (the event, depth 0), depth 1;
- a sequence gives one building-block alert per event (``building_block_type``
  ``default``, ``group.index`` its place) and one shell alert made of the fields all
  the building blocks share plus the alert fields; its ancestors are, for each
  building block, the event and then the building block itself (a ``signal`` of
  depth 1), so its depth is 2; ``group.id`` is the shell's own uuid, on all of them.
  Kibana applies no severity or risk mapping to sequences.

Ids are hashes of what the alert is about (index, event id, rule), so scanning the
same events twice gives the same alerts.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any

import orjson

from vigil.eql.dates import iso_from_millis, to_epoch_millis
from vigil.eql.fields import lookup
from vigil.events.model import Event

SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def event_key(event: Event) -> str:
    """The event's ``_id``, or a hash of its canonical content when it has none."""
    if event.id is not None:
        return event.id
    return hashlib.sha256(orjson.dumps(event.doc, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def alert_uuid(*parts: Any) -> str:
    """Deterministic id: the same event and rule give the same alert on every scan."""
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()


def rule_uuid(rule) -> str:
    """``kibana.alert.rule.uuid``: Kibana's rule saved-object id; Vigil has no saved objects,
    so a rule is known by its ``rule_id``."""
    return rule.rule_id


def _iso(dt: datetime) -> str:
    """A date as Kibana writes one (JavaScript's toISOString: UTC, milliseconds)."""
    return iso_from_millis(int(dt.astimezone(UTC).timestamp() * 1000))


def _first(doc: dict, path: str) -> Any:
    values = lookup(doc, path)
    return values[0] if values else None


# --- severity and risk score mappings -------------------------------------------------


def _is_safe_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value.is_integer() and abs(value) <= 2**53 - 1
    return isinstance(value, int) and abs(value) <= 2**53 - 1


def mapped_severity(rule, doc: dict) -> str:
    """The rule's severity after ``severity_mapping``: of the entries whose value the event
    holds, the highest severity wins. Values compare as strings, except ``event.severity``
    (a long), which compares as an integer."""
    best: str | None = None
    for entry in sorted(rule.severity_mapping or [], key=lambda e: SEVERITY_ORDER.get(e.get("severity"), -1)):
        field = entry.get("field", "")
        wanted = entry.get("value")
        values = lookup(doc, field)
        if field == "event.severity":
            try:
                target: Any = math.floor(float(wanted))
            except (TypeError, ValueError, OverflowError):
                continue
            held = {int(v) for v in values if _is_safe_int(v)}
        else:
            target = str(wanted)
            held = {_js_text(v) for v in values if _is_safe_int(v) or isinstance(v, str)}
        if target in held and entry.get("severity") in SEVERITY_ORDER:
            best = entry["severity"]
    return best or rule.severity


def mapped_risk_score(rule, doc: dict) -> int | float:
    """The rule's risk score after ``risk_score_mapping``: the first entry's field, the
    largest of its values that is a number (or numeric string) from 0 to 100."""
    mapping = rule.risk_score_mapping or []
    if not mapping:
        return rule.risk_score
    numbers = []
    for value in lookup(doc, mapping[0].get("field", "")):
        if isinstance(value, bool):
            continue
        if isinstance(value, str):
            try:
                value = float(value.strip()) if value.strip() else 0.0
            except ValueError:
                continue
        if isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 100:
            numbers.append(int(value) if float(value).is_integer() else value)
    return max(numbers) if numbers else rule.risk_score


# --- the reason sentence --------------------------------------------------------------


def _raw_get(doc: Any, path: str) -> Any:
    """A field as lodash ``get`` reads it: the dotted key itself, else the nested path."""
    if not isinstance(doc, dict):
        return None
    if path in doc:
        return doc[path]
    current: Any = doc
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def _js_text(value: Any) -> str:
    """A value as JavaScript turns it into text (in template strings and Array.join)."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(_js_text(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def _template_value(value: Any) -> str | None:
    """Kibana shows a field only when it is a non-empty string or array (so never a bare
    number) other than a lone "-"; an array shows its values joined by ", "."""
    if isinstance(value, str):
        return value if value and value != "-" else None
    if isinstance(value, list):
        if not value or (len(value) == 1 and value[0] == "-"):
            return None
        return ", ".join(_js_text(v) for v in value)
    return None


def build_reason(rule_name: str, severity: str, doc: dict) -> str:
    """Kibana's reason sentence for an alert, e.g.
    ``file event with process curl, file x.sh, by root on web-1 created low alert Dracut Module Creation.``"""
    value = {name: _template_value(_raw_get(doc, path)) for name, path in _REASON_FIELDS}
    text = f"{value['category']} event" if value["category"] is not None else "event"
    if any(value[name] is not None for name in _OF_INTEREST):
        text += " with"
    if value["process"] is not None:
        text += f" process {value['process']},"
    if value["parent"] is not None:
        text += f" parent process {value['parent']},"
    if value["file"] is not None:
        text += f" file {value['file']},"
    for side in ("source", "destination"):
        if value[side] is not None:
            text += f" {side} {value[side]}"
        if value[f"{side}_port"] is not None:
            text += f":{value[f'{side}_port']},"
    if value["user"] is not None:
        text += f" by {value['user']}"
    if value["host"] is not None:
        text += f" on {value['host']}"
    return f"{text} created {severity} alert {rule_name}."


_REASON_FIELDS = (
    ("category", "event.category"),
    ("process", "process.name"),
    ("parent", "process.parent.name"),
    ("file", "file.name"),
    ("source", "source.ip"),
    ("source_port", "source.port"),
    ("destination", "destination.ip"),
    ("destination_port", "destination.port"),
    ("user", "user.name"),
    ("host", "host.name"),
)
_OF_INTEREST = ("process", "parent", "file", "source", "source_port", "destination", "destination_port")


# --- the alert fields -----------------------------------------------------------------


def _flatten(prefix: str, value: Any, out: dict) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)
    else:
        out[prefix] = value


def _original_time(doc: dict) -> str | None:
    millis = to_epoch_millis(_first(doc, "@timestamp"))
    return iso_from_millis(millis) if millis is not None else None


# The rule's part of an alert is the same for every alert of that rule: built once.
_RULE_FIELDS: dict[int, tuple[Any, dict[str, Any]]] = {}


def _rule_fields(rule) -> dict[str, Any]:
    cached = _RULE_FIELDS.get(id(rule))
    if cached is None or cached[0] is not rule:
        cached = _RULE_FIELDS[id(rule)] = (rule, _build_rule_fields(rule))
    return cached[1]


# Kibana's alerting rule type (id and name) for each detection rule type Vigil runs.
_RULE_TYPES = {
    "eql": ("siem.eqlRule", "Event Correlation Rule"),
    "query": ("siem.queryRule", "Custom Query Rule"),
}


def _build_rule_fields(rule) -> dict[str, Any]:
    rule_type_id, category = _RULE_TYPES.get(rule.type, _RULE_TYPES["eql"])
    fields = {
        "kibana.alert.rule.name": rule.name,
        "kibana.alert.rule.rule_id": rule.rule_id,
        "kibana.alert.rule.uuid": rule_uuid(rule),
        "kibana.alert.rule.consumer": "siem",
        "kibana.alert.rule.producer": "siem",
        "kibana.alert.rule.rule_type_id": rule_type_id,
        "kibana.alert.rule.category": category,
        "kibana.alert.rule.execution.type": "scheduled",
        "kibana.alert.rule.type": rule.type,
        "kibana.alert.rule.severity": rule.severity,
        "kibana.alert.rule.risk_score": rule.risk_score,
        "kibana.alert.rule.severity_mapping": rule.severity_mapping,
        "kibana.alert.rule.risk_score_mapping": rule.risk_score_mapping,
        "kibana.alert.rule.version": rule.version,
        "kibana.alert.rule.enabled": rule.enabled,
        "kibana.alert.rule.immutable": True,
        "kibana.alert.rule.tags": rule.tags,
        "kibana.alert.rule.from": rule.from_,
        "kibana.alert.rule.to": "now",
        "kibana.alert.rule.interval": rule.interval,
        "kibana.alert.rule.indices": rule.index,
        "kibana.alert.rule.max_signals": rule.max_signals,
        "kibana.alert.rule.description": rule.description,
        "kibana.alert.rule.note": rule.note,
        "kibana.alert.rule.references": rule.references,
        "kibana.alert.rule.false_positives": rule.false_positives,
        "kibana.alert.rule.author": rule.author,
        "kibana.alert.rule.license": rule.license,
        "kibana.alert.rule.timestamp_override": rule.timestamp_override,
        "kibana.alert.rule.building_block_type": rule.building_block_type,
        "kibana.alert.rule.exceptions_list": rule.exceptions_list,
        "kibana.alert.rule.threat": rule.threat,
        "kibana.alert.rule.parameters": rule.kibana_parameters(),
    }
    return {k: v for k, v in fields.items() if v is not None}


def _alert_fields(
    rule, *, now: datetime, ancestors: list[dict], severity: str, risk: Any, reason: str, original_time
) -> dict[str, Any]:
    """The ``kibana.alert.*`` fields every alert carries (Kibana's buildAlertFields)."""
    timestamp = _iso(now)
    fields: dict[str, Any] = {
        "@timestamp": timestamp,
        "kibana.space_ids": ["default"],
        "kibana.alert.original_time": original_time,
        "kibana.alert.ancestors": ancestors,
        "kibana.alert.depth": max((a["depth"] for a in ancestors), default=0) + 1,
        "kibana.alert.status": "active",
        "kibana.alert.workflow_status": "open",
        "kibana.alert.workflow_tags": [],
        "kibana.alert.workflow_assignee_ids": [],
        "kibana.alert.severity": severity,
        "kibana.alert.risk_score": risk,
        "kibana.alert.reason": reason,
        "kibana.alert.intended_timestamp": timestamp,
        "kibana.alert.building_block_type": rule.building_block_type,
        **_rule_fields(rule),
    }
    return {k: v for k, v in fields.items() if v is not None}


def _event_ancestor(event: Event) -> dict[str, Any]:
    return {"id": event.id or event_key(event), "type": "event", "index": event.index or "", "depth": 0}


def _source_part(event: Event) -> dict[str, Any]:
    """The event's own fields as an alert keeps them: ``event.kind`` becomes ``signal``
    and every ``event.*`` is kept under ``kibana.alert.original_event.*``."""
    doc = event.doc
    alert: dict[str, Any] = {k: v for k, v in doc.items() if k != "event" and not k.startswith("event.")}
    original: dict[str, Any] = {}
    nested = doc.get("event") if isinstance(doc.get("event"), dict) else {}
    _flatten("kibana.alert.original_event", nested, original)
    event_obj = dict(nested)
    for key, value in doc.items():
        if key.startswith("event."):  # flat dotted event fields
            _flatten(f"kibana.alert.original_event.{key[len('event.') :]}", value, original)
            event_obj[key[len("event.") :]] = value
    event_obj["kind"] = "signal"
    alert["event"] = event_obj
    alert.update(original)
    return alert


def build_alert(
    rule,
    event: Event,
    *,
    now: datetime | None = None,
    group: dict | None = None,
    overrides: bool = True,
) -> dict:
    """The alert Kibana writes for one event that matched ``rule``.

    With ``group`` ({"id", "index"}) the alert is a building block of a sequence.
    ``overrides`` applies the rule's severity and risk score mappings (Kibana does
    for event alerts, not for sequences).
    """
    now = now or datetime.now(UTC)
    doc = event.doc
    severity = mapped_severity(rule, doc) if overrides else rule.severity
    risk = mapped_risk_score(rule, doc) if overrides else rule.risk_score
    alert = _source_part(event)
    alert.update(
        _alert_fields(
            rule,
            now=now,
            ancestors=[_event_ancestor(event)],
            severity=severity,
            risk=risk,
            reason=build_reason(rule.name, severity, doc),
            original_time=_original_time(doc),
        )
    )
    alert["kibana.alert.uuid"] = alert_uuid(
        event.index or "", event_key(event), rule_uuid(rule), (group or {}).get("id", "")
    )
    if group:
        alert["kibana.alert.building_block_type"] = "default"
        alert["kibana.alert.group.id"] = group["id"]
        alert["kibana.alert.group.index"] = group["index"]
    return alert


def build_sequence_alerts(rule, events: list[Event | None], *, now: datetime | None = None) -> list[dict]:
    """A sequence's alerts as Kibana writes them: the shell first, then one building block
    per event, all sharing ``kibana.alert.group.id`` (the shell's uuid).

    Missing events (``None`` for a ``![...]`` stage) have no building block.
    """
    now = now or datetime.now(UTC)
    present = [e for e in events if e is not None]
    if not present:
        return []
    blocks = [build_alert(rule, e, now=now, overrides=False) for e in present]
    # Each block's id depends on every block's ancestors, so the same event in two
    # sequences gives two building blocks.
    base = [part for b in blocks for a in b["kibana.alert.ancestors"] for part in (a["id"], a["index"])]
    base.append(rule_uuid(rule))
    for i, block in enumerate(blocks):
        block["kibana.alert.uuid"] = alert_uuid(*base, i)
    shell_ancestors: list[dict] = []
    for block in blocks:
        shell_ancestors.extend(block["kibana.alert.ancestors"])
        shell_ancestors.append(
            {
                "id": block["kibana.alert.uuid"],
                "type": "signal",
                "index": "",
                "depth": block["kibana.alert.depth"],
                "rule": rule_uuid(rule),
            }
        )
    shared = intersection(blocks) or {}
    shell = dict(shared)
    shell.update(
        _alert_fields(
            rule,
            now=now,
            ancestors=shell_ancestors,
            severity=rule.severity,
            risk=rule.risk_score,
            reason=build_reason(rule.name, rule.severity, shared),
            # Kibana takes the first building block's @timestamp: the time of detection.
            original_time=blocks[0]["@timestamp"],
        )
    )
    if rule.building_block_type is None:
        shell.pop("kibana.alert.building_block_type", None)
    event_obj = shell.get("event") if isinstance(shell.get("event"), dict) else {}
    shell["event"] = dict(event_obj, kind="signal")
    shell_id = alert_uuid(*(p for a in shell_ancestors for p in (a["id"], a["index"])), rule_uuid(rule))
    shell["kibana.alert.uuid"] = shell_id
    shell["kibana.alert.group.id"] = shell_id
    shell.pop("kibana.alert.group.index", None)
    for i, block in enumerate(blocks):
        block["kibana.alert.building_block_type"] = "default"
        block["kibana.alert.group.id"] = shell_id
        block["kibana.alert.group.index"] = i
    return [shell, *blocks]


# --- the fields a sequence's events share ------------------------------------------------

_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    """JavaScript's ===: no two objects or arrays are the same; true is not 1."""
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _common(a: list, b: list) -> list:
    out: list = []
    for item in a:
        if any(_same(item, x) for x in b) and not any(_same(item, x) for x in out):
            out.append(item)
    return out


def _pair(a: Any, b: Any) -> Any:
    if a is _MISSING or b is _MISSING:
        return _MISSING
    out: dict[str, Any] = {}
    for key, a_val in a.items():
        if key not in b:
            continue
        b_val = b[key]
        if isinstance(a_val, dict) and isinstance(b_val, dict):
            value = _pair(a_val, b_val)
            if value is not _MISSING:
                out[key] = value
        elif _same(a_val, b_val):
            out[key] = a_val
        elif isinstance(a_val, list) and isinstance(b_val, list):
            out[key] = _common(a_val, b_val)
        elif isinstance(a_val, list):
            out[key] = _common(a_val, [b_val])
        elif isinstance(b_val, list):
            out[key] = _common([a_val], b_val)
    return out if out else _MISSING


def intersection(docs: list[dict]) -> dict | None:
    """The fields all ``docs`` share with the same value (arrays: the values they share),
    recursively, as Kibana merges a sequence's building blocks into its shell alert."""
    if not docs:
        return None
    result: Any = docs[0]
    for doc in docs[1:]:
        result = _pair(result, doc)
        if result is _MISSING:
            return None
    return result
