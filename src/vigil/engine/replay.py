"""Replaying a schedule over a file: threshold and new terms rules in ``vigil scan``.

A file has no schedule, so a scan replays one. Each rule runs as Kibana would have
run it had it been enabled when the data begins (or at ``start_ms``): a first run
at that time, then one every ``interval``, until a run has reached the last event.
Run ``k`` searches ``[t_k - from, t_k]`` where ``t_k = start + k * interval``, with
``t_k`` as the run's start (alert ``@timestamp``, threshold ids). History is read
from the same data: a new terms rule's first run looks back ``history_window_start``
into the file, so at the beginning of a file every term is new.

Event times are the rule's ``timestamp_override`` with ``@timestamp`` as the fallback
(Kibana's ``kibana.combined_timestamp``); an event without either is never searched.
Runs whose window holds no event raise nothing and are skipped. The same data gives
the same runs, so the same alerts and ids.
"""

from __future__ import annotations

import bisect
import dataclasses
import io
import itertools
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vigil.engine import indicator_match, new_terms, threshold
from vigil.engine.esql_rule import EsqlReplay
from vigil.engine.routing import Router
from vigil.engine.spill import Spill
from vigil.engine.suppression import ReplaySuppressor
from vigil.eql.dates import to_millis
from vigil.eql.fields import lookup
from vigil.events.model import Event
from vigil.scheduler.windows import duration_ms
from vigil.store.alert_index import alert_event

TIMESTAMP = "@timestamp"


# Events a scan's replay keeps in memory before it writes the rest to disk until their
# runs: reading them back cost a fifth of a whole-set scan of 50,000 dense events.
IN_MEMORY = 20_000


def event_time(doc: dict, override: str | None) -> int | None:
    """The combined timestamp: the override field's value when it has one, else ``@timestamp``."""
    for name in (override, TIMESTAMP) if override else (TIMESTAMP,):
        values = lookup(doc, name)
        if values:
            ms = to_millis(values[0])
            if ms is not None:
                return ms
    return None


@dataclass
class _Replayed:
    """One rule's matching events, in ascending time, with what its runs need."""

    rule: Any
    params: Any
    items: list = field(default_factory=list)  # (ts, arrival, item)

    def add(self, event: Event, ts: int, arrival: int, spill: Spill | None = None) -> None:
        if self.rule.type == "threshold":
            item = threshold.counted(self.params, event.doc, ts)
        elif self.rule.type == "threat_match":
            item = indicator_match.seen(self.params, event, ts)
        else:
            item = new_terms.seen(self.params, event, ts)
        if spill is not None and hasattr(item, "event"):
            # The event waits on disk for its runs; its place stands for it (see _runs).
            item = dataclasses.replace(item, event=spill.park(event))
        self.items.append((ts, arrival, item))


def schedule(rule, times: list[int], start_ms: int | None = None) -> Iterator[tuple[int, int]]:
    """``(from, to)`` of each run whose window holds one of ``times`` (ascending), from the
    run at ``start_ms`` (default: the first time) to the first run at or past the last time."""
    if not times:
        return
    interval = duration_ms(rule.interval, what="interval")
    span = duration_ms(rule.from_, what="from")
    begin = times[0] if start_ms is None else start_ms
    last = times[-1]
    t = begin
    while True:
        # The next event this run or a later one can see: skip the empty runs before it.
        i = bisect.bisect_left(times, t - span)
        if i == len(times):
            return
        if times[i] > t:
            t += -(-(times[i] - t) // interval) * interval
        yield t - span, t
        if t >= last:
            return
        t += interval


class Replay:
    """Threshold and new terms rules over a stream of events, replayed on their schedules."""

    def __init__(
        self, rules: Iterable[Any], *, engine=None, start_ms: int | None = None, spill: bool = False
    ) -> None:
        """``spill``: past the first :data:`IN_MEMORY`, the events rules keep wait on disk
        for their runs (a scan's replay, over input of any size), not in memory."""
        self.engine = engine
        self.start_ms = start_ms
        self.spill = Spill(budget=IN_MEMORY) if spill else None
        rules = list(rules)
        # ES|QL rules run their own query over the events they keep (vigil.engine.esql_rule).
        esql_rules = [r for r in rules if r.type == "esql"]
        self.esql = (
            EsqlReplay(esql_rules, engine=engine, start_ms=start_ms, spill=self.spill) if esql_rules else None
        )
        self.rules = [r for r in rules if r.type != "esql"]
        self._router = Router(self.rules)
        self._replayed: dict[str, _Replayed] = {}
        for rule in self.rules:
            module = {"threshold": threshold, "threat_match": indicator_match}.get(rule.type, new_terms)
            self._replayed[rule.rule_id] = _Replayed(rule, module.params_of(rule))
        # Indicator match rules: the documents of their threat indices (vigil.engine.indicator_match),
        # and (where, why) of those left out.
        self.errors: list[tuple[str | None, str]] = []
        self.indicators = {
            r.rule_id: indicator_match.IndicatorSource(
                r, self._replayed[r.rule_id].params, problems=self.errors
            )
            for r in self.rules
            if r.type == "threat_match"
        }
        self._arrival = 0
        self._filtered = None  # the rules as filters over batches, built on first use
        self.stats: dict[str, dict[str, int]] = {r.rule_id: {"runs": 0, "alerts": 0} for r in self.rules}

    def feed(self, event: Event) -> None:
        """Keep ``event`` for every rule whose index, query and exceptions take it."""
        self._arrival += 1
        if self.esql is not None:
            self.esql.feed(event)
        self.feed_indicator(event)
        for p in self._router.route(event):
            self._take(p, event, self._arrival)

    def _take(self, p, event: Event, arrival: int) -> None:
        """Keep ``event`` for ``p``'s rule if its query and exceptions take it."""
        rule = p.rule
        if not p.query.matches(event.doc):
            return
        if self.engine is not None and self.engine._suppressed(rule, event.doc):
            return
        ts = event_time(event.doc, rule.timestamp_override)
        if ts is not None:
            self._replayed[rule.rule_id].add(event, ts, arrival, self.spill)

    def feed_batch(self, events: list[Event]) -> None:
        """:meth:`feed` each of ``events``, in order, with the rules' queries run as
        superset filters over the batch (:class:`vigil.engine.core.Filtered`): only the
        rows that pass reach a rule's matcher. The rules keep the same events."""
        first = self._arrival + 1
        self._arrival += len(events)
        if self.esql is not None:
            self.esql.feed_batch(events, first)
        if self.indicators:
            for event in events:
                self.feed_indicator(event)
        if self._filtered is None:
            from vigil.engine.core import Filtered
            from vigil.engine.vector import ALL, query_filters

            items = [
                (p, query_filters(p.query)[0] if p.query.kind == "event" else ALL) for p in self._router.plans
            ]
            self._filtered = Filtered(
                items,
                patterns=lambda p: tuple(p.rule.index or ()),
                reads=lambda p, index: p.rule.matches_index(index),
            )
        for k, rows in self._filtered.rows(events):
            p = self._filtered.items[k][0]
            for row in rows:
                self._take(p, events[row], first + row)

    def feed_indicator(self, event: Event) -> None:
        """Keep ``event`` as an indicator for every indicator match rule whose threat index takes it."""
        for source in self.indicators.values():
            source.offer(event)

    def take(self, rule_id: str) -> tuple[Any, list[int], list]:
        """A rule's parameters and its kept events' times and items, in ascending time."""
        replayed = self._replayed.pop(rule_id)
        # Sorted on time, then arrival: events of one time keep the input's order.
        replayed.items.sort(key=lambda t: (t[0], t[1]))
        return replayed.params, [t[0] for t in replayed.items], [t[2] for t in replayed.items]

    def drain(self, rule_id: str) -> list[tuple[int, Any]]:
        """A rule's events kept since the last drain, ``(time, item)`` in ascending time; the
        rule goes on being fed (a live run, vigil.scheduler.live)."""
        replayed = self._replayed[rule_id]
        items, replayed.items = replayed.items, []
        items.sort(key=lambda t: (t[0], t[1]))
        return [(t[0], t[2]) for t in items]

    def alerts(self) -> Iterator[dict]:
        """Every rule's alerts, rule by rule, run by run."""
        for rule in self.rules:
            yield from self._runs(rule, *self.take(rule.rule_id))

    def esql_alerts(self) -> Iterator[dict]:
        """The ES|QL rules' alerts, rule by rule, run by run."""
        if self.esql is not None:
            yield from self.esql.alerts()

    def _runs(self, rule, params, times: list[int], items: list) -> Iterator[dict]:
        stats = self.stats[rule.rule_id]
        suppressor = ReplaySuppressor.for_rule(rule)
        if rule.type == "threshold":
            state = threshold.ThresholdState()
        elif rule.type == "threat_match":
            alerted: set[str] = set()
        else:
            index = new_terms.NewTermsIndex()
            for item in items:
                index.add(item)
            seen_ids: set[str] = set()
        last: dict = {}  # the previous run's events, when they wait on disk
        for from_ms, to_ms in schedule(rule, times, self.start_ms):
            window = items[bisect.bisect_left(times, from_ms) : bisect.bisect_right(times, to_ms)]
            if self.spill is not None and rule.type == "threat_match":
                loaded = self.spill.window([i.event for i in window], last)
                window = [dataclasses.replace(i, event=e) for i, e in zip(window, loaded, strict=True)]
            if rule.type == "threshold":
                found = threshold.run_threshold(rule, params, window, state, from_ms=from_ms, to_ms=to_ms)
            elif rule.type == "threat_match":
                matcher = self.indicators[rule.rule_id].matcher(to_ms, self.engine)
                found = indicator_match.run_indicator_match(
                    rule, params, window, matcher, alerted, to_ms=to_ms
                )
            else:
                found = new_terms.run_new_terms(
                    rule,
                    params,
                    window,
                    index,
                    seen_ids,
                    from_ms=from_ms,
                    to_ms=to_ms,
                    event_of=None if self.spill is None else self.spill.event,
                )
            stats["runs"] += 1
            if suppressor is not None:
                suppressor.run(found, from_ms=from_ms, to_ms=to_ms)
                continue
            stats["alerts"] += len(found)
            yield from found
        if suppressor is not None:
            # Suppressed alerts are written once, with the counts of every run.
            stats["alerts"] += len(kept := suppressor.alerts())
            yield from kept


def replay(
    rules: Iterable[Any], events: Iterable[Event], *, engine=None, start_ms: int | None = None
) -> Iterator[dict]:
    """The alerts of ``rules`` (threshold and new terms) replayed over ``events``."""
    r = Replay(rules, engine=engine, start_ms=start_ms)
    for event in events:
        r.feed(event)
    yield from r.alerts()
    yield from r.esql_alerts()


def replay_paths(
    engine,
    paths: list[str],
    *,
    index: str | None = None,
    source: str | None = None,
    start_ms: int | None = None,
    stats=None,
    names: dict[str, str] | None = None,
    indicators: list[str] | None = None,
    alerts: Iterable[dict] = (),
) -> Iterator[dict]:
    """The alerts of ``engine``'s threshold and new terms rules replayed over the events of
    ``paths``, read again. ``stats`` are the first read's: the lines it left unparsed are
    parsed now, so their problems join it (``names`` renames files in them)."""
    from vigil.events.readers import ReadStats, read_inputs

    if not engine.scheduled:
        return
    mine = ReadStats()
    r = Replay(engine.scheduled, engine=engine, start_ms=start_ms, spill=True)
    if indicators and r.indicators:
        # Indicator documents (--indicators): indicators only, read as ECS; their problems
        # are reported with the inputs', their documents not counted as events.
        theirs = stats if stats is not None and stats.strict else ReadStats()
        for event in read_inputs(indicators, source="ecs", stats=theirs):
            r.feed_indicator(event)
        if stats is not None and theirs is not stats:
            stats.problems.extend(theirs.problems)
            stats.skipped += theirs.skipped
            stats.files_failed += theirs.files_failed
    from vigil.engine.core import BATCH, few_collections

    with few_collections():
        pending: list[Event] = []
        for event in read_inputs(paths, index=index, source=source, stats=mine):
            pending.append(event)
            if len(pending) >= BATCH:
                r.feed_batch(pending)
                pending = []
        if pending:
            r.feed_batch(pending)
    for alert in alerts:
        # Alerts written earlier in the scan: documents of the alerts index (.alerts-security.*).
        r.feed(alert_event(alert))
    for rule_id, source in r.indicators.items():
        engine.stats[rule_id]["indicators"] = len(source.items)
    for origin, why in r.errors if stats is not None else ():
        # Documents left out as indicators, reported where they are.
        file, _, line = (origin or "").rpartition(":")
        if not line.isdigit():
            file, line = origin or "<indicators>", ""
        stats.problem(why, (names or {}).get(file, file), int(line) if line else None)
    if stats is not None and stats.unparsed:
        known = {(p.file, p.line) for p in stats.problems}
        for p in mine.problems:
            p.file = (names or {}).get(p.file, p.file)
            if (p.file, p.line) not in known:
                stats.problems.append(p)
                stats.skipped += 1
        stats.unparsed = 0
    try:
        for alert in itertools.chain(r.alerts(), r.esql_alerts()):
            if alert["kibana.alert.uuid"] not in engine._seen:
                engine._seen.add(alert["kibana.alert.uuid"])
                engine.stats[alert["kibana.alert.rule.rule_id"]]["alerts"] += 1
                yield alert
    finally:
        if r.spill is not None:
            r.spill.close()


class StdinCopy(io.RawIOBase):
    """Standard input that keeps a copy of what is read, so a replay can read it again."""

    def __init__(self, raw, copy) -> None:
        self.raw = raw
        self.copy = copy

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        if not data:
            return 0
        self.copy.write(data)
        buffer[: len(data)] = data
        return len(data)


def keep_stdin(stack):
    """Route ``sys.stdin`` through a copy in a temporary file (removed with ``stack``); the file
    (flush it before reading it by name)."""
    copy = stack.enter_context(tempfile.NamedTemporaryFile(prefix="vigil-stdin-", suffix=".ndjson"))
    original = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BufferedReader(StdinCopy(original.buffer, copy)))
    stack.callback(setattr, sys, "stdin", original)
    return copy
