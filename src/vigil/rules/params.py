"""The parameters of threshold and new terms rules, checked as Kibana checks them.

Kibana's rule schema (``ThresholdField`` is a string or a list of strings,
``ThresholdValue`` a positive integer, ``ThresholdCardinality`` a list of
``{field, value}``) and the new terms rule's own checks (``new_terms/utils.ts``:
at most 3 fields, none repeated; ``validateHistoryWindowStart``: the history window
starts before ``from``). Each parser raises ValueError with the reason in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vigil.errors import VigilError

# Kibana's new_terms/README.md and utils.ts: "new_terms_fields" holds 1 to 3 fields.
MAX_NEW_TERMS_FIELDS = 3


@dataclass(frozen=True, slots=True)
class ThresholdParams:
    fields: tuple[str, ...]
    value: int
    cardinality_field: str | None = None
    cardinality_value: int = 0


@dataclass(frozen=True, slots=True)
class NewTermsParams:
    fields: tuple[str, ...]
    history_ms: int  # how far back of a run's end the history window starts


def _field_names(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        # Kibana's normalizeThresholdField: "" is no field, "a" is ["a"].
        return (value,) if value else ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{what} must be a field name or a list of field names")
    return tuple(value)


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 1:
        raise ValueError(f"{what} must be an integer of 1 or more, got {value!r}")
    return int(value)


def threshold_params(raw: dict) -> ThresholdParams:
    """The ``threshold`` object of a threshold rule."""
    spec = raw.get("threshold")
    if not isinstance(spec, dict):
        raise ValueError("a threshold rule needs a threshold object (field, value)")
    fields = _field_names(spec.get("field", []), "threshold.field")
    value = _positive(spec.get("value"), "threshold.value")
    card = spec.get("cardinality") or []
    if not isinstance(card, list) or len(card) > 1:
        raise ValueError("threshold.cardinality must be a list of at most one {field, value}")
    if card:
        entry = card[0]
        if not isinstance(entry, dict) or not isinstance(entry.get("field"), str) or not entry["field"]:
            raise ValueError("threshold.cardinality needs a field name")
        # Kibana's schema takes a cardinality value of 0 or more.
        cvalue = entry.get("value")
        if isinstance(cvalue, bool) or not isinstance(cvalue, int) or cvalue < 0:
            raise ValueError("threshold.cardinality value must be an integer of 0 or more")
        return ThresholdParams(fields, value, entry["field"], cvalue)
    return ThresholdParams(fields, value)


def new_terms_params(raw: dict, from_: str) -> NewTermsParams:
    """The ``new_terms`` object of a new terms rule (detection-rules TOML) or its Kibana
    form (``new_terms_fields`` and ``history_window_start`` at the top level)."""
    spec = raw.get("new_terms")
    if isinstance(spec, dict):
        fields_value = spec.get("value")
        start = spec.get("history_window_start")
        if isinstance(start, list) and start and isinstance(start[0], dict):
            start = start[0].get("value")
    else:
        fields_value = raw.get("new_terms_fields")
        start = raw.get("history_window_start")
    fields = _field_names(fields_value if fields_value is not None else [], "new_terms_fields")
    if not 1 <= len(fields) <= MAX_NEW_TERMS_FIELDS:
        raise ValueError(f"new_terms_fields must hold 1 to {MAX_NEW_TERMS_FIELDS} fields, got {len(fields)}")
    if len(set(fields)) != len(fields):
        raise ValueError("new_terms_fields must not repeat a field")
    if not isinstance(start, str):
        raise ValueError("a new terms rule needs history_window_start (e.g. now-7d)")
    from vigil.scheduler.windows import duration_ms

    try:
        history = duration_ms(start, what="history_window_start")
        span = duration_ms(from_, what="from")
    except VigilError as exc:
        raise ValueError(exc.message) from None
    if history <= span:
        raise ValueError(f"history_window_start {start!r} must be earlier than from {from_!r}")
    return NewTermsParams(fields, history)
