"""Threshold rules: events grouped by the threshold fields, an alert per group that reaches the count.

One run does what Kibana's threshold executor does with one search over its
``[from, to]`` window (``rule_types/threshold/``: ``threshold.ts``,
``find_threshold_signals.ts``, ``build_threshold_aggregation.ts``,
``bulk_create_threshold_signals.ts``, ``get_threshold_bucket_filters.ts``,
``build_signal_history.ts``, ``utils.ts``):

- a composite aggregation with one ``terms`` source per field: an event gives one
  bucket per combination of its fields' distinct values, none when a field is
  missing; with no field, the whole window is one bucket;
- a bucket is kept when its count reaches ``value`` and, when ``cardinality`` is
  set, its distinct values of that field reach the cardinality value; buckets come
  in ascending key order, at most ``max_signals`` of them;
- each bucket becomes a synthetic event (``transformBucketIntoHit``): the bucket's
  terms as fields, ``@timestamp`` the bucket's latest event, ``threshold_result``
  (terms, count, from, cardinality), id ``uuidv5(rule_id + run start + fields +
  sorted key values)``;
- the signal history: for each group alerted on, the time of its latest counted
  event; later runs leave out the events of that group up to that time, so a group
  alerts again only when newer events reach the threshold again. Entries at or
  before a run's ``from`` are dropped first.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vigil.engine.alerts import build_alert
from vigil.eql.dates import iso_from_millis
from vigil.eql.fields import lookup
from vigil.events.model import Event
from vigil.rules.params import ThresholdParams, threshold_params

# calculateThresholdSignalUuid's NAMESPACE_ID (threshold/utils.ts).
NAMESPACE = uuid.UUID("0684ec03-7201-4ee0-8ee0-3a3f6b2479b2")
# A search's hits.total is exact up to Elasticsearch's default track_total_hits.
TRACK_TOTAL_HITS = 10_000
# An event gives one bucket per combination of its fields' values; an event from a hostile
# host could hold enough values for billions of them. Vigil takes the first ones only.
MAX_COMBINATIONS = 10_000


def js_string(value: Any) -> str:
    """A term value as JavaScript's String() writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def sort_key(value: Any) -> tuple:
    """Composite key order: numbers before strings (mixed types come from mixed mappings)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, js_string(value))


def distinct(values: list) -> list:
    """A field's doc values: each distinct scalar once (objects are not terms)."""
    out: list = []
    seen: set = set()
    for v in values:
        if isinstance(v, dict | list):
            continue
        key = (type(v) is str, js_string(v))
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def combinations(values) -> list[tuple]:
    """The combinations of the fields' values (the cartesian product), at most MAX_COMBINATIONS."""
    return list(itertools.islice(itertools.product(*values), MAX_COMBINATIONS))


@dataclass(slots=True)
class Counted:
    """What a run needs of one matching event."""

    ts: int
    values: tuple[list, ...]  # the distinct values of each threshold field
    cardinality: list  # the distinct values of the cardinality field


def counted(params: ThresholdParams, doc: dict, ts: int) -> Counted:
    values = tuple(distinct(lookup(doc, f)) for f in params.fields)
    card = distinct(lookup(doc, params.cardinality_field)) if params.cardinality_field else []
    return Counted(ts, values, card)


def threshold_uuid(rule_id: str, started_ms: int, fields: tuple[str, ...] | list[str], key: tuple) -> str:
    """calculateThresholdSignalUuid: uuid v5 of the rule id, the run's start (ISO), the fields
    and the bucket's key values sorted as strings."""
    text = f"{rule_id}{iso_from_millis(started_ms)}{','.join(fields)}{','.join(sorted(js_string(v) for v in key))}"
    return str(uuid.uuid5(NAMESPACE, text))


def terms_hash(terms: list[tuple[str, Any]]) -> str:
    """getThresholdTermsHash: sha256 of ``field:value`` pairs sorted by field."""
    text = ",".join(f"{f}:{js_string(v)}" for f, v in sorted(terms, key=lambda t: t[0]))
    return hashlib.sha256(text.encode()).hexdigest()


def _term_matches(values: list, wanted: Any) -> bool:
    """A ``term`` query with the value written as a string: numbers compare as numbers."""
    text = js_string(wanted)
    for v in values:
        if js_string(v) == text:
            return True
        if isinstance(v, int | float) and not isinstance(v, bool):
            try:
                if float(text) == v:
                    return True
            except ValueError:
                pass
    return False


@dataclass(slots=True)
class _Bucket:
    key: tuple
    count: int = 0
    first: int = 0
    last: int = 0
    distinct: set = field(default_factory=set)


@dataclass
class ThresholdState:
    """The signal history of one rule: terms hash -> (terms, time of the last counted event)."""

    history: dict[str, tuple[list[tuple[str, Any]], int]] = field(default_factory=dict)
    initialized: bool = False

    def prune(self, from_ms: int) -> None:
        # getSignalHistory: entries at or before the run's from are dropped (once initialized).
        if self.initialized:
            self.history = {h: e for h, e in self.history.items() if e[1] > from_ms}

    def excludes(self, params: ThresholdParams, event: Counted) -> bool:
        """getThresholdBucketFilters: the event is at or before a group's last signal and
        holds every term of that group."""
        for terms, last in self.history.values():
            if event.ts > last:
                continue
            if all(_term_matches(event.values[params.fields.index(f)], v) for f, v in terms):
                return True
        return False


def run_threshold(
    rule,
    params: ThresholdParams,
    events: list[Counted],
    state: ThresholdState,
    *,
    from_ms: int,
    to_ms: int,
) -> list[dict]:
    """The alerts of one run over ``events`` (those of ``[from_ms, to_ms]``, ascending time);
    ``state`` carries the signal history from run to run."""
    state.prune(from_ms)
    kept = [e for e in events if not state.excludes(params, e)]
    buckets = _buckets(params, kept)
    chosen = [
        b
        for b in buckets
        if b.count >= params.value
        and (params.cardinality_field is None or len(b.distinct) >= params.cardinality_value)
    ]
    chosen = chosen[: rule.max_signals]
    started = datetime.fromtimestamp(to_ms / 1000, UTC)
    alerts = [_alert(rule, params, b, started, from_ms, to_ms) for b in chosen]
    for b in chosen:
        terms = list(zip(params.fields, b.key, strict=True))
        state.history[terms_hash(terms)] = (terms, b.last)
    state.initialized = True
    return alerts


def _buckets(params: ThresholdParams, events: list[Counted]) -> list[_Bucket]:
    if not params.fields:
        if not events:
            return []
        whole = _Bucket((), min(len(events), TRACK_TOTAL_HITS), events[0].ts, events[-1].ts)
        for e in events:
            whole.distinct.update((type(v) is str, js_string(v)) for v in e.cardinality)
        return [whole]
    groups: dict[tuple, _Bucket] = {}
    for e in events:
        for key in combinations(e.values):
            ident = tuple((type(v) is str, js_string(v)) for v in key)
            b = groups.get(ident)
            if b is None:
                b = groups[ident] = _Bucket(key, 0, e.ts, e.ts)
            b.count += 1
            b.first = min(b.first, e.ts)
            b.last = max(b.last, e.ts)
            b.distinct.update((type(v) is str, js_string(v)) for v in e.cardinality)
    return sorted(groups.values(), key=lambda b: tuple(sort_key(v) for v in b.key))


def _alert(rule, params: ThresholdParams, b: _Bucket, started: datetime, from_ms: int, to_ms: int) -> dict:
    alert_id = threshold_uuid(rule.rule_id, to_ms, params.fields, b.key)
    result: dict[str, Any] = {
        "terms": [{"field": f, "value": v} for f, v in zip(params.fields, b.key, strict=True)],
        "count": b.count,
        "from": iso_from_millis(b.first),
    }
    if params.cardinality_field:
        result["cardinality"] = [{"field": params.cardinality_field, "value": len(b.distinct)}]
    doc: dict[str, Any] = {"@timestamp": iso_from_millis(b.last)}
    doc.update(zip(params.fields, b.key, strict=True))
    # The synthetic hit's _index is the rule's index patterns joined (bulkCreateThresholdSignals).
    synthetic = Event(doc, ",".join(rule.index), alert_id, None)
    alert = build_alert(rule, synthetic, now=started)
    alert["kibana.alert.threshold_result"] = result
    alert["kibana.alert.uuid"] = alert_id
    return alert


def params_of(rule) -> ThresholdParams:
    return threshold_params(rule.raw)
