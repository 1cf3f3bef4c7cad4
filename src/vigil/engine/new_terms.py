"""New terms rules: an alert for a value (or combination of values) not seen before in the history window.

As Kibana's new terms executor (``rule_types/new_terms/``:
``create_new_terms_alert_type.ts``, ``build_new_terms_aggregation.ts``,
``multi_terms_composite.ts``, ``wrap_new_terms_alerts.ts``):

- the rule's query and exceptions select the events of every phase, the history
  included; an event gives one term per combination of its fields' distinct values
  (the cartesian product of arrays), none when a field is missing;
- a term seen in a run's ``[from, to]`` is new when its earliest event in
  ``[to - history_window_start, to]`` is strictly after ``from``;
- each new term gives one alert, on the first event of the run that holds it, with
  ``kibana.alert.new_terms`` (the values in field order); new terms come in
  ascending key order and at most ``max_signals`` alerts are created per run;
- the alert id is a hash of the event's index and id, the rule and the new terms, so
  a term found again by an overlapping run is the same alert, kept once.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vigil.engine.alerts import alert_uuid, build_alert, event_key, rule_uuid
from vigil.engine.threshold import combinations, distinct, js_string, sort_key
from vigil.eql.fields import lookup
from vigil.events.model import Event
from vigil.rules.params import NewTermsParams, new_terms_params


@dataclass(slots=True)
class Seen:
    """One matching event and the terms it holds."""

    ts: int
    event: Event
    terms: list[tuple]


def seen(params: NewTermsParams, event: Event, ts: int) -> Seen:
    values = [distinct(lookup(event.doc, f)) for f in params.fields]
    return Seen(ts, event, combinations(values))


def _ident(term: tuple) -> tuple:
    return tuple((type(v) is str, js_string(v)) for v in term)


@dataclass
class NewTermsIndex:
    """Every term's event times (ascending), for first-seen lookups over any window."""

    times: dict[tuple, list[int]] = field(default_factory=dict)

    def add(self, item: Seen) -> None:
        # Events arrive in ascending time: each list stays sorted.
        for term in item.terms:
            self.times.setdefault(_ident(term), []).append(item.ts)

    def insert(self, item: Seen) -> None:
        """Add an event that may be older than those already in (a late arrival)."""
        for term in item.terms:
            bisect.insort(self.times.setdefault(_ident(term), []), item.ts)

    def prune(self, start_ms: int) -> None:
        """Forget the times before ``start_ms`` (out of every later history window)."""
        for key in list(self.times):
            times = self.times[key]
            del times[: bisect.bisect_left(times, start_ms)]
            if not times:
                del self.times[key]

    def first_seen(self, term: tuple, start_ms: int) -> int | None:
        times = self.times.get(_ident(term), [])
        i = bisect.bisect_left(times, start_ms)
        return times[i] if i < len(times) else None


def run_new_terms(
    rule,
    params: NewTermsParams,
    events: list[Seen],
    index: NewTermsIndex,
    seen_ids: set[str],
    *,
    from_ms: int,
    to_ms: int,
    event_of=None,
) -> list[dict]:
    """The alerts of one run over ``events`` (those of ``[from_ms, to_ms]``, ascending time).
    ``index`` holds the terms of every matching event, so the history window is read
    from it; ``seen_ids`` holds the ids already written (a duplicate is not created).
    ``event_of`` gives the event an item stands for (its events wait on disk, read only
    for the alerts: vigil.engine.spill)."""
    history_start = to_ms - params.history_ms
    first_event: dict[tuple, tuple[tuple, Seen]] = {}
    for item in events:
        for term in item.terms:
            ident = _ident(term)
            if ident not in first_event:
                first_event[ident] = (term, item)
    new = []
    for term, item in first_event.values():
        first = index.first_seen(term, history_start)
        if first is not None and first > from_ms:
            new.append((term, item))
    new.sort(key=lambda pair: tuple(sort_key(v) for v in pair[0]))
    started = datetime.fromtimestamp(to_ms / 1000, UTC)
    alerts: list[dict] = []
    for term, item in new:
        if len(alerts) >= rule.max_signals:
            break
        event = item.event if event_of is None else event_of(item.event)
        alert_id = alert_uuid(
            event.index or "",
            event_key(event),
            rule_uuid(rule),
            json.dumps(list(term), default=str),
        )
        if alert_id in seen_ids:
            continue
        seen_ids.add(alert_id)
        alert = build_alert(rule, event, now=started)
        alert["kibana.alert.new_terms"] = list(term)
        alert["kibana.alert.uuid"] = alert_id
        alerts.append(alert)
    return alerts


def params_of(rule) -> NewTermsParams:
    return new_terms_params(rule.raw, rule.from_)
