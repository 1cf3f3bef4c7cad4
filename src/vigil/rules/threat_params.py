"""The parameters of indicator match (``threat_match``) rules, checked as Kibana checks them.

Kibana's rule schema for the type (``common/api/detection_engine/model/rule_schema``:
``ThreatIndex`` a list of index patterns, ``ThreatQuery`` a string,
``ThreatMapping`` a non-empty list of ``{entries: [{field, type: "mapping", value}]}``,
``ThreatFilters`` a list, ``ThreatIndicatorPath`` a string defaulting to
``threat.indicator`` (``DEFAULT_INDICATOR_SOURCE_PATH``), ``ThreatLanguage``
``kuery`` or ``lucene``, ``ItemsPerSearch`` and ``ConcurrentSearches`` integers of
1 or more). Each parser raises ValueError with the reason in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Kibana's common/constants.ts DEFAULT_INDICATOR_SOURCE_PATH.
DEFAULT_INDICATOR_PATH = "threat.indicator"


@dataclass(frozen=True, slots=True)
class MappingEntry:
    field: str  # the event's field
    value: str  # the indicator's field


@dataclass(frozen=True, slots=True)
class ThreatMatchParams:
    index: tuple[str, ...]
    query: str
    mapping: tuple[tuple[MappingEntry, ...], ...]  # groups OR-ed, entries of a group AND-ed
    filters: Any
    indicator_path: str


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{what} must be a list of index patterns")
    return tuple(value)


def _mapping(value: Any) -> tuple[tuple[MappingEntry, ...], ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("threat_mapping must be a non-empty list of {entries: [...]}")
    groups = []
    for n, group in enumerate(value, 1):
        entries = group.get("entries") if isinstance(group, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"threat_mapping group {n} needs a non-empty list of entries")
        out = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise ValueError(f"threat_mapping group {n}: an entry must be {{field, type, value}}")
            fld, val, kind = entry.get("field"), entry.get("value"), entry.get("type")
            if not isinstance(fld, str) or not fld or not isinstance(val, str) or not val:
                raise ValueError(f"threat_mapping group {n}: an entry needs a field and a value (non-empty)")
            if kind != "mapping":
                raise ValueError(f"threat_mapping group {n}: an entry's type must be 'mapping', got {kind!r}")
            if entry.get("negate"):
                # Newer Kibana versions take "does not match" entries; none of Elastic's rules use them.
                raise ValueError(f"threat_mapping group {n}: negated entries do not run yet")
            out.append(MappingEntry(fld, val))
        groups.append(tuple(out))
    return tuple(groups)


def _positive(raw: dict, key: str) -> None:
    value = raw.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be an integer of 1 or more, got {value!r}")


def threat_match_params(raw: dict) -> ThreatMatchParams:
    """The threat_* parameters of an indicator match rule."""
    index = _strings(raw.get("threat_index"), "threat_index")
    if not index:
        raise ValueError("threat_index must name at least one index pattern")
    query = raw.get("threat_query")
    if not isinstance(query, str):
        raise ValueError("an indicator match rule needs a threat_query (KQL)")
    language = raw.get("threat_language") or "kuery"
    if language != "kuery":
        if language == "lucene":
            raise ValueError("threat_query in Lucene does not run yet (KQL does)")
        raise ValueError(f"threat_language must be kuery or lucene, got {language!r}")
    mapping = _mapping(raw.get("threat_mapping"))
    filters = raw.get("threat_filters")
    if filters is not None and not isinstance(filters, list):
        raise ValueError("threat_filters must be a list of filters")
    path = raw.get("threat_indicator_path")
    if path is None:
        path = DEFAULT_INDICATOR_PATH
    if not isinstance(path, str) or not path:
        raise ValueError("threat_indicator_path must be a field path")
    _positive(raw, "items_per_search")
    _positive(raw, "concurrent_searches")
    return ThreatMatchParams(index, query, mapping, filters or [], path)
