"""What a scheduled run carries from one run to the next, kept in the store.

Threshold, new terms and ES|QL rules run in ``vigil serve`` with the code the scan's replay
runs (:mod:`vigil.engine.threshold`, :mod:`vigil.engine.new_terms`,
:class:`vigil.engine.replay.Replay` for the query, exceptions and event times):

- a threshold rule's signal history (Kibana keeps it in the rule's task state) is
  stored with the run that leaves it, in the same transaction as the schedule, so a
  restart goes on from it;
- a new terms rule's history, ``[to - history_window_start, to]``, is read from the
  event store: in full on its first run after a start, then, on each run, the events
  stored since (:class:`TermsHistory`);
- suppression (:mod:`vigil.engine.suppression`) finds the alert it updates in the
  alert store; a custom query rule's groups already alerted on (Kibana's
  ``suppressionGroupHistory``) are stored with the run.

Rules over ``.alerts-security.*`` read the alert store as that index
(:mod:`vigil.store.alert_index`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from vigil.engine import esql_rule, indicator_match, new_terms, suppression, threshold
from vigil.engine.replay import Replay
from vigil.events.model import Event
from vigil.store.alerts import AlertStore

# The scheduled rule types serve runs (vigil.rules.model.SCHEDULED_TYPES may hold more).
SERVED = ("threshold", "new_terms", "esql", "threat_match")
SIGNAL_HISTORY = "threshold.signal_history"
# A store's events after a position: (the last position read, the events).
Source = Callable[[int], tuple[int, list[Event]]]
BUCKET_HISTORY = "suppression.bucket_history"
# Events fed to a replay shared by many rules at once (Replay.feed_batch: the rules'
# queries run as masks over the batch).
FEED_BATCH = 8192


def load_threshold_state(data: Any) -> threshold.ThresholdState:
    state = threshold.ThresholdState()
    if isinstance(data, dict):
        state.initialized = bool(data.get("initialized"))
        for h, (terms, last) in (data.get("history") or {}).items():
            state.history[h] = ([(f, v) for f, v in terms], int(last))
    return state


def dump_threshold_state(state: threshold.ThresholdState) -> dict:
    return {
        "initialized": state.initialized,
        "history": {h: [[list(t) for t in terms], last] for h, (terms, last) in state.history.items()},
    }


class TermsHistory:
    """A new terms rule's terms and their times over its history window, brought up to date
    on each run from the events stored since the last one (a late event too), so a run
    evaluates the rule's query on new events only. Rebuilt from the store after a restart."""

    def __init__(self) -> None:
        self.index = new_terms.NewTermsIndex()
        self.positions: dict[str, int] = {}  # source -> the position read up to

    def catch_up(self, rule, engine, sources: dict[str, Source]) -> None:
        replay = Replay([rule], engine=engine)
        for events in stored_since(self.positions, sources):
            for event in events:
                replay.feed(event)
            for ts, item in replay.drain(rule.rule_id):
                self.index.insert(new_terms.Seen(ts, None, item.terms))


def stored_since(positions: dict[str, int], sources: dict[str, Source]) -> Iterator[list[Event]]:
    """The events each source stored after the position last read (``positions``, by
    source), a page at a time; a page's position is kept once the caller has taken it."""
    for name, after in sources.items():
        while True:
            position, events = after(positions.get(name, 0))
            if not events:
                break
            yield events
            positions[name] = position


class IndicatorHistory:
    """An indicator match rule's indicators: the stored documents of its threat index,
    brought up to date on each run from the events stored since the last one (rebuilt from
    the store after a restart); each run reads those its threat query takes at its time
    and that were written by then (:class:`vigil.engine.indicator_match.IndicatorSource`)."""

    def __init__(self, rule) -> None:
        self.source = indicator_match.IndicatorSource(rule, indicator_match.params_of(rule))
        self.positions: dict[str, int] = {}

    def catch_up(self, sources: dict[str, Source]) -> None:
        for events in stored_since(self.positions, sources):
            for event in events:
                self.source.offer(event)


def catch_up_together(
    rules: list,
    histories: dict[str, TermsHistory],
    engine,
    sources: dict[str, Source],
    fed: Fed | None = None,
) -> None:
    """:meth:`TermsHistory.catch_up` for many new terms rules at once: the rules whose
    histories were read up to the same place are fed the events stored since in one
    replay, in batches (each batch's queries run as masks over it), and each history
    takes its rule's terms.

    ``fed``: events a replay with the same engine was fed already, and what each rule kept
    of them (:class:`Fed`): those among the events stored since are not fed again, their
    kept items are taken as they are (the same query, exceptions and event time decide)."""
    groups: dict[tuple, list] = {}
    for rule in rules:
        groups.setdefault(tuple(sorted(histories[rule.rule_id].positions.items())), []).append(rule)
    for place, group in groups.items():
        if len(group) < 2 and fed is None:
            histories[group[0].rule_id].catch_up(group[0], engine, sources)
            continue
        replay = Replay(group, engine=engine)
        positions = dict(place)
        for events in stored_since(positions, sources):
            if fed is not None:
                events = fed.take(group, events, histories)
            for k in range(0, len(events), FEED_BATCH):
                replay.feed_batch(events[k : k + FEED_BATCH])
        for rule in group:
            history = histories[rule.rule_id]
            for ts, item in replay.drain(rule.rule_id):
                history.index.insert(new_terms.Seen(ts, None, item.terms))
            history.positions = dict(positions)


class Fed:
    """The events a shared replay was fed (by identity) and each new terms rule's items
    kept of them (:meth:`Replay.take`'s), so that a history's catch-up over events stored
    since a position feeds only those the replay was not fed."""

    def __init__(self, events: list[Event], kept: dict[str, list]) -> None:
        self.ids = {id(e) for e in events}
        self.kept = kept
        self._events = events  # held, so that no id is reused while this lives

    def take(self, rules: list, events: list[Event], histories: dict[str, TermsHistory]) -> list[Event]:
        """Put into each rule's history the items kept of ``events`` that were fed; return
        the others, to be fed."""
        ids = {id(e) for e in events}
        if not ids & self.ids:
            return events
        for rule in rules:
            index = histories[rule.rule_id].index
            for item in self.kept.get(rule.rule_id, ()):
                if id(item.event) in ids:
                    index.insert(new_terms.Seen(item.ts, None, item.terms))
        return [e for e in events if id(e) not in self.ids]


def scheduled_alerts(
    rule,
    engine,
    window: list[Event] | None,
    history: TermsHistory | IndicatorHistory | None,
    sources: dict[str, Source],
    memory: dict[str, Any],
    *,
    from_ms: int,
    to_ms: int,
    taken: Any = None,
) -> list[dict]:
    """One run of a threshold or new terms rule over ``window`` (the events of ``[from_ms,
    to_ms]``); ``history`` is a new terms rule's, kept up to date from ``sources`` (each
    gives the events stored after a position); ``memory`` holds what the last run left and takes what this one leaves.

    ``taken``: what the rule takes of a span of events holding the window, already found by a
    replay feed shared with other rules (:meth:`Replay.take`'s parameters, times and items;
    for an ES|QL rule the times and the events its FROM, leading WHERE and exceptions keep,
    in the span's order): the window's part is cut on those times, and ``window`` is not read."""
    if rule.type == "esql":
        kept = None
        if taken is not None:
            kept = [event for ts, event in zip(*taken, strict=True) if from_ms <= ts <= to_ms]
        return _esql_run(rule, engine, window, from_ms=from_ms, to_ms=to_ms, kept=kept)
    if taken is None:
        replay = Replay([rule], engine=engine)
        for event in window or ():
            replay.feed(event)
        taken = replay.take(rule.rule_id)
    params, times, items = taken
    items = items[bisect.bisect_left(times, from_ms) : bisect.bisect_right(times, to_ms)]
    if rule.type == "threat_match":
        assert isinstance(history, IndicatorHistory)
        history.catch_up(sources)
        matcher = history.source.matcher(to_ms, engine)
        # Ids already written are the alert store's to refuse (a uuid is kept once).
        return indicator_match.run_indicator_match(rule, params, items, matcher, set(), to_ms=to_ms)
    if rule.type == "threshold":
        state = load_threshold_state(memory.get(SIGNAL_HISTORY))
        alerts = threshold.run_threshold(rule, params, items, state, from_ms=from_ms, to_ms=to_ms)
        memory[SIGNAL_HISTORY] = dump_threshold_state(state)
        return alerts
    assert history is not None
    history.catch_up(rule, engine, sources)
    history.index.prune(to_ms - params.history_ms)
    # The window was read before the catch-up: its events are in the index.
    # Ids already written are the alert store's to refuse (a uuid is kept once).
    return new_terms.run_new_terms(rule, params, items, history.index, set(), from_ms=from_ms, to_ms=to_ms)


def _esql_run(
    rule, engine, window: list[Event] | None, *, from_ms: int, to_ms: int, kept: list[Event] | None = None
) -> list[dict]:
    """One run of an ES|QL rule: its query over the window's events of the indices its FROM
    reads, less those its exceptions cover, as the scan's replay runs it
    (:func:`vigil.engine.esql_rule.run_esql`). Alert ids are stable across runs (a
    non-aggregating alert's from its document, an aggregating one's from the window), and
    the alert store keeps each id once, so overlapping look-backs never alert twice on a
    document."""
    program = rule.compiled()
    if kept is not None:
        # The replay's feed (vigil.engine.esql_rule.EsqlReplay) applied the FROM, the leading
        # WHERE and the exceptions.
        return esql_rule.run_esql(
            rule, program, kept, from_ms=from_ms, to_ms=to_ms, seen=set(), excluded=set(), kept=True
        )
    events = [
        e
        for e in window or ()
        if esql_rule.takes_index(program, e.index) and not engine._suppressed(rule, e.doc)
    ]
    return esql_rule.run_esql(rule, program, events, from_ms=from_ms, to_ms=to_ms, seen=set(), excluded=set())


class StoreIndex(suppression.AlertIndex):
    def __init__(self, store: AlertStore) -> None:
        self.store = store

    def known(self, uuids: list[str]) -> set[str]:
        return self.store.known(uuids)

    def open_by_instance(self, instance_ids: list[str], since_ms: int) -> dict[str, dict]:
        return self.store.open_by_instance(instance_ids, since_ms)


def write_suppressed(
    rule,
    spec: suppression.Suppression,
    alerts: list[dict],
    events: list[Event] | Mapping[tuple[str, str], Event],
    store: AlertStore,
    memory: dict[str, Any],
    *,
    now: datetime,
    now_ms: int,
    from_ms: int,
    to_ms: int,
) -> tuple[int, int]:
    """Write a run's alerts with suppression; returns (alerts created, alerts suppressed).

    ``alerts`` are the rule's alerts of the run (uncapped), ``events`` the events of the
    window, or those by (index, id) (each alert's source is found among them by its ancestor)."""
    by_key = events if isinstance(events, Mapping) else {(e.index or "", e.id): e for e in events}

    def source(alert: dict) -> dict | None:
        if alert.get("kibana.alert.group.id"):
            return None  # a sequence's terms are its shell alert's (buildShellAlertSuppressionTermsAndFields)
        for ancestor in alert.get("kibana.alert.ancestors") or []:
            if isinstance(ancestor, dict) and ancestor.get("depth", 0) == 0:
                event = by_key.get((str(ancestor.get("index") or ""), str(ancestor.get("id"))))
                if event is not None:
                    return event.doc
        return None

    ordinary: list[list[dict]] = []
    if rule.type == "query":
        history = suppression.BucketHistory.load(memory.get(BUCKET_HISTORY))
        matched = []
        for alert in alerts:
            for ancestor in alert.get("kibana.alert.ancestors") or []:
                event = by_key.get((str(ancestor.get("index") or ""), str(ancestor.get("id"))))
                if event is not None:
                    ts = suppression.event_time(event.doc, rule)
                    matched.append((event, ts if ts is not None else to_ms))
        matched.sort(key=lambda pair: pair[1])
        candidates, plain = suppression.query_candidates(
            rule, spec, matched, history, now=now, from_ms=from_ms, to_ms=to_ms
        )
        memory[BUCKET_HISTORY] = history.dump()
        wanted = {(e.index or "", e.id) for e in plain}
        ordinary = [
            [a]
            for a in alerts
            if any(
                (str(x.get("index") or ""), str(x.get("id"))) in wanted
                for x in a.get("kibana.alert.ancestors") or []
            )
        ]
        signals = [[c] for c in candidates]
        if spec.duration_ms is None:
            # Per rule execution a custom query rule's groups are plain alerts (groupAndBulkCreate).
            written = store.add([a for s in [*ordinary, *signals] for a in s])
            return written, sum(s[0][suppression.DOCS] for s in signals)
    else:
        signals, ordinary = suppression.in_memory_candidates(rule, spec, alerts, source)
    outcome = suppression.persist(
        signals,
        StoreIndex(store),
        window_start_ms=suppression.window_start(spec, now_ms=now_ms, from_ms=from_ms),
        per_execution=spec.duration_ms is None,
        execution_id=suppression.execution_uuid(rule, now_ms),
        now_ms=now_ms,
        max_alerts=rule.max_signals,
    )
    store.replace(outcome.updated)
    written = store.add([a for s in [*ordinary, *outcome.created] for a in s])
    return written, outcome.suppressed
