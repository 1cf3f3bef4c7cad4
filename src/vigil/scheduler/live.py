"""Threshold and new terms rules on live events (``vigil watch``).

Events are kept as they arrive (the rule's query, exceptions and event time, as the
replay keeps them); each rule runs on its ``interval`` of the wall clock, from the
first tick, over ``[now - from, now]``, with the code the replay and ``vigil serve``
run (:mod:`vigil.engine.threshold`, :mod:`vigil.engine.new_terms`). State lives in the
process: a threshold rule's signal history, a new terms rule's terms back to its
``history_window_start`` (events older than the look-back keep their terms only). A
restart of ``vigil watch`` starts with no history, as a rule enabled at that time.
"""

from __future__ import annotations

import bisect
from typing import Any

from vigil.engine import esql_rule, new_terms, threshold
from vigil.engine.replay import Replay
from vigil.scheduler.windows import duration_ms

# The scheduled rule types watch runs (indicator match rules need an indicator feed: scan, serve).
LIVE = ("threshold", "new_terms", "esql")


class LiveRules:
    def __init__(self, engine) -> None:
        self.engine = engine
        scheduled = [r for r in getattr(engine, "scheduled", []) if r.type in LIVE]
        self.rules = [r for r in scheduled if r.type != "esql"]
        # ES|QL rules keep the events their FROM and leading WHERE take (the replay's
        # vigil.engine.esql_rule.EsqlReplay), back to their look-back.
        self.esql_rules = [r for r in scheduled if r.type == "esql"]
        self.replay = Replay(scheduled, engine=engine) if scheduled else None
        self.esql_done: dict[str, tuple[set, set]] = {r.rule_id: (set(), set()) for r in self.esql_rules}
        self.items: dict[str, list[tuple[int, Any]]] = {r.rule_id: [] for r in self.rules}
        self.next_ms: dict[str, int | None] = {r.rule_id: None for r in scheduled}
        self.states = {r.rule_id: threshold.ThresholdState() for r in self.rules if r.type == "threshold"}
        self.alerted: dict[str, set[str]] = {r.rule_id: set() for r in self.rules}
        self.params = {
            r.rule_id: (threshold if r.type == "threshold" else new_terms).params_of(r) for r in self.rules
        }

    def feed_batch(self, events: list) -> None:
        """Keep each of ``events`` for the rules that take it (the rules' queries run as
        masks over the batch, vigil.engine.replay.Replay.feed_batch)."""
        if self.replay is not None and events:
            self.replay.feed_batch(events)

    def tick(self, now_ms: int) -> list[dict]:
        """The alerts of the rules due at ``now_ms`` (each runs at most once per call)."""
        out: list[dict] = []
        for rule in self.rules:
            rid = rule.rule_id
            kept = self.items[rid]
            for ts, item in self.replay.drain(rid):
                # Events come roughly in time order: most land at the end.
                kept.insert(bisect.bisect_right(kept, ts, key=lambda t: t[0]), (ts, item))
            due = self.next_ms[rid]
            if due is not None and now_ms < due:
                continue
            interval = duration_ms(rule.interval, what="interval")
            self.next_ms[rid] = now_ms + interval
            out += self._run(rule, now_ms)
        for rule in self.esql_rules:
            due = self.next_ms[rule.rule_id]
            if due is not None and now_ms < due:
                continue
            self.next_ms[rule.rule_id] = now_ms + duration_ms(rule.interval, what="interval")
            out += self._run_esql(rule, now_ms)
        return out

    def _run_esql(self, rule, now_ms: int) -> list[dict]:
        """One run of an ES|QL rule over ``[now - from, now]``; older events are let go (no
        later run reads them). Alert ids and documents already alerted on are remembered, so
        overlapping look-backs alert once on a document, as in the replay."""
        from_ms = now_ms - duration_ms(rule.from_, what="from")
        esql = self.replay.esql
        kept = esql.kept[rule.rule_id]
        kept[:] = sorted((k for k in kept if k[0] >= from_ms), key=lambda k: (k[0], k[1]))
        window = [event for ts, _, event in kept if ts <= now_ms]
        seen, excluded = self.esql_done[rule.rule_id]
        return esql_rule.run_esql(
            rule,
            esql.programs[rule.rule_id],
            window,
            from_ms=from_ms,
            to_ms=now_ms,
            seen=seen,
            excluded=excluded,
        )

    def _run(self, rule, now_ms: int) -> list[dict]:
        rid = rule.rule_id
        span = duration_ms(rule.from_, what="from")
        from_ms = now_ms - span
        kept = self.items[rid]
        times = [t for t, _ in kept]
        window = [
            item for _, item in kept[bisect.bisect_left(times, from_ms) : bisect.bisect_right(times, now_ms)]
        ]
        params = self.params[rid]
        if rule.type == "threshold":
            alerts = threshold.run_threshold(
                rule, params, window, self.states[rid], from_ms=from_ms, to_ms=now_ms
            )
            keep_from = from_ms
        else:
            index = new_terms.NewTermsIndex()
            for _, item in kept[: bisect.bisect_right(times, now_ms)]:
                index.add(item)
            alerts = new_terms.run_new_terms(
                rule, params, window, index, self.alerted[rid], from_ms=from_ms, to_ms=now_ms
            )
            keep_from = now_ms - params.history_ms
            # Past the look-back an event is history: its terms are enough.
            for i in range(bisect.bisect_left(times, from_ms)):
                ts, item = kept[i]
                if item.event is not None:
                    kept[i] = (ts, new_terms.Seen(ts, None, item.terms))
        del kept[: bisect.bisect_left(times, keep_from)]
        return alerts
