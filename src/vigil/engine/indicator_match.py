"""Indicator match (``threat_match``) rules: events matched against threat indicator documents.

One run does what Kibana's indicator match executor does over its ``[from, to]``
window (``rule_types/indicator_match/threat_mapping/``: ``create_threat_signals.ts``,
``create_event_signal.ts``, ``build_threat_mapping_filter.ts``, ``get_threat_list.ts``,
``get_signals_map_from_threat_index.ts``, ``validate_complete_threat_matches.ts``,
``enrich_signal_threat_matches.ts``, ``get_allowed_fields_for_terms_query.ts``, ``utils.ts``):

- **events**: the rule's index, query, filters and exceptions over the window;
- **indicators**: documents of ``threat_index`` that ``threat_query`` (its date math
  read at the run's time), ``threat_filters`` and the exceptions take, and that have
  every indicator field of some mapping group. Kibana searches the indicator index
  as it is when the rule runs; a replay shows a run the indicators written by then
  (``event.ingested``, else ``@timestamp``, at or before the run; one with neither
  is always there);
- **matching**: ``threat_mapping`` groups are OR-ed, the entries of a group AND-ed on
  one indicator. A one-entry group whose two fields are keyword, constant_keyword,
  wildcard or ip is a ``terms`` query: an event matches an indicator when the text of
  the event field's first value (the ``fields`` API's, ``getSignalValueMap``) equals
  the text of one of the indicator's values (``value.toString()``); when there are
  fewer events than indicators Kibana searches the indicators with the events'
  values (``createEventSignal``), else the events with each indicator's first value
  (``createThreatSignal``), which also needs that first value among the event's.
  Other groups are ``match`` queries: each entry's event value must be single (the
  enrichment searches the indicators with it, ``createInnerAndClauses``), and so must
  the indicator's when the events are searched with the indicators' values;
- **alerts**: one per event that matches, the event as a query rule's alert, with
  ``threat.enrichments``: the event's own, then one per matched (indicator, entry):
  ``indicator`` (the indicator's ``threat_indicator_path``, the first if a list),
  ``feed`` (``{name}`` from ``threat.feed.name`` when set), ``matched`` (``atomic``
  the event's value of the field, ``field``, ``id`` and ``index`` of the indicator,
  ``type: indicator_match_rule``); at most 200 matches an event
  (``MAX_NUMBER_OF_SIGNAL_MATCHES``). Events are taken newest first (``sortOrder:
  desc``), at most ``max_signals`` alerts a run; the alert id is the query rule's
  (index, event id, rule), so an event alerted by one run is not alerted again by an
  overlapping one.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vigil.engine.alerts import _raw_get as _get  # lodash get, as Kibana reads _source
from vigil.engine.alerts import build_alert, event_key
from vigil.engine.threshold import js_string
from vigil.eql.ecs import mapping_type
from vigil.eql.fields import lookup
from vigil.events.model import Event
from vigil.rules.indices import matches_patterns
from vigil.rules.threat_params import MappingEntry, ThreatMatchParams, threat_match_params

# enrich_signal_threat_matches.ts
MAX_NUMBER_OF_SIGNAL_MATCHES = 200
# common/cti/constants.ts: ENRICHMENT_TYPES.IndicatorMatchRule, FEED_NAME_PATH
ENRICHMENT_TYPE = "indicator_match_rule"
FEED_NAME_PATH = "threat.feed.name"
# Kibana's rule type for indicator match rules (INDICATOR_RULE_TYPE_ID, rule_types/).
RULE_TYPE_ID = "siem.indicatorRule"
RULE_CATEGORY = "Indicator Match Rule"
# get_allowed_fields_for_terms_query.ts: the types a terms query is built on.
TERMS_TYPES = frozenset({"keyword", "constant_keyword", "wildcard", "ip"})


def params_of(rule) -> ThreatMatchParams:
    return threat_match_params(rule.raw)


def _ip_text(value: Any) -> Any:
    """An ip value as the ``fields`` API returns it (NetworkAddress.format: an
    IPv4-mapped address as IPv4, IPv6 compressed)."""
    if not isinstance(value, str):
        return value
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return value
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def _event_values(doc: dict, name: str) -> list:
    """The ``fields`` API's values of an event field: every leaf, ip addresses formatted."""
    values = lookup(doc, name)
    if mapping_type(name) == "ip":
        values = [_ip_text(v) for v in values]
    return values


def _js_truthy(value: Any) -> bool:
    return not (
        value is None or value is False or value == "" or (isinstance(value, int | float) and value == 0)
    )


def _indicator_values(doc: dict, name: str) -> list:
    """``get(threatHit._source, field)`` spread as Kibana spreads it (one level of list)."""
    value = _get(doc, name)
    return list(value) if isinstance(value, list) else [value]


def _match_text(value: Any, name: str) -> Any:
    """A value as a ``match``/``term`` query on the field compares it."""
    return _ip_text(value) if mapping_type(name) == "ip" else js_string(value)


@dataclass(slots=True)
class Indicator:
    """An indicator document and when it was written."""

    event: Event
    ts: int | None
    id: str
    index: str


@dataclass(slots=True)
class Seen:
    """A matching event of a run and its time."""

    ts: int
    event: Event


def seen(params: ThreatMatchParams, event: Event, ts: int) -> Seen:
    return Seen(ts, event)


def written_at(doc: dict) -> int | None:
    """When an indicator document was written: ``event.ingested``, else ``@timestamp``."""
    from vigil.engine.replay import event_time

    return event_time(doc, "event.ingested")


@dataclass
class IndicatorSource:
    """The indicator documents of one rule: every document of its ``threat_index`` that
    has the indicator fields of some mapping group (Kibana's ``indicatorMappingFilter``)."""

    rule: Any
    params: ThreatMatchParams
    items: list[Indicator] = field(default_factory=list)
    # (where, why) of the documents left out as indicators.
    problems: list[tuple[str | None, str]] = field(default_factory=list)
    _threat_query: dict = field(default_factory=dict)
    _indices: dict = field(default_factory=dict)
    _matcher: tuple = ((), None)

    def offer(self, event: Event) -> bool:
        if event.index is not None:
            taken = self._indices.get(event.index)
            if taken is None:
                if len(self._indices) > 4096:
                    self._indices.clear()
                taken = self._indices[event.index] = matches_patterns(list(self.params.index), event.index)
            if not taken:
                return False
        doc = event.doc
        if not any(all(lookup(doc, e.value) for e in group) for group in self.params.mapping):
            return False
        value = _get(doc, self.params.indicator_path)
        first = (value[0] if value else None) if isinstance(value, list) else value
        if first is not None and not isinstance(first, dict):
            # Kibana's buildEnrichments throws ("Expected indicator field to be an object") and
            # the run fails; Vigil leaves the document out, so one bad indicator blinds no run.
            self.problems.append(
                (
                    event.origin,
                    f"indicator {js_string(event_key(event))[:200]!r} left out of rule {self.rule.name!r}: "
                    f"{self.params.indicator_path} is not an object",
                )
            )
            return False
        self.items.append(Indicator(event, written_at(doc), event_key(event), event.index or ""))
        return True

    def _taken(self, to_ms: int, engine) -> tuple[tuple, list[Indicator], list[float]]:
        """(key, indicators, their sorted write times) that the threat query at ``to_ms``,
        the threat filters and the exceptions take."""
        key, query = threat_query_at(self.rule, self.params, to_ms)
        cached = self._threat_query.get(key)
        if cached is None:
            taken = [
                ind
                for ind in self.items
                if query.matches(ind.event.doc)
                and not (engine is not None and engine._suppressed(self.rule, ind.event.doc))
            ]
            times = sorted(-math.inf if ind.ts is None else ind.ts for ind in taken)
            # Runs go forward in time: one entry is enough.
            self._threat_query = {key: (taken, times)}
            cached = (taken, times)
        return (key, *cached)

    def visible(self, to_ms: int, engine=None) -> list[Indicator]:
        """The indicators a run at ``to_ms`` reads: written by then, taken by the threat
        query at ``to_ms``, the threat filters and the exceptions (in the order read)."""
        _, taken, _ = self._taken(to_ms, engine)
        return [ind for ind in taken if ind.ts is None or ind.ts <= to_ms]

    def matcher(self, to_ms: int, engine=None) -> _Matcher | None:
        """The indicators of a run at ``to_ms`` (see :meth:`visible`) indexed for its events;
        the same one for runs that read the same indicators (None: there are none)."""
        key, _, times = self._taken(to_ms, engine)
        # With one threat query key, runs going forward see more indicators or the same.
        count = bisect.bisect_right(times, to_ms)
        if not count:
            return None
        if self._matcher[0] != (key, count):
            self._matcher = ((key, count), _Matcher(self.params, self.visible(to_ms, engine)))
        return self._matcher[1]


def threat_query_at(rule, params: ThreatMatchParams, now_ms: int):
    """(key, compiled query) of the threat query and filters at ``now_ms``; the key is
    the same for every run whose date math gives the same bounds."""
    from vigil import eql, kql
    from vigil.kql import datemath
    from vigil.kql import tree as T
    from vigil.rules.filters import filters_condition, with_filters

    node = kql.parse(params.query)
    bounds = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, T.Range) and datemath.is_date_math(n.value.text):
            bounds.append(datemath.bound(n.op, n.value.text, now_ms))
        for attr in ("terms",):
            stack.extend(getattr(n, attr, ()))
        for attr in ("query",):
            sub = getattr(n, attr, None)
            if isinstance(sub, T.Node):
                stack.append(sub)
    key = tuple(bounds)
    cached = _COMPILED.get((params.query, id(params.filters), key))
    if cached is None:
        from vigil.kql.translate import to_eql

        statement = with_filters(to_eql(node, params.query, now_ms=now_ms), filters_condition(params.filters))
        cached = eql.compile(statement, options=rule.eql_options())
        if len(_COMPILED) > 256:
            _COMPILED.clear()
        _COMPILED[(params.query, id(params.filters), key)] = cached
    return key, cached


_COMPILED: dict = {}


def check_threat_query(rule, params: ThreatMatchParams) -> None:
    """Raise the error that keeps the threat query (and filters) or the mapping from running."""
    from vigil.kql.translate import field_type

    for group in params.mapping:
        if not _terms_group(group):
            for e in group:
                for name in (e.field, e.value):
                    if field_type(name) == "text":
                        # A match query analyses the value with the field's analyzer.
                        raise ValueError(f"threat_mapping on the text field {name} does not run yet")
    threat_query_at(rule, params, 0)


@dataclass(frozen=True, slots=True)
class Match:
    """One matched query: an indicator and the mapping entry it matched on."""

    indicator: Indicator
    entry: MappingEntry


def _terms_group(group: tuple[MappingEntry, ...]) -> bool:
    return len(group) == 1 and all(
        mapping_type(e.field) in TERMS_TYPES and mapping_type(e.value) in TERMS_TYPES for e in group
    )


class _Matcher:
    """The indicators of one run, indexed for the events of that run."""

    def __init__(self, params: ThreatMatchParams, indicators: list[Indicator]):
        self.params = params
        self.indicators = indicators
        # Set per run: whether Kibana searches the indicators with the events' values.
        self.event_first = True
        # Per terms group: indicator value text -> indicators holding it (in order); one
        # table per indicator field, shared by the groups that read it.
        self.terms: dict[int, dict[Any, list[int]]] = {}
        tables: dict[str, dict[Any, list[int]]] = {}
        for g, group in enumerate(params.mapping):
            if _terms_group(group):
                name = group[0].value
                if name not in tables:
                    table: dict[Any, list[int]] = {}
                    for k, ind in enumerate(indicators):
                        for v in _indicator_values(ind.event.doc, name):
                            if _js_truthy(v) and not isinstance(v, dict | list):
                                bucket = table.setdefault(js_string(v), [])
                                if not bucket or bucket[-1] != k:
                                    bucket.append(k)
                    tables[name] = table
                self.terms[g] = tables[name]
        # Per match group and entry: (indicator, values as the match compares them).
        self.match_values: dict[int, list[tuple[int, list[list]]]] = {}
        for g, group in enumerate(params.mapping):
            if g not in self.terms:
                rows = []
                for k, ind in enumerate(indicators):
                    rows.append(
                        (
                            k,
                            [
                                [_match_text(v, e.field) for v in lookup(ind.event.doc, e.value)]
                                for e in group
                            ],
                        )
                    )
                self.match_values[g] = rows

    def matches(self, doc: dict) -> list[Match]:
        """The matched queries of an event, grouped by indicator as
        validateCompleteThreatMatches leaves them (at most 200)."""
        found: dict[int, set[int]] = {}  # indicator -> groups fully matched
        for g, group in enumerate(self.params.mapping):
            if g in self.terms:
                for k in self._term_hits(g, group[0], doc):
                    found.setdefault(k, set()).add(g)
            else:
                for k in self._match_hits(g, group, doc):
                    found.setdefault(k, set()).add(g)
        out: list[Match] = []
        for k in sorted(found):
            done: set[MappingEntry] = set()
            for g in sorted(found[k]):
                for e in self.params.mapping[g]:
                    if e not in done:
                        done.add(e)
                        out.append(Match(self.indicators[k], e))
        return out[:MAX_NUMBER_OF_SIGNAL_MATCHES]

    def _term_hits(self, g: int, e: MappingEntry, doc: dict) -> list[int]:
        values = _event_values(doc, e.field)
        if not values or not _js_truthy(values[0]) or isinstance(values[0], dict | list):
            return []
        # Kibana keeps the first 200 matches of an event: the first 200 indicators of each
        # group hold the first 200 of all (and a value every indicator has costs no more).
        hits = self.terms[g].get(js_string(values[0]), [])[:MAX_NUMBER_OF_SIGNAL_MATCHES]
        if self.event_first or not hits:
            return hits
        # The events were searched with each indicator's first value (a terms query on the
        # event field): that value must be among the event's.
        texts = {js_string(v) for v in values}
        out = []
        for k in hits:
            first = _indicator_values(self.indicators[k].event.doc, e.value)[0]
            if first is not None and _match_text(first, e.field) in texts:
                out.append(k)
        return out

    def _match_hits(self, g: int, group: tuple[MappingEntry, ...], doc: dict) -> list[int]:
        # The matched queries are always built from the events' values (the enrichment
        # searches the indicators with them, getSignalIdToMatchedQueriesMap): each single.
        event_values = [[_match_text(v, e.field) for v in _event_values(doc, e.field)] for e in group]
        if any(len(vs) != 1 for vs in event_values):
            return []
        out = []
        for k, ind_values in self.match_values[g]:
            # Searching the events with the indicators' values takes single ones too.
            if not self.event_first and any(len(vs) != 1 for vs in ind_values):
                continue
            if all(ev[0] in iv for ev, iv in zip(event_values, ind_values, strict=True)):
                out.append(k)
                if len(out) == MAX_NUMBER_OF_SIGNAL_MATCHES:
                    break
        return out


def enrichment(match: Match, doc: dict, indicator_path: str) -> dict:
    """One ``threat.enrichments`` entry (buildEnrichments, then the atomic value)."""
    source = match.indicator.event.doc
    value = _get(source, indicator_path)
    indicator = (value[0] if value else None) if isinstance(value, list) else value
    if indicator is None:
        indicator = {}
    feed_name = _get(source, FEED_NAME_PATH)
    feed = {"name": feed_name} if _js_truthy(feed_name) else {}
    matched: dict[str, Any] = {
        "atomic": _get(doc, match.entry.field),
        "field": match.entry.field,
        "id": match.indicator.id,
        "index": match.indicator.index,
        "type": ENRICHMENT_TYPE,
    }
    if matched["atomic"] is None:
        del matched["atomic"]  # undefined: JSON leaves it out
    return {"indicator": indicator, "feed": feed, "matched": matched}


def _with_enrichments(alert: dict, doc: dict, enrichments: list[dict]) -> None:
    threat = _get(doc, "threat")
    threat = dict(threat) if isinstance(threat, dict) else {}
    existing = _get(doc, "threat.enrichments")
    existing = [] if existing is None else existing if isinstance(existing, list) else [existing]
    threat["enrichments"] = [*existing, *enrichments]
    alert.pop("threat.enrichments", None)
    alert["threat"] = threat


def run_indicator_match(
    rule,
    params: ThreatMatchParams,
    events: list[Seen],
    matcher: _Matcher | None,
    seen_ids: set[str],
    *,
    to_ms: int,
) -> list[dict]:
    """The alerts of one run over ``events`` (those of the window, ascending time)
    against the indicators the run reads (:meth:`IndicatorSource.matcher`)."""
    if not events or matcher is None:
        return []
    matcher.event_first = len(events) < len(matcher.indicators)
    started = datetime.fromtimestamp(to_ms / 1000, UTC)
    alerts: list[dict] = []
    for item in reversed(events):  # newest first
        if len(alerts) >= rule.max_signals:
            break
        found = matcher.matches(item.event.doc)
        if not found:
            continue
        alert = build_alert(rule, item.event, now=started)
        if alert["kibana.alert.uuid"] in seen_ids:
            continue
        seen_ids.add(alert["kibana.alert.uuid"])
        alert["kibana.alert.rule.rule_type_id"] = RULE_TYPE_ID
        alert["kibana.alert.rule.category"] = RULE_CATEGORY
        _with_enrichments(
            alert, item.event.doc, [enrichment(m, item.event.doc, params.indicator_path) for m in found]
        )
        alerts.append(alert)
    return alerts
