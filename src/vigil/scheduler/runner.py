"""Runs each enabled rule on its own schedule over the event store.

A run searches its windows, hands the events to the engine, keeps at most
``max_signals`` alerts (earliest first), stores them (a uuid is kept once, so
overlapping windows never double an alert), then records the run and where the
rule's coverage ends — in that order, so a crash mid-run repeats the run
instead of skipping it.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from vigil.eql.fields import lookup
from vigil.errors import VigilError
from vigil.events.model import Event
from vigil.scheduler.clock import Clock, default_clock
from vigil.scheduler.windows import duration_ms, plan
from vigil.store.alerts import AlertStore, to_millis
from vigil.store.events import EventStore
from vigil.store.runs import Run, RunStore

log = logging.getLogger("vigil.scheduler")

EngineFactory = Callable[[list[Any]], Any]


def default_engine_factory(exceptions: Any = None) -> EngineFactory:
    def make(rules: list[Any]) -> Any:
        from vigil.engine import Engine

        return Engine(rules, exceptions=exceptions)

    return make


def rule_id(rule: Any) -> str:
    return str(getattr(rule, "rule_id", None) or getattr(rule, "name", "rule"))


def _alert_time(alert: dict) -> int:
    for path in ("kibana.alert.original_time", "@timestamp"):
        values = lookup(alert, path)
        if values and (ms := to_millis(values[0])) is not None:
            return ms
    return 0


class Scheduler:
    def __init__(
        self,
        rules: Iterable[Any],
        events: EventStore,
        alerts: AlertStore,
        runs: RunStore,
        *,
        engine_factory: EngineFactory | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.rules = {rule_id(r): r for r in rules}
        self.events = events
        self.alerts = alerts
        self.runs = runs
        self.engine_factory = engine_factory or default_engine_factory()
        self.clock = clock or default_clock()

    def runnable(self, rule: Any) -> bool:
        return bool(getattr(rule, "runnable", True))

    def enabled(self, rule: Any) -> bool:
        override = self.runs.state(rule_id(rule)).enabled
        return bool(getattr(rule, "enabled", True)) if override is None else override

    def set_enabled(self, rid: str, enabled: bool) -> None:
        self.runs.set_enabled(rid, enabled)

    def due(self, rule: Any, now_ms: int) -> bool:
        if not (self.runnable(rule) and self.enabled(rule)):
            return False
        last = self.runs.state(rule_id(rule)).last_started_ms
        return last is None or now_ms - last >= duration_ms(getattr(rule, "interval", "5m"), what="interval")

    def tick(self) -> list[Run]:
        """Run every rule that is due now; returns the runs made."""
        done: list[Run] = []
        for rule in list(self.rules.values()):
            now = self.clock.now_ms()
            try:
                if self.due(rule, now):
                    done.extend(self.run_rule(rule, now))
            except VigilError as exc:
                # A rule with an unreadable schedule: record it once, keep the others running.
                if self.runs.state(rule_id(rule)).last_started_ms is None:
                    run = Run(rule_id(rule), now, 0, now, now, error=exc.render())
                    self.runs.finish(run, started_ms=now)
                    done.append(run)
        return done

    def run_rule(self, rule: Any, now_ms: int) -> list[Run]:
        rid = rule_id(rule)
        interval = duration_ms(getattr(rule, "interval", "5m"), what="interval")
        span = duration_ms(getattr(rule, "from_", "now-6m"), what="from")
        state = self.runs.state(rid)
        p = plan(now_ms, interval, span, state.last_started_ms)
        out = []
        for i, window in enumerate(p.windows):
            last = i == len(p.windows) - 1
            run = self._search(rule, window.start_ms, window.end_ms, now_ms)
            run.catch_up = window.catch_up
            if i == 0 and p.gap_from_ms is not None:
                run.gap_from_ms, run.gap_to_ms = p.gap_from_ms, p.gap_to_ms
                log.warning("rule %s: gap of %d ms not searched", rid, p.gap_to_ms - p.gap_from_ms)
            # The schedule advances only with the last window: a crash before it repeats the run.
            self.runs.finish(run, started_ms=now_ms if last else None, covered_to_ms=window.end_ms)
            out.append(run)
        return out

    def _search(self, rule: Any, start_ms: int, end_ms: int, now_ms: int) -> Run:
        t0 = time.monotonic()
        rid = rule_id(rule)
        run = Run(rid, now_ms, 0, start_ms, end_ms)
        try:
            field = getattr(rule, "timestamp_override", None) or "@timestamp"
            matches_index = getattr(rule, "matches_index", None)
            found = [
                Event(doc, idx, doc_id, f"{idx}/{doc_id}")
                for idx, doc_id, doc in self.events.search(
                    start_ms, end_ms, timestamp_field=field, index_filter=matches_index
                )
            ]
            run.events_searched = len(found)
            engine = self.engine_factory([rule])
            alerts = list(engine.scan(found))
            run.matches = len(alerts)
            max_signals = int(getattr(rule, "max_signals", 100) or 100)
            alerts.sort(key=_alert_time)
            stats = getattr(engine, "stats", None)
            over = _over_cap(stats, rid)
            run.capped = len(alerts) > max_signals or over or len(alerts) == max_signals
            alerts = alerts[:max_signals]
            run.alerts_written = self.alerts.add(alerts)
        except Exception as exc:  # a broken rule must not stop the others
            run.error = f"{type(exc).__name__}: {exc}"
            log.error("rule %s failed: %s\n%s", rid, exc, traceback.format_exc())
        run.duration_ms = int((time.monotonic() - t0) * 1000)
        return run


def _over_cap(stats: Any, rid: str) -> bool:
    """Whether the engine says it dropped alerts over ``max_signals``."""
    if not isinstance(stats, dict):
        return False
    entry = stats.get(rid)
    if entry is None:
        return False
    value = (
        entry.get("over_max_signals") if isinstance(entry, dict) else getattr(entry, "over_max_signals", 0)
    )
    return bool(value)
