"""A rule as people and programs read it.

``render_markdown`` writes the rule the way Elastic's prebuilt-rule
documentation pages do (see the seed page "Dracut Module Creation"): name,
description, a metadata block (rule type, indices, severity, risk score,
schedule, maximum alerts, references, tags, version, authors, license), the
investigation guide, setup, the query, then the MITRE ATT&CK mapping.

``kibana_rule`` gives the rule as one JSON object in the shape of Kibana's rule
export (``POST /api/detection_engine/rules/_export``): the rule params with
Kibana's defaults filled in, plus the type-specific fields the file carried.
"""

from __future__ import annotations

import re
from typing import Any

from vigil.rules.model import Rule

# Elastic's documentation pages fence the query as "js", whatever the language.
_FENCE = {"eql": "js", "kuery": "js", "lucene": "js", "esql": "sql"}

# Fields a rule of some types carries beyond the common ones, shown on the page when present.
_TYPE_FIELDS = (
    ("machine_learning_job_id", "Machine learning job"),
    ("anomaly_threshold", "Anomaly score threshold"),
    ("new_terms_fields", "New terms fields"),
    ("history_window_start", "History window start"),
    ("threat_index", "Indicator index patterns"),
    ("threat_query", "Indicator index query"),
    ("event_category_override", "Event category field"),
    ("timestamp_field", "Timestamp field"),
    ("tiebreaker_field", "Tiebreaker field"),
)

_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _duration_ms(text: str) -> int | None:
    m = re.fullmatch(r"(\d+)([smhd])", text.strip())
    return int(m.group(1)) * _UNITS_MS[m.group(2)] if m else None


def _format_ms(ms: int) -> str:
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def look_back(rule: Rule) -> str | None:
    """Kibana's "additional look-back time": how far ``from`` reaches before the last interval."""
    m = re.fullmatch(r"now-(\d+[smhd])", rule.from_.strip())
    interval = _duration_ms(rule.interval)
    reach = _duration_ms(m.group(1)) if m else None
    if interval is None or reach is None or reach <= interval:
        return None
    return _format_ms(reach - interval)


def _bullets(items: list[str]) -> list[str]:
    return [f"* {item}" for item in items]


def _demote(markdown: str, levels: int = 1) -> str:
    """Push every ATX heading down so a guide sits under the page's own section heading."""
    out = []
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"#{1,5} ", line):
            line = "#" * levels + line
        out.append(line)
    return "\n".join(out)


def _attack(threat: list[dict]) -> list[str]:
    lines: list[str] = []
    framework = next((t.get("framework") for t in threat if t.get("framework")), "MITRE ATT&CK")
    lines += [f"**Framework**: {framework}", ""]

    def entry(kind: str, item: dict, depth: int) -> None:
        pad = "    " * depth
        lines.append(f"{pad}* {kind}:")
        lines.append("")
        ref = item.get("reference")
        lines.append(f"{pad}    * Name: {item.get('name', '')}")
        lines.append(f"{pad}    * ID: {item.get('id', '')}")
        if ref:
            lines.append(f"{pad}    * Reference URL: {ref}")
        lines.append("")

    for mapping in threat:
        entry("Tactic", mapping.get("tactic") or {}, 0)
        for technique in mapping.get("technique") or []:
            entry("Technique", technique, 0)
            for sub in technique.get("subtechnique") or []:
                entry("Sub-technique", sub, 0)
    return lines


def render_markdown(rule: Rule) -> str:
    """The rule as Markdown, laid out like its page in Elastic's prebuilt rule reference."""
    lines: list[str] = [f"# {rule.name}", "", rule.description.strip(), ""]

    def field(label: str, value: Any) -> None:
        lines.extend([f"**{label}**: {value}", ""])

    def listing(label: str, items: list[str]) -> None:
        if items:
            lines.extend([f"**{label}**:", "", *_bullets(items), ""])
        else:
            field(label, "None")

    field("Rule type", rule.type)
    if rule.index:
        listing("Rule indices", rule.index)
    field("Severity", rule.severity)
    field("Risk score", rule.risk_score)
    field("Runs every", rule.interval)
    back = look_back(rule)
    field(
        "Searches indices from",
        f"{rule.from_} (Date Math format" + (f", additional look-back time {back})" if back else ")"),
    )
    field("Maximum alerts per execution", rule.max_signals)
    listing("References", rule.references)
    listing("Tags", rule.tags)
    field("Version", rule.version)
    listing("Rule authors", rule.author)
    field("Rule license", rule.license or "None")
    if rule.building_block_type:
        field("Building block", rule.building_block_type)
    if rule.timestamp_override:
        field("Timestamp override", rule.timestamp_override)
    for key, label in _TYPE_FIELDS:
        value = rule.raw.get(key)
        if value not in (None, "", []):
            field(label, ", ".join(map(str, value)) if isinstance(value, list) else value)
    threshold = rule.raw.get("threshold")
    if isinstance(threshold, dict):
        by = ", ".join(threshold.get("field") or []) or "all events"
        field("Threshold", f"{threshold.get('value')} (grouped by {by})")
    if rule.related_integrations:
        integrations = [
            f"{i.get('package', '')}{'.' + i['integration'] if i.get('integration') else ''}"
            f" {i.get('version', '')}".strip()
            for i in rule.related_integrations
        ]
        listing("Related integrations", integrations)
    if rule.required_fields:
        listing(
            "Required fields",
            [
                f"{f.get('name')} ({f.get('type', 'unknown')}{', ECS' if f.get('ecs') else ''})"
                for f in rule.required_fields
            ],
        )
    if rule.false_positives:
        listing("False positives", rule.false_positives)

    if rule.note:
        lines += ["## Investigation guide", "", _demote(rule.note.strip()), ""]
    if rule.setup:
        lines += ["## Setup", "", _demote(rule.setup.strip()), ""]
    if rule.query:
        fence = _FENCE.get(rule.language or rule.type, "")
        lines += ["## Rule query", "", f"```{fence}", rule.query.strip("\n"), "```", ""]
    if rule.threat:
        lines += _attack(rule.threat)
    return "\n".join(lines).rstrip() + "\n"


# Keys of Vigil's own, never part of a Kibana rule.
_NOT_KIBANA = frozenset({"source", "line"})


def kibana_rule(rule: Rule) -> dict[str, Any]:
    """The rule as Kibana exports it: params with defaults applied, plus the file's other fields."""
    out: dict[str, Any] = {k: v for k, v in rule.raw.items() if k not in _NOT_KIBANA}
    out.update(rule.kibana_parameters())
    out.update(
        {
            "name": rule.name,
            "enabled": rule.enabled,
            "interval": rule.interval,
            "tags": rule.tags,
        }
    )
    if "immutable" in rule.raw:  # a custom rule exported from Kibana says so
        out["immutable"] = bool(rule.raw["immutable"])
    return out
