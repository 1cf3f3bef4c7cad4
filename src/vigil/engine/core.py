"""The columnar engine core: event rules over batches of events, sequences streamed.

Events are gathered into batches; each event rule's superset filter
(:mod:`vigil.engine.vector`) runs as masks over the batch's columns
(:mod:`vigil.engine.batches`), starting from the rows whose index the rule reads,
and only the rows that pass reach the rule's compiled matcher, which has the last
word. Alerts come out in the order of the plain path: by event, then by rule;
those of sequences and samples (run on the routed per-event path of
:class:`vigil.engine.Engine`, which holds them to the end) after all events.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import numpy as np

from vigil.engine.batches import Reader
from vigil.engine.engine import Engine, SortKeys, _doc_of, _Sequences
from vigil.engine.gates import Gates
from vigil.engine.routing import RulePlan, _stage_filters
from vigil.engine.vector import fields_of, query_filters
from vigil.events.model import Event

# Events per batch. Each distinct field test of the rules costs a call per batch, whatever
# its size: 8,192 events ran the whole set 1.25x faster than 4,096 for 30 MB more at peak
# (16,384: 1.2x more again, past 300 MB).
BATCH = 8192


_collector_lock = threading.Lock()
_collector_users = 0  # cores running now (serve runs several on its threads)
_collector_default: tuple = ()


@contextmanager
def few_collections() -> Iterator[None]:
    """Python's cyclic collector, tuned while the core runs.

    The loaded rules are millions of long-lived objects (syntax trees, matchers), and
    reading events allocates without pause: with the default thresholds, each full
    collection walked every rule again, about a fifth of a scan's time. The objects
    alive when the first core starts are frozen (left out of collections, as after a
    ``gc.freeze()`` before forking) and young collections come less often; both are
    undone when the last running core stops (cores on several threads count as one
    user of the collector). Only cyclic garbage waits longer: reference counting still
    frees everything else at once."""
    global _collector_users, _collector_default
    with _collector_lock:
        if _collector_users == 0:
            _collector_default = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)
        _collector_users += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_users -= 1
            if _collector_users == 0:
                gc.set_threshold(*_collector_default)
                gc.unfreeze()


class EventRules:
    """The event rules of an engine, compiled to superset filters."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.plans = []
        for pos, rule in enumerate(engine.rules):
            query = rule.compiled()
            if query.kind == "event":
                self.plans.append((pos, rule, query, query_filters(query)[0]))
        self.paths: set[str] = set()
        for *_, filt in self.plans:
            self.paths |= fields_of(filt)
        self.gates = Gates((k, plan[3]) for k, plan in enumerate(self.plans))
        self.candidates = 0  # rows that reached a compiled matcher

    def alerts(self, batch, starts, events: list[Event]) -> list[tuple[int, dict]]:
        """The alerts of the event rules over ``events``, by event then by rule, each
        with the row of its event."""
        stats = self.engine.stats
        found: list[tuple[int, int, int]] = []
        reached = self.gates.reached(batch)
        counted: dict[int, int] = {}  # id(start mask) -> its rows
        for k, (pos, rule, query, filt) in enumerate(self.plans):
            start = starts(rule)
            if start is None:
                continue
            rows_in = counted.get(id(start))
            if rows_in is None:
                rows_in = counted[id(start)] = int(start.sum())
            stats[rule.rule_id]["events"] += rows_in
            if k not in reached:
                continue
            rows = np.flatnonzero(batch.mask(filt, start))
            self.candidates += len(rows)
            for row in rows.tolist():
                if query.matches(events[row].doc):
                    found.append((row, pos, k))
        found.sort()
        out: list[tuple[int, dict]] = []
        for row, _, k in found:
            out.extend((row, a) for a in self.engine._alerts(self.plans[k][1], [events[row]]))
        return out


class Starts:
    """Per rule, the rows of a batch whose index the rule reads (None: no row).

    ``patterns(rule)`` gives the index patterns a rule reads (rules share them, so the
    answer is kept per patterns and index) and ``reads(rule, index)`` decides; by
    default a rule's ``index`` and :meth:`matches_index`."""

    def __init__(self, patterns=None, reads=None) -> None:
        self._patterns = patterns or (lambda rule: tuple(rule.index or ()))
        self._decide = reads or (lambda rule, index: rule.matches_index(index))
        self._reads: dict[tuple, bool] = {}
        self._of_rule: dict[int, tuple] = {}  # id(rule) -> (rule, its patterns)

    def reads(self, rule, index: str | None) -> bool:
        key = (self.patterns(rule), index)
        found = self._reads.get(key)
        if found is None:
            found = self._reads[key] = self._decide(rule, index)
        return found

    def patterns(self, rule) -> tuple:
        found = self._of_rule.get(id(rule))
        if found is None or found[0] is not rule:
            found = self._of_rule[id(rule)] = (rule, self._patterns(rule))
        return found[1]

    def of(self, events: list[Event]):
        """``start(rule)``: the rows of ``events`` whose index ``rule`` reads (a mask,
        shared by the rules of the same patterns), or None when there is none."""
        n = len(events)
        by_index: dict[str | None, list[int]] = {}
        for row, e in enumerate(events):
            by_index.setdefault(e.index, []).append(row)
        groups = [(idx, np.asarray(rows, dtype=np.int32)) for idx, rows in by_index.items()]
        every = np.ones(n, dtype=bool)
        by_key: dict[tuple, np.ndarray | None] = {}
        by_patterns: dict[tuple, np.ndarray | None] = {}

        def start(rule) -> np.ndarray | None:
            patterns = self.patterns(rule)
            found = by_patterns.get(patterns, False)
            if found is not False:
                return found
            key = tuple(i for i, (idx, _) in enumerate(groups) if self.reads(rule, idx))
            found = by_key.get(key, False)
            if found is False:
                if not key:
                    found = None
                elif len(key) == len(groups):
                    found = every
                else:
                    found = np.zeros(n, dtype=bool)
                    for i in key:
                        found[groups[i][1]] = True
                by_key[key] = found
            by_patterns[patterns] = found
            return found

        return start


class Filtered:
    """Rules as superset filters over batches of events: per rule, the rows of a batch
    whose index it reads and that pass its filter (its own matcher then decides).
    ``items`` are ``(rule, filter)`` pairs; ``patterns`` and ``reads`` as :class:`Starts`."""

    def __init__(self, items: list[tuple], patterns=None, reads=None) -> None:
        self.items = items
        paths: set[str] = set()
        for _, filt in items:
            paths |= fields_of(filt)
        self.reader = Reader(paths)
        self.starts = Starts(patterns, reads)
        self.gates = Gates((k, filt) for k, (_, filt) in enumerate(items))

    def rows(self, events: list[Event]) -> Iterator[tuple[int, list[int]]]:
        """``(k, rows)``: the rows of ``events`` that may match the ``k``-th rule."""
        batch = self.reader.batch([e.doc for e in events])
        start = self.starts.of(events)
        reached = self.gates.reached(batch)
        for k, (rule, filt) in enumerate(self.items):
            if k not in reached:
                continue
            first = start(rule)
            if first is not None:
                rows = np.flatnonzero(batch.mask(filt, first))
                if len(rows):
                    yield k, rows.tolist()


class EveryLine:
    """Stands for the engine in :class:`vigil.engine.batch.LineScanner`: every line is
    parsed (the batch filters narrow later), so no router of every rule is built for it."""

    @staticmethod
    def line_literals() -> None:
        return None

    class router:  # noqa: N801 - what LineScanner read before line_literals
        @staticmethod
        def literals() -> None:
            return None


def sequence_engine(engine: Engine) -> Engine:
    """An engine of ``engine``'s sequence and sample rules, with its exceptions, sharing its
    record of counts and of alerts given (one record with the engine of the event rules)."""
    rules = [r for r in engine.rules if r.compiled().kind != "event"]
    sub = Engine(rules, exceptions=engine.exceptions, exceptions_all=engine.exceptions_all, now=engine.now)
    sub.stats = engine.stats
    sub._seen = engine._seen
    return sub


class StageRules:
    """The sequence and sample rules of an engine, each stage (and until) compiled to
    a superset filter: a row reaches a rule only for the stages whose filter it passes,
    and the rule's exact stage filters (:meth:`RulePlan.hit_stages`) then decide."""

    def __init__(self, engine: Engine) -> None:
        self.engine = sub = sequence_engine(engine)
        rules = sub.rules
        self.plans: list[RulePlan] = []
        self.filters: list[tuple] = []
        paths: set[str] = set()
        for rule in rules:
            query = rule.compiled()
            stmt = query.statement
            cat = query.options.event_category_field
            filters = query_filters(query)
            for f in filters:
                paths |= fields_of(f)
            self.filters.append(filters)
            self.plans.append(
                RulePlan(
                    rule=rule,
                    query=query,
                    categories=None,
                    category_field=cat,
                    requirement=None,
                    streamable=not stmt.pipes and query.options.size is None,
                    filters=_stage_filters(query),
                )
            )
        # _Sequences reads the plans from the engine's router: these, without routing.
        sub._router = _Plans(self.plans)
        self.paths = paths
        # A rule is reached when one of its stages may be.
        self.gates = Gates((k, f) for k, filters in enumerate(self.filters) for f in filters)

    def rows(self, batch, starts) -> Iterator[tuple[RulePlan, list[int], list[tuple]]]:
        """Per rule some row of the batch may reach, in rule order: the rows, and for
        each the stages (until: the number after the last) that it may match."""
        reached = self.gates.reached(batch)
        for k, (p, filters) in enumerate(zip(self.plans, self.filters, strict=True)):
            if k not in reached:
                continue
            start = starts(p.rule)
            if start is None:
                continue
            masks = [batch.mask(f, start) for f in filters]
            rows = np.flatnonzero(np.logical_or.reduce(masks)).tolist()
            if not rows:
                continue
            if len(masks) == 1:
                hits = [(0,)] * len(rows)
            else:
                by_stage = [m[rows].tolist() for m in masks]
                hits = [tuple(i for i, on in enumerate(flags) if on) for flags in zip(*by_stage, strict=True)]
            yield p, rows, hits


class _Plans:
    def __init__(self, plans: list[RulePlan]) -> None:
        self.plans = plans


def scan_items(
    engine: Engine,
    items: Iterable[tuple[Event, bytes | None]],
    rescan: Callable[[], Iterable[Event]] | None = None,
    size: int = BATCH,
    ordinals: bool = False,
) -> Iterator:
    """The alerts of :meth:`Engine.batch` over the same ``items``, in batches of ``size``.

    With ``ordinals``, each alert comes as ``(n, alert)``: ``n`` is the place (from 1) of
    its event among the items, None for a sequence or sample (given after the last item),
    so that shares of the rules merge in one process's order (vigil.engine.batch)."""
    rules = EventRules(engine)
    stages = StageRules(engine) if len(rules.plans) < len(engine.rules) else None
    reader = Reader(rules.paths | (stages.paths if stages is not None else set()))
    seqs = _Sequences(stages.engine, rescan) if stages is not None else None
    starts = Starts()
    pending: list[Event] = []
    before = 0  # items of the batches already run

    def run() -> list[tuple[int, dict]]:
        batch = reader.batch([e.doc for e in pending])
        start = starts.of(pending)
        out = rules.alerts(batch, start, pending)
        if stages is not None:
            keys = SortKeys(pending)
            for p, rows, hits in stages.rows(batch, start):
                seqs.feed_rows(p, pending, rows, hits, keys)
        return out

    def given(found: list[tuple[int, dict]]) -> Iterator:
        for row, alert in found:
            yield (before + row + 1, alert) if ordinals else alert

    with few_collections():
        for event, _ in items:
            pending.append(event)
            if len(pending) >= size:
                yield from given(run())
                before += len(pending)
                pending = []
        if pending:
            yield from given(run())
        if seqs is not None:
            for alert in seqs.finish():
                yield (None, alert) if ordinals else alert


class LiveSequences:
    """The sequence and sample rules of an engine over live micro-batches, each match
    alerted as soon as its last event arrives (as :meth:`Engine.process` alerts them).

    Each stage's superset filter runs as a mask over the batch, and a row reaches a rule
    only with the stages its masks allow. A sequence is then fed as in the batch core:
    an event that can change nothing is left out (:meth:`SequenceMatcher.idle`), the
    others are tested with the exact stage filters and fed what they match. Samples, and
    sequences with trailing missing stages (which every later event of their index may
    settle, as time goes by), are fed each row their masks (or their index) allow, as
    :meth:`Engine.process` feeds them."""

    def __init__(self, engine: Engine) -> None:
        self.stages = StageRules(engine)
        self.engine = self.stages.engine
        self.paths = self.stages.paths  # the fields the batches must hold for these rules
        self.streams: dict[str, object] = {}
        # Fed every row of their index: sequences whose last stages are missing ones.
        self.every = [p for p in self.stages.plans if _trailing_missing(p.query)]
        self._every_ids = {id(p) for p in self.every}

    def process_batch(self, events: list[Event], batch, start) -> list[list[dict]]:
        """Per event, the alerts of the sequences and samples it completes; ``batch`` holds
        the events' columns (at least :attr:`paths`) and ``start`` is :meth:`Starts.of`.
        Each rule takes its rows in turn (rules share no state); an event's alerts come
        in rule order."""
        out: list[list[dict]] = [[] for _ in events]
        if not self.stages.plans:
            return out
        engine = self.engine
        offered = {id(p): (rows, hits) for p, rows, hits in self.stages.rows(batch, start)}
        keys = SortKeys(events)
        for p in self.stages.plans:
            if id(p) in self._every_ids:
                first = start(p.rule)
                rows = np.flatnonzero(first).tolist() if first is not None else []
                hits = [None] * len(rows)
            else:
                rows, hits = offered.get(id(p), ((), ()))
            if not rows:
                continue
            rule = p.rule
            engine.stats[rule.rule_id]["events"] += len(rows)
            stream = self.streams.get(rule.rule_id)
            if stream is None:
                stream = self.streams[rule.rule_id] = p.query.stream(doc=_doc_of)
            sequence = p.query.kind == "sequence"
            key_of = keys.of(p.query)
            for row, hit in zip(rows, hits, strict=True):
                event = events[row]
                if hit is None or not sequence:
                    if not engine._takes(rule, event):
                        continue
                    matches = stream.feed(event)  # tests the query itself, as Engine.process
                else:
                    if stream.idle(hit):
                        continue
                    hit = p.hit_stages(event.doc, hit)
                    if not hit or not engine._takes(rule, event):
                        continue
                    key = key_of(row)
                    matches = stream.feed_matched(
                        lambda e=event: e, event.doc, None if key[0] else key[1], hit
                    )
                for match in matches:  # rules in order: each row's alerts come in rule order
                    out[row] += engine._alerts(rule, match.events)
        return out

    def finish(self) -> list[dict]:
        out: list[dict] = []
        for p in self.stages.plans:
            stream = self.streams.pop(p.rule.rule_id, None)
            if stream is not None:
                for match in stream.close():
                    out += self.engine._alerts(p.rule, match.events)
        return out


def _trailing_missing(query) -> bool:
    """A sequence whose last stage is a missing one (``![...]``): its waiting matches are
    settled by the time of any later event of its index."""
    stages = getattr(query.statement.query, "stages", ())
    return query.kind == "sequence" and bool(stages) and bool(getattr(stages[-1], "missing", False))


class LiveCore:
    """The core over events that arrive live (``vigil watch``), a micro-batch at a time:
    whatever the sensor read since the last batch. The event rules run as masks over each
    batch (the busier the host, the larger the batch and the cheaper each event), and so do
    the stages of sequences and samples (:class:`LiveSequences`), whose matches alert as
    soon as they complete. An event's alerts come together: its event rules' (in rule
    order), then its sequences'."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.event_rules = EventRules(engine)
        self.sequences = LiveSequences(engine)
        # One walk of each batch for the event rules and the sequences.
        self.reader = Reader(self.event_rules.paths | self.sequences.paths)
        self.starts = Starts()

    def process_batch(self, events: list[Event]) -> list[dict]:
        if not events:
            return []
        with few_collections():
            return self._process_batch(events)

    def _process_batch(self, events: list[Event]) -> list[dict]:
        by_row: dict[int, list[dict]] = {}
        batch = self.reader.batch([e.doc for e in events])
        start = self.starts.of(events)
        if self.event_rules.plans:
            for row, alert in self.event_rules.alerts(batch, start, events):
                by_row.setdefault(row, []).append(alert)
        completed = self.sequences.process_batch(events, batch, start)
        out: list[dict] = []
        for row in range(len(events)):
            out += by_row.get(row, ())
            out += completed[row]
        return out

    def finish(self) -> list[dict]:
        return self.sequences.finish()

    # What stands for the engine elsewhere in watch: its rules, counts and exceptions.
    @property
    def rules(self) -> list:
        return self.engine.rules

    @property
    def scheduled(self) -> list:
        return self.engine.scheduled

    @property
    def stats(self) -> dict:
        return self.engine.stats

    def _suppressed(self, rule, doc: dict) -> bool:
        return self.engine._suppressed(rule, doc)
