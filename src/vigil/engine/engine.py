"""Run rules over events: routing by index, streaming and batch, exceptions, statistics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from vigil.engine.alerts import alert_uuid, build_alert, event_key
from vigil.engine.routing import Router
from vigil.events.model import Event


class Engine:
    def __init__(
        self, rules, *, exceptions=None, exceptions_all: bool = False, now: datetime | None = None
    ) -> None:
        self.rules = [r for r in rules if r.runnable]
        self.exceptions = exceptions
        self.exceptions_all = exceptions_all
        self.now = now
        self.stats: dict[str, Counter] = {r.rule_id: Counter() for r in self.rules}
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

    def _route(self, index: str | None) -> list:
        if index not in self._routes:
            self._routes[index] = [r for r in self.rules if r.matches_index(index)]
        return self._routes[index]

    def _suppressed(self, rule, doc: dict) -> bool:
        if self.exceptions is None:
            return False
        return any(
            item.matches(doc) for item in self.exceptions.for_rule(rule, all_rules=self.exceptions_all)
        )

    def _alerts(self, rule, events: list) -> list[dict]:
        stats = self.stats[rule.rule_id]
        stats["matches"] += 1
        present = [e for e in events if e is not None]
        if any(self._suppressed(rule, e.doc) for e in present):
            stats["suppressed"] += 1
            return []
        if len(events) == 1:
            alerts = [build_alert(rule, present[0], now=self.now)]
        else:
            group_id = alert_uuid(rule.rule_id, *(event_key(e) for e in present))
            alerts = [
                build_alert(rule, e, now=self.now, group={"id": group_id, "index": i})
                for i, e in enumerate(present)
            ]
            shell = {
                k: v
                for k, v in alerts[0].items()
                if k.startswith("kibana.alert.rule") or k == "kibana.space_ids"
            }
            shell.update(
                {k: alerts[0][k] for k in ("@timestamp", "kibana.alert.severity", "kibana.alert.risk_score")}
            )
            shell["kibana.alert.uuid"] = group_id
            shell["kibana.alert.group.id"] = group_id
            shell["kibana.alert.status"] = "active"
            shell["kibana.alert.workflow_status"] = "open"
            shell["kibana.alert.reason"] = (
                f"sequence event created {shell['kibana.alert.severity']} alert {rule.name}."
            )
            shell["event.kind"] = "signal"
            alerts.insert(0, shell)
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
                elif query.matches(event.doc):
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
        category. Sequences and samples run as streams while their events arrive in
        timestamp order (memory stays bounded); if a rule sees an event out of order,
        its stream is dropped and, at the end, the rule runs over ``rescan()``'s
        events as :meth:`scan` would. Without ``rescan`` those rules keep their
        events in memory from the start.
        """
        router = self.router
        streams: dict[str, object] = {}
        last: dict[str, tuple] = {}
        held: dict[str, list] = {}
        disordered: set[str] = set()
        buffered: dict[str, list[Event]] = {}
        stream_ok = rescan is not None
        doc_of = _doc_of
        for event, low in items:
            doc = event.doc
            for p in router.group(event).candidates(doc, low):
                rule = p.rule
                self.stats[rule.rule_id]["events"] += 1
                query = p.query
                if query.kind == "event":
                    if query.matches(doc):
                        yield from self._alerts(rule, [event])
                    continue
                rid = rule.rule_id
                if not (stream_ok and p.streamable):
                    if query.matches(doc):
                        buffered.setdefault(rid, []).append(event)
                    continue
                if rid in disordered or not query.matches(doc):
                    continue
                key = query._sort_key(doc, 0)[:4]
                prev = last.get(rid)
                if prev is not None and key < prev:
                    disordered.add(rid)
                    streams.pop(rid, None)
                    held.pop(rid, None)
                    continue
                last[rid] = key
                stream = streams.get(rid)
                if stream is None:
                    stream = streams[rid] = query.stream(doc=doc_of)
                found = stream.feed(event)
                if found:
                    held.setdefault(rid, []).extend(found)
        for p in router.plans:
            rule, rid = p.rule, p.rule.rule_id
            if rid in streams:
                matches = held.pop(rid, []) + streams.pop(rid).close()
                for match in matches:
                    yield from self._alerts(rule, match.events)
            elif rid in buffered:
                for match in p.query.run(buffered.pop(rid), doc=doc_of):
                    yield from self._alerts(rule, match.events)
        if disordered:
            again = [p for p in router.plans if p.rule.rule_id in disordered]
            kept: dict[str, list[Event]] = {p.rule.rule_id: [] for p in again}
            for event in rescan():
                for p in again:
                    if p.rule.matches_index(event.index) and p.query.matches(event.doc):
                        kept[p.rule.rule_id].append(event)
            for p in again:
                for match in p.query.run(kept.pop(p.rule.rule_id), doc=doc_of):
                    yield from self._alerts(p.rule, match.events)


def _doc_of(event: Event) -> dict:
    return event.doc
