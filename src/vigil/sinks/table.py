"""Alerts as people read them: grouped by rule, one row per alert."""

from __future__ import annotations

from typing import Any

from vigil.eql.fields import lookup

_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def _first(doc: dict, path: str) -> Any:
    values = lookup(doc, path)
    return values[0] if values else None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _short_time(value: Any) -> str:
    """``2026-11-27T09:15:20.960Z`` as ``2026-11-27 09:15:20``: the table's time, to the second."""
    text = _text(value)
    if len(text) >= 19 and text[10] == "T":
        return text[:10] + " " + text[11:19]
    return text


def alert_summary(alert: dict) -> dict[str, str]:
    """The columns shown for one alert (the original event's time, where, who, what)."""
    sequence = _first(alert, "kibana.alert.group.id") is not None and not is_building_block(alert)
    return {
        "time": _short_time(_first(alert, "kibana.alert.original_time") or _first(alert, "@timestamp")),
        "severity": _text(_first(alert, "kibana.alert.severity")),
        "risk": _text(_first(alert, "kibana.alert.risk_score")),
        "host": _text(_first(alert, "host.name") or _first(alert, "host.hostname")),
        "user": _text(_first(alert, "user.name")),
        "process": _text(_first(alert, "process.executable") or _first(alert, "process.name")),
        "file": "(sequence)" if sequence else _text(_first(alert, "file.path")),
        "index": _text(_first(alert, "kibana.alert.ancestors.index")),
    }


def is_building_block(alert: dict) -> bool:
    """An event alert of a sequence: shown under its sequence alert, not as a row of its own."""
    return bool(lookup(alert, "kibana.alert.group.index"))


class AlertTable:
    """Collects alerts and prints them grouped by rule when closed."""

    COLUMNS = ("time", "severity", "risk", "host", "process", "file")

    def __init__(self, console) -> None:
        self.console = console
        self.by_rule: dict[str, list[dict]] = {}
        self.names: dict[str, str] = {}

    def write(self, alert: dict) -> None:
        rule_id = _text(_first(alert, "kibana.alert.rule.rule_id"))
        self.names.setdefault(rule_id, _text(_first(alert, "kibana.alert.rule.name")))
        self.by_rule.setdefault(rule_id, []).append(alert)

    def close(self) -> None:
        from rich.table import Table

        from vigil.sinks.terminal import styled

        for rule_id, alerts in self.by_rule.items():
            shown = [a for a in alerts if not is_building_block(a)]
            table = Table(title=f"{self.names[rule_id]}  ({len(shown)} alerts)", title_justify="left")
            for col in self.COLUMNS:
                folds = col in ("process", "file")
                table.add_column(col, overflow="fold" if folds else "ellipsis", no_wrap=not folds)
            for alert in shown:
                row: dict[str, Any] = alert_summary(alert)
                style = _SEVERITY_STYLE.get(row["severity"].lower())
                if style:
                    row["severity"] = styled((row["severity"], style))
                # The console shows text as text (vigil.sinks.terminal): no markup, no controls.
                table.add_row(*(row[c] for c in self.COLUMNS))
            self.console.print(table)
