"""Runs each enabled rule on its own schedule over the event store.

A run does what Kibana's EQL rule executor does with one Elasticsearch EQL
search: it reads the events of its window (cut on ``timestamp_override`` with
``@timestamp`` as the fallback, both ends included), hands them to the engine
in the order of the EQL ``timestamp_field`` (``@timestamp`` unless the rule says
otherwise), keeps the earliest ``max_signals`` events or sequences (Kibana
sends ``size: max_signals``) and records the run as capped when the matches
reach that number (Kibana's max-signals warning fires on ``hits.total >=
max_signals``). See Kibana's ``rule_types/eql/eql.ts`` and
``build_eql_search_request.ts``.

Alerts are stored (a uuid is kept once, so overlapping windows never double an
alert), then the run and where the rule's coverage ends are recorded — in that
order, so a crash mid-run repeats the run instead of skipping it.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from vigil.engine.suppression import suppression_of
from vigil.eql.dates import to_millis
from vigil.eql.fields import lookup
from vigil.errors import VigilError
from vigil.events.model import Event
from vigil.rules.model import SCHEDULED_TYPES
from vigil.scheduler import stateful
from vigil.scheduler.clock import Clock, default_clock
from vigil.scheduler.windows import duration_ms, plan
from vigil.store.alert_index import alert_event, reads_alerts
from vigil.store.alerts import AlertStore
from vigil.store.events import EventStore
from vigil.store.runs import Run, RunStore

log = logging.getLogger("vigil.scheduler")

# Windows kept in memory during one tick (rules with the same schedule share one).
WINDOWS_KEPT = 4
# A run is cut off after this long, as Kibana cancels a rule run past
# xpack.alerting.rules.run.timeout (default 5m); its alerts found so far are kept.
RUN_TIMEOUT_S = 300.0
# Rules run on this many threads: a slow rule holds one, the others go on.
WORKERS = 4
# Events one run may set aside because evaluating them failed; past this the run fails.
MAX_FAILED_EVENTS = 16
# From this many rules due in one tick over one window, they run as one pass of the
# columnar engine core (vigil.engine.core) rather than one engine pass each.
SHARED_MIN = 64
# What a rule carries from run to run in the store (vigil.scheduler.stateful).
MEMORY_KINDS = (stateful.SIGNAL_HISTORY, stateful.BUCKET_HISTORY)


class RunTimeout(Exception):
    """A run past its time budget."""


class SharedPass:
    """One window that many rules search in a tick, searched once for all of them by the
    engine core. The first of their runs makes the pass; the others wait for it (within
    their own time budget). If the pass fails or runs out of time, each rule searches the
    window on its own, so a hostile event still costs only itself (see ``_evaluate``)."""

    def __init__(self, rules: list[Any]) -> None:
        self.rules = rules
        self._lock = threading.Lock()
        self._done = False
        self._alerts: dict[str, list[dict]] | None = None

    def alerts(
        self, scheduler: Any, key: tuple, rule: Any, now: datetime, deadline: float
    ) -> list[dict] | None:
        """``rule``'s alerts from the pass (None: the rule must search on its own)."""
        if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return None
        try:
            if not self._done:
                self._done = True
                try:
                    self._alerts = scheduler._core_pass(self.rules, key, now, deadline)
                except Exception as exc:  # noqa: BLE001 - every rule then runs alone
                    log.warning(
                        "shared pass over %d rules failed (%s); each runs alone", len(self.rules), exc
                    )
        finally:
            self._lock.release()
        if self._alerts is None:
            return None
        return list(self._alerts.get(rule_id(rule), ()))


def _budgeted(events: list[Event], deadline: float, seen: list[int]) -> Iterator[Event]:
    """The events, checking the run's deadline before each (``seen[0]`` counts those handed out)."""
    for event in events:
        if time.monotonic() > deadline:
            raise RunTimeout
        seen[0] += 1
        yield event


# (rules, now) -> an engine with .scan(events) yielding Kibana-shaped alerts.
EngineFactory = Callable[[list[Any], datetime], Any]


def default_engine_factory(exceptions: Any = None, exceptions_all: bool = False) -> EngineFactory:
    def make(rules: list[Any], now: datetime) -> Any:
        from vigil.engine import Engine

        return Engine(rules, exceptions=exceptions, exceptions_all=exceptions_all, now=now)

    return make


def rule_id(rule: Any) -> str:
    return str(getattr(rule, "rule_id", None) or getattr(rule, "name", "rule"))


def eql_timestamp_field(rule: Any) -> str:
    """The field the EQL search orders events by: the rule's ``timestamp_field``, else
    ``@timestamp`` (as its compiled query orders them, see ``Rule.eql_options``)."""
    return str(getattr(rule, "timestamp_field", None) or "@timestamp")


def _event_ms(doc: dict, field: str) -> int | None:
    values = lookup(doc, field)
    return to_millis(values[0]) if values else None


def _ancestor_keys(alert: dict) -> list[tuple[str, str]]:
    keys = []
    for ancestor in lookup(alert, "kibana.alert.ancestors") or []:
        if isinstance(ancestor, dict) and ancestor.get("depth", 0) == 0:
            keys.append((str(ancestor.get("index") or ""), str(ancestor.get("id"))))
    return keys


def signals(alerts: Iterable[dict], order: dict[tuple[str, str], int]) -> list[list[dict]]:
    """Alerts grouped as Kibana counts them against ``max_signals``, earliest first.

    One matched event is one signal; one sequence (its shell alert and one
    building-block alert per event, sharing ``kibana.alert.group.id``) is one
    signal. A signal ranks by the earliest of its events in ``order``.
    """
    groups: dict[str, list[dict]] = {}
    for alert in alerts:
        group = lookup(alert, "kibana.alert.group.id")
        key = str(group[0]) if group else str(lookup(alert, "kibana.alert.uuid")[0])
        groups.setdefault(key, []).append(alert)
    last = len(order)

    def rank(members: list[dict]) -> int:
        positions = [order.get(k, last) for a in members for k in _ancestor_keys(a)]
        return min(positions, default=last)

    # sorted() is stable: signals of equal rank keep the engine's order.
    return sorted(groups.values(), key=rank)


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
        run_timeout_s: float = RUN_TIMEOUT_S,
        workers: int = WORKERS,
    ) -> None:
        self.rules = {rule_id(r): r for r in rules}
        self.run_timeout_s = run_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vigil-rule")
        self._busy: set[str] = set()  # rules with a run in progress, perhaps begun in an earlier tick
        self._lock = threading.Lock()
        self.events = events
        self.alerts = alerts
        self.runs = runs
        self.engine_factory = engine_factory or default_engine_factory()
        self.clock = clock or default_clock()
        # Windows read during the current tick (None outside a tick: nothing is cached).
        self._windows: dict[tuple, list[Event]] | None = None
        self._window_lock = threading.Lock()
        # rule_id -> (run's now, window start, window end) of the search in progress.
        self.running: dict[str, tuple[int, int, int]] = {}
        # New terms rules' histories and indicator match rules' indicators, brought up to
        # date run by run (rebuilt from the store after a start).
        self._terms: dict[str, stateful.TermsHistory | stateful.IndicatorHistory] = {}
        self.shared_min = SHARED_MIN

    def runnable(self, rule: Any) -> bool:
        # Threshold and new terms rules keep their state in the store (vigil.scheduler.stateful);
        # other scheduled types run in scans only until they do.
        kind = getattr(rule, "type", None)
        return bool(getattr(rule, "runnable", True)) and (
            kind not in SCHEDULED_TYPES or kind in stateful.SERVED
        )

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

    def close(self) -> None:
        """Stop taking runs; runs in progress finish on their own threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def tick(self, wait_s: float | None = None) -> list[Run]:
        """Start every rule that is due now, each on a worker thread; returns the runs made.

        Waits for them all, or (``wait_s``) that long at most: a rule still running
        then finishes and records its run on its own, and is not started again until it
        has, so a slow rule never holds back the others' schedules.
        """
        # One "now" for the tick: rules due together search the same window, read once.
        now = self.clock.now_ms()
        self._windows = {}
        slots: list[list[Run] | tuple[str, Future]] = []
        try:
            due: list[Any] = []
            for rule in list(self.rules.values()):
                rid = rule_id(rule)
                with self._lock:
                    if rid in self._busy:
                        continue
                try:
                    if not self.due(rule, now):
                        continue
                except VigilError as exc:
                    # A rule with an unreadable schedule: record it once, keep the others running.
                    if self.runs.state(rid).last_started_ms is None:
                        run = Run(rid, now, 0, now, now, error=exc.render())
                        self.runs.finish(run, started_ms=now)
                        slots.append([run])
                    continue
                due.append(rule)
            passes = self._shared_passes(due, now)
            for rule in due:
                with self._lock:
                    self._busy.add(rule_id(rule))
                slots.append((rule_id(rule), self._pool.submit(self._job, rule, now, passes)))
            deadline = None if wait_s is None else time.monotonic() + wait_s
            done: list[Run] = []
            for slot in slots:
                if isinstance(slot, list):
                    done.extend(slot)
                    continue
                rid, future = slot
                try:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    done.extend(future.result(timeout=left))
                except FutureTimeout:
                    log.info("rule %s still running; the other rules go on", rid)
            return done
        finally:
            self._windows = None

    def _job(self, rule: Any, now_ms: int, passes: dict | None = None) -> list[Run]:
        rid = rule_id(rule)
        try:
            return self.run_rule(rule, now_ms, passes)
        except Exception as exc:  # a broken rule must not stop the others
            log.error("rule %s failed: %s\n%s", rid, exc, traceback.format_exc())
            run = Run(rid, now_ms, 0, now_ms, now_ms, error=f"{type(exc).__name__}: {str(exc)[:500]}")
            try:
                self.runs.finish(run, started_ms=now_ms)
            except Exception:
                log.exception("rule %s: the failed run could not be recorded", rid)
            return [run]
        finally:
            with self._lock:
                self._busy.discard(rid)

    def _plan(self, rule: Any, now_ms: int):
        interval = duration_ms(getattr(rule, "interval", "5m"), what="interval")
        span = duration_ms(getattr(rule, "from_", "now-6m"), what="from")
        return plan(now_ms, interval, span, self.runs.state(rule_id(rule)).last_started_ms)

    def _shared_passes(self, due: list[Any], now_ms: int) -> dict[tuple, SharedPass]:
        """The windows that many of the ``due`` event, sequence and sample rules search in
        this tick: each is searched by one pass of the engine core for all of them."""
        groups: dict[tuple, list[Any]] = {}
        for rule in due:
            if getattr(rule, "type", None) in SCHEDULED_TYPES or reads_alerts(rule):
                continue
            try:
                windows = self._plan(rule, now_ms).windows
            except VigilError:
                continue
            for w in windows:
                groups.setdefault(self._window_key(rule, w.start_ms, w.end_ms), []).append(rule)
        return {key: SharedPass(rules) for key, rules in groups.items() if len(rules) >= self.shared_min}

    @staticmethod
    def _window_key(rule: Any, start_ms: int, end_ms: int) -> tuple:
        window_field = getattr(rule, "timestamp_override", None) or "@timestamp"
        return (start_ms, end_ms, window_field, eql_timestamp_field(rule))

    def run_rule(self, rule: Any, now_ms: int, passes: dict | None = None) -> list[Run]:
        rid = rule_id(rule)
        p = self._plan(rule, now_ms)
        out = []
        memory = {kind: self.runs.memory(rid, kind) for kind in MEMORY_KINDS}
        for i, window in enumerate(p.windows):
            last = i == len(p.windows) - 1
            shared = (passes or {}).get(self._window_key(rule, window.start_ms, window.end_ms))
            run = self._search(rule, window.start_ms, window.end_ms, now_ms, memory=memory, shared=shared)
            run.catch_up = window.catch_up
            if i == 0 and p.gap_from_ms is not None:
                run.gap_from_ms, run.gap_to_ms = p.gap_from_ms, p.gap_to_ms
                log.warning("rule %s: gap of %d ms not searched", rid, p.gap_to_ms - p.gap_from_ms)
            # The schedule advances only with the last window: a crash before it repeats the run.
            self.runs.finish(
                run,
                started_ms=now_ms if last else None,
                covered_to_ms=window.end_ms,
                memory={k: v for k, v in memory.items() if v is not None} if run.error is None else None,
            )
            out.append(run)
        return out

    def _window(self, start_ms: int, end_ms: int, window_field: str, order_field: str | None) -> list[Event]:
        """The events of a window, read and decoded once per tick for every rule that searches
        it (the last few windows are kept: rules of one schedule share theirs)."""
        key = (start_ms, end_ms, window_field, order_field)
        cache = self._windows if self._windows is not None else {}
        with self._window_lock:
            return self._cached_window(cache, key)

    def _cached_window(self, cache: dict, key: tuple) -> list[Event]:
        start_ms, end_ms, window_field, order_field = key
        if key not in cache:
            if len(cache) >= WINDOWS_KEPT:
                cache.pop(next(iter(cache)))
            cache[key] = [
                Event(doc, idx, doc_id, f"{idx}/{doc_id}")
                for idx, doc_id, doc in self.events.search(
                    start_ms, end_ms, timestamp_field=window_field, order_by=order_field
                )
            ]
        return cache[key]

    def _after(self, seq: int) -> tuple[int, list[Event]]:
        """The events stored after position ``seq`` (a page), read once per tick for every
        new terms rule at that position; the alert store's alerts are not among them."""
        cache = self._windows if self._windows is not None else {}
        with self._window_lock:
            key = ("after", seq)
            if key not in cache:
                if len(cache) >= WINDOWS_KEPT:
                    cache.pop(next(iter(cache)))
                last, rows = self.events.after(seq)
                cache[key] = (last, [Event(doc, idx, i, f"{idx}/{i}") for idx, i, doc in rows])
            return cache[key]

    def _alerts_after(self, position: int) -> tuple[int, list[Event]]:
        """The alerts stored after ``position``, as documents of the alerts index."""
        last, alerts = self.alerts.after(position)
        return last, [alert_event(a) for a in alerts]

    def _read(self, rule: Any, start_ms: int, end_ms: int) -> list[Event]:
        """The events of ``[start_ms, end_ms]`` a rule's index takes, cut on its
        ``timestamp_override`` (``@timestamp`` as the fallback); the alert store's alerts
        too when the rule reads ``.alerts-security.*``."""
        window_field = getattr(rule, "timestamp_override", None) or "@timestamp"
        matches_index = getattr(rule, "matches_index", None)
        found = [
            event
            for event in self._window(start_ms, end_ms, window_field, eql_timestamp_field(rule))
            if matches_index is None or matches_index(event.index)
        ]
        if reads_alerts(rule):
            # An alert is written after its event arrived: its @timestamp bounds its event times.
            for alert in self.alerts.between(start_ms, 2**62):
                event = alert_event(alert)
                ts = stateful.suppression.event_time(event.doc, rule)
                if ts is not None and start_ms <= ts <= end_ms:
                    found.append(event)
        return found

    def _search(
        self,
        rule: Any,
        start_ms: int,
        end_ms: int,
        now_ms: int,
        memory: dict[str, Any] | None = None,
        shared: SharedPass | None = None,
    ) -> Run:
        t0 = time.monotonic()
        rid = rule_id(rule)
        run = Run(rid, now_ms, 0, start_ms, end_ms)
        self.running[rid] = (now_ms, start_ms, end_ms)
        try:
            found = self._read(rule, start_ms, end_ms)
            run.events_searched = len(found)
            memory = {} if memory is None else memory
            order = {(e.index or "", e.id): i for i, e in enumerate(found)}
            now = datetime.fromtimestamp(now_ms / 1000, UTC)
            deadline = t0 + self.run_timeout_s
            alerts: list[dict] = []
            try:
                if getattr(rule, "type", None) in stateful.SERVED:
                    engine = self.engine_factory([rule], now)
                    history = None
                    if rule.type == "new_terms":
                        history = self._terms.setdefault(rid, stateful.TermsHistory())
                    elif rule.type == "threat_match":
                        history = self._terms.setdefault(rid, stateful.IndicatorHistory(rule))
                    sources = {"events": self._after}
                    if reads_alerts(rule):
                        sources["alerts"] = self._alerts_after
                    alerts += stateful.scheduled_alerts(
                        rule, engine, found, history, sources, memory, from_ms=start_ms, to_ms=end_ms
                    )
                else:
                    key = self._window_key(rule, start_ms, end_ms)
                    found_together = None if shared is None else shared.alerts(self, key, rule, now, deadline)
                    if found_together is not None:
                        alerts += found_together
                    else:
                        failed = self._evaluate(rule, now, found, deadline, alerts)
                        run.events_failed = len(failed)
            except RunTimeout:
                run.error = f"timed out after {self.run_timeout_s:g} s; the alerts found so far are kept"
                log.warning("rule %s: run %s", rid, run.error)
            found_signals = signals(alerts, order)
            run.matches = len(found_signals)
            max_signals = int(getattr(rule, "max_signals", 100) or 100)
            run.capped = run.matches >= max_signals
            spec = suppression_of(rule) if getattr(rule, "raw", None) else None
            if spec is not None:
                run.alerts_written, run.alerts_suppressed = stateful.write_suppressed(
                    rule,
                    spec,
                    [alert for signal in found_signals for alert in signal],
                    found,
                    self.alerts,
                    memory,
                    now=now,
                    now_ms=now_ms,
                    from_ms=start_ms,
                    to_ms=end_ms,
                )
            else:
                kept = [alert for signal in found_signals[:max_signals] for alert in signal]
                run.alerts_written = self.alerts.add(kept)
        except Exception as exc:  # a broken rule must not stop the others
            run.error = f"{type(exc).__name__}: {str(exc)[:500]}"
            log.error("rule %s failed: %s\n%s", rid, exc, traceback.format_exc())
        finally:
            self.running.pop(rid, None)
        run.duration_ms = int((time.monotonic() - t0) * 1000)
        return run

    def _core_pass(
        self, rules: list[Any], key: tuple, now: datetime, deadline: float
    ) -> dict[str, list[dict]]:
        """The alerts of ``rules`` over the window ``key``, by rule: one pass of the engine
        core, each rule reading the window's events of its own indices."""
        from vigil.engine.core import scan_items

        engine = self.engine_factory(rules, now)
        events = self._window(*key)
        seen = [0]
        out: dict[str, list[dict]] = {}
        for alert in scan_items(engine, ((e, None) for e in _budgeted(events, deadline, seen))):
            if time.monotonic() > deadline:
                raise RunTimeout
            out.setdefault(alert["kibana.alert.rule.rule_id"], []).append(alert)
        return out

    def _scan(self, rule: Any, now: datetime, events: list[Event], deadline: float, out: list[dict]) -> None:
        """One engine pass over ``events``, its alerts appended to ``out`` as they come."""
        engine = self.engine_factory([rule], now)
        seen = [0]
        for alert in engine.scan(_budgeted(events, deadline, seen)):
            if time.monotonic() > deadline:
                raise RunTimeout
            out.append(alert)

    def _evaluate(
        self, rule: Any, now: datetime, events: list[Event], deadline: float, out: list[dict]
    ) -> list[Event]:
        """The rule over ``events``, alerts into ``out``; returns the events set aside.

        An event whose evaluation raises (a value no code path expected) is found by
        halving (the shortest failing prefix ends with it), set aside and counted, and the
        rule runs again without it: one hostile event costs itself, never the run.
        A rule that fails with no events at all is broken: that is the run's error.
        """
        failed: list[Event] = []
        events = list(events)
        while True:
            alerts: list[dict] = []
            try:
                self._scan(rule, now, events, deadline, alerts)
                out.extend(alerts)
                return failed
            except RunTimeout:
                out.extend(alerts)
                raise
            except Exception as exc:
                bad = self._first_failing(rule, now, events, deadline)
                if bad is None or len(failed) >= MAX_FAILED_EVENTS:
                    raise exc from None
                event = events.pop(bad)
                failed.append(event)
                log.warning(
                    "rule %s: event %s set aside, its evaluation failed: %s: %s",
                    rule_id(rule),
                    event.origin,
                    type(exc).__name__,
                    str(exc)[:200],
                )

    def _first_failing(self, rule: Any, now: datetime, events: list[Event], deadline: float) -> int | None:
        """The index of the event ending the shortest prefix of ``events`` the rule fails on."""

        def fails(n: int) -> bool:
            try:
                self._scan(rule, now, events[:n], deadline, [])
            except RunTimeout:
                raise
            except Exception:
                return True
            return False

        if fails(0) or not fails(len(events)):
            return None  # the rule fails on its own, or the failure does not come back
        lo, hi = 1, len(events)
        while lo < hi:
            mid = (lo + hi) // 2
            if fails(mid):
                hi = mid
            else:
                lo = mid + 1
        return lo - 1
