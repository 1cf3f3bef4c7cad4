"""Run rules over events: routing by index, streaming and batch, exceptions, statistics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from vigil.engine.alerts import build_alert, build_sequence_alerts
from vigil.engine.routing import Router
from vigil.engine.spill import Spill
from vigil.events.model import Event
from vigil.rules.model import SCHEDULED_TYPES


class Engine:
    def __init__(
        self, rules, *, exceptions=None, exceptions_all: bool = False, now: datetime | None = None
    ) -> None:
        rules = [r for r in rules if r.runnable]
        self.rules = [r for r in rules if r.type not in SCHEDULED_TYPES]
        # Threshold and new terms rules run over time ranges, not event by event
        # (vigil.engine.replay in a scan).
        self.scheduled = [r for r in rules if r.type in SCHEDULED_TYPES]
        self.exceptions = exceptions
        self.exceptions_all = exceptions_all
        self.now = now
        self.stats: dict[str, Counter] = {r.rule_id: Counter() for r in rules}
        self._streams = {}
        self._routes: dict[str | None, list] = {}
        self._seen: set[str] = set()
        self._router: Router | None = None

    @property
    def router(self) -> Router:
        """Rules by index and event category, with their raw-line literals (built on first use)."""
        if self._router is None:
            self._router = Router(self.rules)
        return self._router

    def line_literals(self) -> set[bytes] | None:
        """The literals a raw line must hold for some rule to match it (None: every line)."""
        return self.router.literals()

    def _route(self, index: str | None) -> list:
        if index not in self._routes:
            self._routes[index] = [r for r in self.rules if r.matches_index(index)]
        return self._routes[index]

    def _takes(self, rule, event: Event) -> bool:
        """Whether a sequence or sample rule sees ``event`` at all. Kibana turns a rule's
        exceptions into a filter of its search, so an excepted event never joins a
        sequence (build_exceptions_filter in the detection engine's EQL executor)."""
        if self.exceptions is None or not self._suppressed(rule, event.doc):
            return True
        self.stats[rule.rule_id]["suppressed"] += 1
        return False

    def _suppressed(self, rule, doc: dict) -> bool:
        if self.exceptions is None:
            return False
        return any(
            item.matches(doc) for item in self.exceptions.for_rule(rule, all_rules=self.exceptions_all)
        )

    def _alerts(self, rule, events: list) -> list[dict]:
        """Alerts of one match. An event rule's match is dropped when an exception covers its
        event; a sequence's events were already filtered (see :meth:`_takes`)."""
        stats = self.stats[rule.rule_id]
        stats["matches"] += 1
        if len(events) == 1:
            if self._suppressed(rule, events[0].doc):
                stats["suppressed"] += 1
                return []
            alerts = [build_alert(rule, events[0], now=self.now)]
        else:
            alerts = build_sequence_alerts(rule, events, now=self.now)
        out = []
        for alert in alerts:
            if alert["kibana.alert.uuid"] not in self._seen:
                self._seen.add(alert["kibana.alert.uuid"])
                out.append(alert)
        stats["alerts"] += 1
        if stats["alerts"] > rule.max_signals:
            stats["over_max_signals"] = 1
        return out

    def process(self, event: Event) -> list[dict]:
        """Alerts raised by this event (events arriving in timestamp order)."""
        out: list[dict] = []
        for rule in self._route(event.index):
            query = rule.compiled()
            self.stats[rule.rule_id]["events"] += 1
            if query.kind == "event":
                if query.matches(event.doc):
                    out.extend(self._alerts(rule, [event]))
            else:
                if not self._takes(rule, event):
                    continue
                stream = self._streams.get(rule.rule_id)
                if stream is None:
                    stream = self._streams[rule.rule_id] = query.stream(doc=lambda e: e.doc)
                for match in stream.feed(event):
                    out.extend(self._alerts(rule, match.events))
        return out

    def finish(self) -> list[dict]:
        out: list[dict] = []
        for rule in self.rules:
            stream = self._streams.pop(rule.rule_id, None)
            if stream is not None:
                for match in stream.close():
                    out.extend(self._alerts(rule, match.events))
        return out

    def scan(self, events: Iterable[Event]) -> Iterator[dict]:
        """Batch: event rules streamed; sequence rules run on the events that match one of their stages."""
        buffered: dict[str, list[Event]] = {}
        for event in events:
            for rule in self._route(event.index):
                query = rule.compiled()
                self.stats[rule.rule_id]["events"] += 1
                if query.kind == "event":
                    if query.matches(event.doc):
                        yield from self._alerts(rule, [event])
                elif query.matches(event.doc) and self._takes(rule, event):
                    buffered.setdefault(rule.rule_id, []).append(event)
        for rule in self.rules:
            if rule.rule_id in buffered:
                for match in rule.compiled().run(buffered.pop(rule.rule_id), doc=lambda e: e.doc):
                    yield from self._alerts(rule, match.events)

    def batch(
        self,
        items: Iterable[tuple[Event, bytes | None]],
        rescan: Callable[[], Iterable[Event]] | None = None,
    ) -> Iterator[dict]:
        """Batch scan with routing: the alerts of :meth:`scan`, faster.

        ``items`` pairs each event with its raw JSON line lower-cased when that line
        is plain ASCII without escapes (else None): a rule whose literals the line
        lacks is not tested. Events reach only the rules of their index and event
        category (see :mod:`vigil.engine.routing`). Sequences and samples run as
        streams while their events arrive in timestamp order, so memory stays
        bounded; if a rule sees an event out of order, its stream is dropped and, at
        the end, the rule runs over ``rescan()``'s events as :meth:`scan` would.
        Without ``rescan`` those rules keep their events in memory from the start.
        """
        seqs = _Sequences(self, rescan)
        for event, low in items:
            for p, stages in self.router.group(event).candidates(event.doc, low):
                self.stats[p.rule.rule_id]["events"] += 1
                if p.query.kind == "event":
                    if p.query.matches(event.doc):
                        yield from self._alerts(p.rule, [event])
                else:
                    hit = p.hit_stages(event.doc, stages)
                    if hit and self._takes(p.rule, event):
                        seqs.feed(p, event, hit)
        yield from seqs.finish()

    def split_batch(self, items: Iterable[tuple[Event, bytes | None]]) -> tuple[list[dict], list]:
        """One worker's share of :meth:`batch`: the alerts of event rules, and the events
        that sequence or sample rules take, each with those rules' positions in
        ``router.plans`` (for :meth:`merge_batch`)."""
        alerts: list[dict] = []
        taken: list = []
        index = {id(p): n for n, p in enumerate(self.router.plans)}
        for event, low in items:
            positions = []
            for p, stages in self.router.group(event).candidates(event.doc, low):
                self.stats[p.rule.rule_id]["events"] += 1
                if p.query.kind == "event":
                    if p.query.matches(event.doc):
                        alerts.extend(self._alerts(p.rule, [event]))
                elif p.takes(event.doc, stages) and self._takes(p.rule, event):
                    positions.append(index[id(p)])
            if positions:
                taken.append((event, positions))
        return alerts, taken

    def merge_batch(
        self, parts: Iterable, rescan: Callable[[], Iterable[Event]] | None = None
    ) -> Iterator[dict]:
        """Alerts of workers' :meth:`split_batch` results, taken in input order."""
        seqs = _Sequences(self, rescan)
        plans = self.router.plans
        for alerts, taken in parts:
            for alert in alerts:
                if alert["kibana.alert.uuid"] not in self._seen:
                    self._seen.add(alert["kibana.alert.uuid"])
                    yield alert
            for event, positions in taken:
                for n in positions:
                    seqs.feed(plans[n], event)
        yield from seqs.finish()


class _Sequences:
    """Sequence and sample rules of a batch: streamed while in order, else buffered.

    The matchers never hold documents: each event a sequence takes is written once to
    a temporary file, and the matchers keep its place there (a ``(offset, length)``
    pair), so memory stays flat however many sequences are in flight. Events come
    back from the file only to build alerts (or to run a buffered rule at the end).
    """

    def __init__(self, engine: Engine, rescan) -> None:
        self.engine = engine
        self.rescan = rescan
        self.streams: dict[str, object] = {}
        self.last: dict[str, tuple] = {}
        # Completed matches wait for the end of the data: a rule found out of order
        # later must not have raised them.
        self.held: dict[str, list] = {}
        self.disordered: set[str] = set()
        self.buffered: dict[str, list] = {}
        self._spill = Spill()
        self._key: tuple = (None, None, None)

    def _park(self, event: Event):
        return self._spill.park(event)

    def _event(self, handle) -> Event | None:
        return self._spill.event(handle)

    def _doc(self, handle) -> dict:
        return self._spill.doc(handle)

    def feed(self, p, event: Event, hit: tuple[int, ...] | None = None) -> None:
        """``event`` matches a stage (or until) of ``p``'s query: those of ``hit`` exactly
        when given (see :meth:`RulePlan.hit_stages`)."""
        rid = p.rule.rule_id
        if self.rescan is None or not p.streamable:
            self.buffered.setdefault(rid, []).append(self._park(event))
            return
        key = self._in_order(p, event)
        if key is None:
            return
        stream = self._stream(p)
        # The event is known to match and its sort key is known: the stream need not
        # test it again, and keeps (parks) it only if a sequence may hold it.
        found = [
            m.events
            for m in stream.feed_matched(
                lambda: self._park(event), event.doc, None if key[0] else key[1], hit
            )
        ]
        if found:
            self.held.setdefault(rid, []).extend(found)

    def feed_rows(self, p, events: list[Event], rows: list[int], hits: list[tuple], keys: SortKeys) -> None:
        """One rule's share of a batch: the rows of ``events`` its stage masks allow, in
        order, each with the stages it may match, as :meth:`idle` and :meth:`feed` take
        them one by one. Rules keep no state in common, so each takes its rows in turn."""
        rid = p.rule.rule_id
        engine = self.engine
        self.engine.stats[rid]["events"] += len(rows)
        if self.rescan is None or not p.streamable:
            for row, hit in zip(rows, hits, strict=True):
                event = events[row]
                hit = p.hit_stages(event.doc, hit)
                if hit and engine._takes(p.rule, event):
                    self.buffered.setdefault(rid, []).append(self._park(event))
            return
        if rid in self.disordered:
            return  # nothing more is fed to this rule: it is run again at the end
        stream = self._stream(p)
        key_of = keys.of(p.query)
        last = self.last.get(rid)
        for row, hit in zip(rows, hits, strict=True):
            event = events[row]
            idle = stream.idle(hit)  # only its place in time is checked
            if not idle:
                hit = p.hit_stages(event.doc, hit)
                if not hit or not engine._takes(p.rule, event):
                    continue
            key = key_of(row)
            if last is not None and key < last:
                self._disorder(rid)
                return
            last = key
            if not idle:
                found = [
                    m.events
                    for m in stream.feed_matched(
                        lambda e=event: self._park(e), event.doc, None if key[0] else key[1], hit
                    )
                ]
                if found:
                    self.held.setdefault(rid, []).extend(found)
        if last is not None:
            self.last[rid] = last

    def _disorder(self, rid: str) -> None:
        """An event of rule ``rid`` came before its last one in time: nothing more is fed to
        it, what it found is dropped, and it is run again over all the events at the end."""
        self.disordered.add(rid)
        self.streams.pop(rid, None)
        self.held.pop(rid, None)

    def _stream(self, p):
        stream = self.streams.get(p.rule.rule_id)
        if stream is None:
            stream = self.streams[p.rule.rule_id] = p.query.stream(doc=self._doc)
        return stream

    def _in_order(self, p, event: Event) -> tuple | None:
        """The event's sort key, or None when it comes before the rule's last event (the
        rule is then run again over all the events at the end)."""
        rid = p.rule.rule_id
        if rid in self.disordered:
            return None
        # Rules mostly share their timestamp and tiebreaker fields: one read per event.
        options = p.query.options
        fields = (options.timestamp_field, options.tiebreaker_field)
        cached = self._key
        if cached[0] is event and cached[1] == fields:
            key = cached[2]
        else:
            key = p.query._sort_key(event.doc, 0)[:4]
            self._key = (event, fields, key)
        prev = self.last.get(rid)
        if prev is not None and key < prev:
            self._disorder(rid)
            return None
        self.last[rid] = key
        return key

    def finish(self) -> Iterator[dict]:
        """The rules' alerts in rule order, as :meth:`Engine.scan` gives them."""
        engine = self.engine
        plans = engine.router.plans
        rerun: dict[str, list] = {}
        if self.disordered:
            again = [p for p in plans if p.rule.rule_id in self.disordered]
            kept: dict[str, list] = {p.rule.rule_id: [] for p in again}
            for event in self.rescan():
                for p in again:
                    if (
                        p.rule.matches_index(event.index)
                        and p.query.matches(event.doc)
                        and not engine._suppressed(p.rule, event.doc)
                    ):
                        kept[p.rule.rule_id].append(self._park(event))
            for p in again:
                rerun[p.rule.rule_id] = [
                    m.events for m in p.query.run(kept.pop(p.rule.rule_id), doc=self._doc)
                ]
        for p in plans:
            rule, rid = p.rule, p.rule.rule_id
            if rid in rerun:
                found = rerun.pop(rid)
            elif rid in self.streams:
                found = self.held.pop(rid, []) + [m.events for m in self.streams.pop(rid).close()]
            elif rid in self.buffered:
                found = [m.events for m in p.query.run(self.buffered.pop(rid), doc=self._doc)]
            else:
                continue
            for events in found:
                yield from engine._alerts(rule, [self._event(h) for h in events])
        self._spill.close()


class SortKeys:
    """The events of a batch's sort keys (timestamp, tiebreaker), read once per event
    and pair of fields, for every rule that orders by them."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self._by_fields: dict[tuple, list] = {}

    def of(self, query) -> Callable[[int], tuple]:
        options = query.options
        fields = (options.timestamp_field, options.tiebreaker_field)
        keys = self._by_fields.get(fields)
        if keys is None:
            keys = self._by_fields[fields] = [None] * len(self.events)
        events = self.events

        def key(row: int) -> tuple:
            found = keys[row]
            if found is None:
                found = keys[row] = query._sort_key(events[row].doc, 0)[:4]
            return found

        return key


def _doc_of(event: Event) -> dict:
    return event.doc
