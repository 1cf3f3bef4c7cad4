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
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson

from vigil.engine import esql_rule
from vigil.engine.replay import Replay
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
from vigil.store.alerts import AlertStore, alert_rows
from vigil.store.events import EventStore, Span
from vigil.store.runs import Finished, RuleState, Run, RunStore

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
# columnar engine core (vigil.engine.core) rather than one engine pass each (a pass of a
# few rules reads only the fields they test: over 20,000 events, cohorts of 8 to 45 rules
# searched in a pass took half the time of their rules searching alone).
SHARED_MIN = 8
# The scheduled rules (threshold, new terms, indicator match, ES|QL) due in one tick over one
# window from this many are fed the window's events once, together (vigil.engine.replay.Replay).
SCHEDULED_SHARED_MIN = 2
# Events fed to a shared replay at once (vigil.engine.replay.Replay.feed_batch).
FEED_BATCH = stateful.FEED_BATCH
# What a rule carries from run to run in the store (vigil.scheduler.stateful).
MEMORY_KINDS = (stateful.SIGNAL_HISTORY, stateful.BUCKET_HISTORY)


class RunTimeout(Exception):
    """A run past its time budget."""


class WindowEvents:
    """The events of one window, in the order its search hands them out, shared by every
    rule that searches it in a tick: what each rule takes of them is decided per index."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.counts: dict[str | None, int] = Counter(map(attrgetter("index"), events))
        self._positions: dict[tuple[str, str], int] | None = None
        self._by_key: dict[tuple[str, str], Event] | None = None
        self.alone = False  # read from the store on its own (not cut from the tick's span)

    def positions(self) -> dict[tuple[str, str], int]:
        """Each event's place in the window, by (index, id): the order signals rank by."""
        if self._positions is None:
            self._positions = {(e.index or "", e.id): i for i, e in enumerate(self.events)}
        return self._positions

    def by_key(self) -> dict[tuple[str, str], Event]:
        if self._by_key is None:
            self._by_key = {(e.index or "", e.id): e for e in self.events}
        return self._by_key


class SharedPass:
    """One window that many rules search in a tick, searched once for all of them: the
    event, sequence and sample rules by one pass of the engine core (``core``: alerts by
    rule), the threshold, new terms, indicator match and ES|QL rules by one replay feed
    (``scheduled``: what each rule's run takes). A part that failed or ran late is None:
    its rules then search the window on their own, so a hostile event still costs only
    itself (see ``Scheduler._evaluate``)."""

    def __init__(self) -> None:
        self.core: dict[str, list[dict]] | None = None
        self.core_rules: set[str] = set()
        self.scheduled: dict[str, Any] | None = None
        self.scheduled_rules: set[str] = set()
        self.engine: Any = None  # the engine of the scheduled rules' pass
        self.key: tuple | None = None  # the window searched
        self.elapsed_s = 0.0

    def alerts(self, rule: Any) -> list[dict] | None:
        """``rule``'s alerts from the core pass (None: the rule must search on its own)."""
        rid = rule_id(rule)
        if self.core is None or rid not in self.core_rules:
            return None
        return list(self.core.get(rid, ()))

    def taken(self, rule: Any) -> Any:
        """What ``rule``'s run takes from the replay feed (None: it must read on its own)."""
        rid = rule_id(rule)
        if self.scheduled is None or rid not in self.scheduled_rules:
            return None
        return self.scheduled.get(rid)


class _Tick:
    """What one tick reads once and every run of the tick shares: the rules' states and
    memories, the events of the tick's windows (one read, each document decoded once), the
    windows cut from them, and the pages of events stored since a position."""

    def __init__(self, now_ms: int, states: dict[str, RuleState] | None, memories: dict | None) -> None:
        self.now_ms = now_ms
        self.states = states  # None: read each from the store (a run outside a tick)
        self.memories = memories
        self.span: Span | None = None
        self.windows: dict[tuple, WindowEvents] = {}
        self.pages: dict[int, tuple[int, list[Event]]] = {}
        self.lock = threading.Lock()
        # While the tick waits for its jobs, what they found is recorded by the tick, all in
        # one transaction (rules, their runs); a job ending after that records its own.
        self.collecting = False
        self.finished: list[tuple[list[Any], list[Finished]]] = []


def _event_rule(rule: Any) -> bool:
    """Whether the rule matches single events (not a sequence or sample)."""
    try:
        return rule.compiled().kind == "event"
    except Exception:  # noqa: BLE001 - a rule that does not compile runs alone and fails there
        return False


def _event(index: str, doc_id: str, doc: dict) -> Event:
    return Event(doc, index, doc_id, f"{index}/{doc_id}")


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


def _source_keys(alert: dict) -> list[tuple[str, str]]:
    """(index, id) of the events an alert was raised on (its ancestors of depth 0)."""
    return [
        (str(a.get("index") or ""), str(a.get("id")))
        for a in alert.get("kibana.alert.ancestors") or ()
        if isinstance(a, dict) and a.get("depth", 0) == 0
    ]


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
        positions = [order.get(k, last) for a in members for k in _source_keys(a)]
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
        # rule_id -> (run's now, window start, window end) of the search in progress.
        self.running: dict[str, tuple[int, int, int]] = {}
        # New terms rules' histories and indicator match rules' indicators, brought up to
        # date run by run (rebuilt from the store after a start).
        self._terms: dict[str, stateful.TermsHistory | stateful.IndicatorHistory] = {}
        self.shared_min = SHARED_MIN
        self.scheduled_shared_min = SCHEDULED_SHARED_MIN
        # (rule, index) -> whether the rule reads the index; rule -> whether it reads alerts.
        self._takes_index: dict[tuple[str, str | None], bool] = {}
        self._reads_alerts: dict[str, bool] = {}

    def runnable(self, rule: Any) -> bool:
        # Threshold and new terms rules keep their state in the store (vigil.scheduler.stateful);
        # other scheduled types run in scans only until they do.
        kind = getattr(rule, "type", None)
        return bool(getattr(rule, "runnable", True)) and (
            kind not in SCHEDULED_TYPES or kind in stateful.SERVED
        )

    def enabled(self, rule: Any, state: RuleState | None = None) -> bool:
        override = (state or self.runs.state(rule_id(rule))).enabled
        return bool(getattr(rule, "enabled", True)) if override is None else override

    def set_enabled(self, rid: str, enabled: bool) -> None:
        self.runs.set_enabled(rid, enabled)

    def due(self, rule: Any, now_ms: int, state: RuleState | None = None) -> bool:
        state = state or self.runs.state(rule_id(rule))
        if not (self.runnable(rule) and self.enabled(rule, state)):
            return False
        last = state.last_started_ms
        return last is None or now_ms - last >= duration_ms(getattr(rule, "interval", "5m"), what="interval")

    def close(self) -> None:
        """Stop taking runs; runs in progress finish on their own threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def tick(self, wait_s: float | None = None) -> list[Run]:
        """Start every rule that is due now; returns the runs made.

        The rules due together that search the same windows run as one job on a worker
        thread (one pass over each window for all of them, one transaction for their runs
        and alerts); the others run as a job each. Waits for them all, or (``wait_s``) that
        long at most: a job still running then finishes and records its runs on its own,
        and its rules are not started again until it has, so a slow rule never holds back
        the others' schedules.
        """
        # One "now" for the tick: rules due together search the same window, read once.
        now = self.clock.now_ms()
        ctx = _Tick(now, self.runs.states(), self.runs.memories(MEMORY_KINDS))
        slots: list[tuple[list[str], Future]] = []
        due: list[Any] = []
        failed: list[Finished] = []
        for rule in list(self.rules.values()):
            rid = rule_id(rule)
            with self._lock:
                if rid in self._busy:
                    continue
            state = self._state(ctx, rid)
            try:
                if not self.due(rule, now, state):
                    continue
            except VigilError as exc:
                # A rule with an unreadable schedule: record it once, keep the others running.
                if state.last_started_ms is None:
                    failed.append(Finished(Run(rid, now, 0, now, now, error=exc.render()), started_ms=now))
                continue
            due.append(rule)
        ctx.finished.append(([], failed))
        ctx.collecting = True
        jobs = self._jobs(ctx, due, now)
        self._read_span(ctx, jobs)
        for how, rules in jobs:
            rids = [rule_id(r) for r in rules]
            with self._lock:
                self._busy.update(rids)
            slots.append((rids, self._pool.submit(self._job, ctx, how, rules, now)))
        deadline = None if wait_s is None else time.monotonic() + wait_s
        for rids, future in slots:
            try:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                future.result(timeout=left)
            except FutureTimeout:
                log.info("rules %s still running; the other rules go on", ", ".join(rids[:5]))
        with ctx.lock:
            ctx.collecting = False
            finished, ctx.finished = ctx.finished, []
        self._commit(finished, now)
        order = {rid: i for i, rid in enumerate(self.rules)}
        # Runs in rule order (a job's runs come together), each rule's windows oldest first.
        done = [f.run for _, records in finished for f in records]
        done.sort(key=lambda r: order.get(r.rule_id, len(order)))
        return done

    def _state(self, ctx: _Tick, rid: str) -> RuleState:
        if ctx.states is None:
            return self.runs.state(rid)
        return ctx.states.get(rid) or RuleState(rid)

    def _jobs(self, ctx: _Tick, due: list[Any], now_ms: int) -> list[tuple[str | None, list[Any]]]:
        """The ``due`` rules as jobs ``(how, rules)``: the event, sequence and sample rules
        whose runs search the same windows, at least ``shared_min`` of them, are one job
        (``"core"``: one core pass per window); the threshold, new terms, indicator match and
        ES|QL rules that cut their windows on the same fields, at least
        ``scheduled_shared_min`` of them, are one job (``"replay"``: one replay feed over
        all their windows); every other rule is a job of its own (``None``)."""
        cohorts: dict[tuple, list[Any]] = {}
        fed: dict[tuple, list[Any]] = {}
        jobs: list[tuple[str | None, list[Any]]] = []
        for rule in due:
            try:
                p = self._plan(ctx, rule, now_ms)
            except VigilError:
                jobs.append((None, [rule]))
                continue
            if self._rule_reads_alerts(rule):
                jobs.append((None, [rule]))
                continue
            keys = tuple(self._window_key(rule, w.start_ms, w.end_ms) + (w.catch_up,) for w in p.windows)
            if getattr(rule, "type", None) in SCHEDULED_TYPES:
                fed.setdefault(keys[0][2:4], []).append(rule)
            else:
                cohorts.setdefault((keys, p.gap_from_ms, p.gap_to_ms), []).append(rule)
        self._absorb(cohorts)
        for how, groups, least in (
            ("core", cohorts, self.shared_min),
            ("replay", fed, self.scheduled_shared_min),
        ):
            for rules in groups.values():
                if len(rules) >= least:
                    jobs.append((how, rules))
                else:
                    jobs.extend((None, [r]) for r in rules)
        return jobs

    @staticmethod
    def _absorb(cohorts: dict[tuple, list[Any]]) -> None:
        """Move the event rules of a cohort whose one window lies inside the window of the
        largest cohort cutting on the same fields (most rules: ``now-9m`` inside which
        ``now-6m`` and ``now-2m`` lie) into that cohort: its core pass gives them their
        alerts, kept for the events of their own window. An event rule's match is one event,
        so a wider pass finds each of its alerts of the window as the window's pass would;
        sequences and samples keep their own windows."""
        hosts: dict[tuple, tuple] = {}
        for key, rules in cohorts.items():
            keys, gap_from, _ = key
            if len(keys) != 1 or gap_from is not None:
                continue
            fields = keys[0][1:4]  # end, window field, order field
            host = hosts.get(fields)
            if host is None or len(rules) > len(cohorts[host]):
                hosts[fields] = key
        for key in list(cohorts):
            keys, gap_from, _ = key
            if len(keys) != 1 or gap_from is not None:
                continue
            host = hosts[keys[0][1:4]]
            if host == key or keys[0][0] < host[0][0][0]:
                continue
            events = [r for r in cohorts[key] if _event_rule(r)]
            if events:
                cohorts[host].extend(events)
                cohorts[key] = [r for r in cohorts[key] if not _event_rule(r)]

    def _read_span(self, ctx: _Tick, jobs: list[tuple[str | None, list[Any]]]) -> None:
        """Read the events of every window the tick searches at once."""
        starts = []
        for _, rules in jobs:
            for rule in rules:
                try:
                    starts += [w.start_ms for w in self._plan(ctx, rule, ctx.now_ms).windows]
                except VigilError:
                    continue
        if starts:
            ctx.span = self.events.span(min(starts), ctx.now_ms, make=_event)

    def _job(self, ctx: _Tick, how: str | None, rules: list[Any], now_ms: int) -> list[Run]:
        """Run ``rules`` (one rule, or rules searched together: see :meth:`_jobs`); their runs
        and alerts are recorded with the tick's, or on their own once the tick has stopped
        waiting."""
        try:
            records = self._run_rules(ctx, how, rules, now_ms)
        except Exception as exc:  # a broken rule must not stop the others
            log.error(
                "rules %s failed: %s\n%s", ", ".join(map(rule_id, rules[:5])), exc, traceback.format_exc()
            )
            records = self._failed(rules, now_ms, exc)
        with ctx.lock:
            if ctx.collecting:
                ctx.finished.append((rules, records))
                return [f.run for f in records]
        return self._commit([(rules, records)], now_ms)

    @staticmethod
    def _failed(rules: list[Any], now_ms: int, exc: BaseException) -> list[Finished]:
        error = f"{type(exc).__name__}: {str(exc)[:500]}"
        return [
            Finished(Run(rule_id(r), now_ms, 0, now_ms, now_ms, error=error), started_ms=now_ms)
            for r in rules
        ]

    def _commit(self, jobs: list[tuple[list[Any], list[Finished]]], now_ms: int) -> list[Run]:
        """Record the runs and alerts of ``jobs`` in one transaction; if that fails, each
        job's on its own, and a job whose records cannot be written as its rules' failed
        runs. The jobs' rules may then run again."""
        try:
            self.runs.finish_many([f for _, records in jobs for f in records])
        except Exception as together:
            log.exception("runs could not be recorded together; each job's alone")
            for rules, records in jobs:
                exc = together
                if len(jobs) > 1:
                    try:
                        self.runs.finish_many(records)
                        continue
                    except Exception as alone:
                        exc = alone
                records[:] = self._failed(rules, now_ms, exc)
                try:
                    self.runs.finish_many(records)
                except Exception:
                    log.exception(
                        "rules %s: the failed runs could not be recorded", ", ".join(map(rule_id, rules[:5]))
                    )
        finally:
            with self._lock:
                self._busy.difference_update(rule_id(r) for rules, _ in jobs for r in rules)
        return [f.run for _, records in jobs for f in records]

    def _plan(self, ctx: _Tick | None, rule: Any, now_ms: int):
        interval = duration_ms(getattr(rule, "interval", "5m"), what="interval")
        span = duration_ms(getattr(rule, "from_", "now-6m"), what="from")
        state = self._state(ctx, rule_id(rule)) if ctx is not None else self.runs.state(rule_id(rule))
        return plan(now_ms, interval, span, state.last_started_ms)

    @staticmethod
    def _window_key(rule: Any, start_ms: int, end_ms: int) -> tuple:
        window_field = getattr(rule, "timestamp_override", None) or "@timestamp"
        return (start_ms, end_ms, window_field, eql_timestamp_field(rule))

    def run_rule(self, rule: Any, now_ms: int) -> list[Run]:
        """One run of ``rule`` now, outside a tick (what it reads is read afresh), recorded."""
        ctx = _Tick(now_ms, None, None)
        records = self._run_rules(ctx, None, [rule], now_ms)
        self.runs.finish_many(records)
        return [f.run for f in records]

    def _run_rules(self, ctx: _Tick, how: str | None, rules: list[Any], now_ms: int) -> list[Finished]:
        """The runs of ``rules``, each rule's windows oldest first. ``how``: ``"core"``, the
        rules search the same windows, each searched by one core pass for all of them;
        ``"replay"``, the rules' windows are fed to one replay for all of them at once."""
        plans = {rule_id(r): self._plan(ctx, r, now_ms) for r in rules}
        memories = {rule_id(r): self._memory(ctx, rule_id(r)) for r in rules}
        out: list[Finished] = []

        def run(rule: Any, i: int, window: Any, shared: SharedPass | None) -> None:
            rid = rule_id(rule)
            p = plans[rid]
            memory = memories[rid]
            run, rows = self._search(
                ctx, rule, window.start_ms, window.end_ms, now_ms, memory=memory, shared=shared
            )
            run.catch_up = window.catch_up
            if i == 0 and p.gap_from_ms is not None:
                run.gap_from_ms, run.gap_to_ms = p.gap_from_ms, p.gap_to_ms
                log.warning("rule %s: gap of %d ms not searched", rid, p.gap_to_ms - p.gap_from_ms)
            # The schedule advances only with the last window: a crash before it repeats the run.
            out.append(
                Finished(
                    run,
                    started_ms=now_ms if i == len(p.windows) - 1 else None,
                    covered_to_ms=window.end_ms,
                    memory={k: v for k, v in memory.items() if v is not None} if run.error is None else None,
                    alerts=rows,
                )
            )

        if how == "core":
            for i, window in enumerate(plans[rule_id(rules[0])].windows):
                key = self._window_key(rules[0], window.start_ms, window.end_ms)
                shared = self._shared_pass(ctx, how, rules, key, now_ms)
                for rule in rules:
                    # A rule moved in from a narrower window (see _absorb) runs over its own.
                    run(rule, i, plans[rule_id(rule)].windows[i], shared)
            return out
        shared = None
        if how == "replay":
            start = min(w.start_ms for p in plans.values() for w in p.windows)
            shared = self._shared_pass(ctx, how, rules, self._window_key(rules[0], start, now_ms), now_ms)
        for rule in rules:
            for i, window in enumerate(plans[rule_id(rule)].windows):
                run(rule, i, window, shared)
        return out

    def _memory(self, ctx: _Tick, rid: str) -> dict[str, Any]:
        if ctx.memories is None:
            return {kind: self.runs.memory(rid, kind) for kind in MEMORY_KINDS}
        return {kind: ctx.memories.get((rid, kind)) for kind in MEMORY_KINDS}

    def _shared_pass(self, ctx: _Tick, how: str, rules: list[Any], key: tuple, now_ms: int) -> SharedPass:
        """The window ``key`` searched once for ``rules``: by a core pass (``how ==
        "core"``) or a replay feed (``"replay"``). A pass that fails or runs past its time
        budget is left out: its rules then search alone."""
        shared = SharedPass()
        shared.key = key
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        t0 = time.monotonic()
        for r in rules:
            self.running[rule_id(r)] = (now_ms, key[0], key[1])
        deadline = t0 + self.run_timeout_s
        try:
            if how == "core":
                shared.core = self._core_pass(rules, key, now, deadline, ctx=ctx)
                shared.core_rules = {rule_id(r) for r in rules}
            else:
                shared.scheduled, shared.engine = self._scheduled_pass(ctx, rules, key, now, deadline)
                shared.scheduled_rules = {rule_id(r) for r in rules}
        except Exception as exc:  # noqa: BLE001 - every rule then runs alone
            log.warning("shared %s pass over %d rules failed (%s); each runs alone", how, len(rules), exc)
        shared.elapsed_s = time.monotonic() - t0
        return shared

    def _scheduled_pass(
        self, ctx: _Tick, rules: list[Any], key: tuple, now: datetime, deadline: float
    ) -> tuple[dict[str, Any], Any]:
        """What each of the threshold, new terms, indicator match and ES|QL ``rules`` takes
        of the window ``key``, from one replay feed (each event routed to the rules whose
        index, query and exceptions take it); new terms histories brought up to date with
        one feed of the events stored since, for the rules whose histories stand at the
        same place."""
        engine = self.engine_factory(rules, now)
        replay = Replay(rules, engine=engine)
        events = self._window(ctx, key).events
        for k in range(0, len(events), FEED_BATCH):
            # Each batch's queries run as masks over it (Replay.feed_batch): only the rows
            # that pass reach a rule's matcher.
            if time.monotonic() > deadline:
                raise RunTimeout
            replay.feed_batch(events[k : k + FEED_BATCH])
        out: dict[str, Any] = {}
        for rule in rules:
            rid = rule_id(rule)
            if rule.type == "esql":
                kept = replay.esql.kept[rid] if replay.esql else []
                out[rid] = ([ts for ts, _, _ in kept], [event for _, _, event in kept])
            else:
                out[rid] = replay.take(rid)
        terms = [r for r in rules if r.type == "new_terms"]
        if terms:
            histories = {rule_id(r): self._history(r) for r in terms}
            # The window's events were fed above: of those also stored since a history's
            # position, each history takes what its rule kept, and only the others are fed.
            fed = stateful.Fed(events, {rule_id(r): out[rule_id(r)][2] for r in terms})
            stateful.catch_up_together(terms, histories, engine, self._sources(ctx, None), fed)
        return out, engine

    def _history(self, rule: Any) -> Any:
        rid = rule_id(rule)
        if rule.type == "new_terms":
            return self._terms.setdefault(rid, stateful.TermsHistory())
        if rule.type == "threat_match":
            return self._terms.setdefault(rid, stateful.IndicatorHistory(rule))
        return None

    def _sources(self, ctx: _Tick, rule: Any) -> dict[str, stateful.Source]:
        sources: dict[str, stateful.Source] = {"events": lambda seq: self._after(ctx, seq)}
        if rule is not None and self._rule_reads_alerts(rule):
            sources["alerts"] = self._alerts_after
        return sources

    def _window(self, ctx: _Tick, key: tuple) -> WindowEvents:
        """The events of a window, read and decoded once per tick for every rule that searches
        it: cut from the tick's span when it holds the window, else read from the store."""
        with ctx.lock:
            win = ctx.windows.get(key)
            if win is None:
                start_ms, end_ms, window_field, order_field = key
                if ctx.span is not None and ctx.span.covers(start_ms, end_ms, window_field):
                    events = ctx.span.window(
                        start_ms, end_ms, timestamp_field=window_field, order_by=order_field
                    )
                else:
                    alone = [k for k, w in ctx.windows.items() if w.alone]
                    if len(alone) >= WINDOWS_KEPT:
                        ctx.windows.pop(alone[0])
                    events = [
                        _event(idx, doc_id, doc)
                        for idx, doc_id, doc in self.events.search(
                            start_ms, end_ms, timestamp_field=window_field, order_by=order_field
                        )
                    ]
                win = ctx.windows[key] = WindowEvents(events)
                win.alone = ctx.span is None or not ctx.span.covers(start_ms, end_ms, window_field)
            return win

    def _after(self, ctx: _Tick, seq: int) -> tuple[int, list[Event]]:
        """The events stored after position ``seq`` (a page), read once per tick for every
        new terms and indicator match rule at that position (documents already decoded for
        the tick's windows are not decoded again); the alert store's alerts are not among them."""
        with ctx.lock:
            if seq not in ctx.pages:
                if len(ctx.pages) >= WINDOWS_KEPT:
                    ctx.pages.pop(next(iter(ctx.pages)))
                last, rows = self.events.after_rows(seq)
                span = ctx.span
                events = []
                for position, idx, doc_id, body in rows:
                    event = span.item(position) if span is not None else None
                    events.append(event if event is not None else _event(idx, doc_id, orjson.loads(body)))
                ctx.pages[seq] = (last, events)
            return ctx.pages[seq]

    def _alerts_after(self, position: int) -> tuple[int, list[Event]]:
        """The alerts stored after ``position``, as documents of the alerts index."""
        last, alerts = self.alerts.after(position)
        return last, [alert_event(a) for a in alerts]

    def _rule_reads_alerts(self, rule: Any) -> bool:
        rid = rule_id(rule)
        if rid not in self._reads_alerts:
            self._reads_alerts[rid] = reads_alerts(rule)
        return self._reads_alerts[rid]

    def _takes(self, rule: Any, index: str | None) -> bool:
        """Whether ``rule`` reads events of ``index`` (its index patterns; an ES|QL rule's FROM)."""
        key = (rule_id(rule), index)
        taken = self._takes_index.get(key)
        if taken is None:
            if len(self._takes_index) > 500_000:
                self._takes_index.clear()
            if getattr(rule, "type", None) == "esql":
                taken = esql_rule.takes_index(rule.compiled(), index)
            else:
                matches_index = getattr(rule, "matches_index", None)
                taken = matches_index is None or bool(matches_index(index))
            self._takes_index[key] = taken
        return taken

    def _taken(self, rule: Any, win: WindowEvents) -> list[Event]:
        """The window's events of the indices ``rule`` reads, in the window's order."""
        indices = {index for index in win.counts if self._takes(rule, index)}
        if len(indices) == len(win.counts):
            return list(win.events)
        return [e for e in win.events if e.index in indices]

    def _read(self, ctx: _Tick, rule: Any, start_ms: int, end_ms: int) -> list[Event]:
        """The events of ``[start_ms, end_ms]`` a rule's index takes, cut on its
        ``timestamp_override`` (``@timestamp`` as the fallback); the alert store's alerts
        too when the rule reads ``.alerts-security.*``."""
        found = self._taken(rule, self._window(ctx, self._window_key(rule, start_ms, end_ms)))
        if self._rule_reads_alerts(rule):
            # An alert is written after its event arrived: its @timestamp bounds its event times.
            for alert in self.alerts.between(start_ms, 2**62):
                event = alert_event(alert)
                ts = stateful.suppression.event_time(event.doc, rule)
                if ts is not None and start_ms <= ts <= end_ms:
                    found.append(event)
        return found

    def _search(
        self,
        ctx: _Tick,
        rule: Any,
        start_ms: int,
        end_ms: int,
        now_ms: int,
        memory: dict[str, Any] | None = None,
        shared: SharedPass | None = None,
    ) -> tuple[Run, list[tuple] | None]:
        """One run of ``rule`` over a window: the run and the rows of its alerts to store
        with it (None when they are stored already: suppression updates stored alerts)."""
        t0 = time.monotonic()
        rid = rule_id(rule)
        run = Run(rid, now_ms, 0, start_ms, end_ms)
        self.running[rid] = (now_ms, start_ms, end_ms)
        rows: list[tuple] | None = None
        found: list[Event] | None = None
        together: list[dict] | None = None
        taken: Any = None
        try:
            win = self._window(ctx, self._window_key(rule, start_ms, end_ms))
            together = shared.alerts(rule) if shared is not None else None
            taken = shared.taken(rule) if shared is not None else None
            if together and shared.key != self._window_key(rule, start_ms, end_ms):
                # The pass searched a wider window: the alerts of this rule's window.
                inside = win.positions()
                together = [
                    a for a in together if (keys := _source_keys(a)) and all(k in inside for k in keys)
                ]
            if together is not None or taken is not None:
                run.events_searched = sum(n for index, n in win.counts.items() if self._takes(rule, index))
            else:
                found = self._read(ctx, rule, start_ms, end_ms)
                run.events_searched = len(found)
            memory = {} if memory is None else memory
            now = datetime.fromtimestamp(now_ms / 1000, UTC)
            deadline = t0 + self.run_timeout_s
            alerts: list[dict] = []
            try:
                if getattr(rule, "type", None) in stateful.SERVED:
                    engine = shared.engine if taken is not None else self.engine_factory([rule], now)
                    alerts += stateful.scheduled_alerts(
                        rule,
                        engine,
                        found,
                        self._history(rule),
                        self._sources(ctx, rule),
                        memory,
                        from_ms=start_ms,
                        to_ms=end_ms,
                        taken=taken,
                    )
                elif together is not None:
                    alerts += together
                else:
                    failed = self._evaluate(rule, now, found, deadline, alerts)
                    run.events_failed = len(failed)
            except RunTimeout:
                run.error = f"timed out after {self.run_timeout_s:g} s; the alerts found so far are kept"
                log.warning("rule %s: run %s", rid, run.error)
            if not alerts:
                found_signals = []
            elif found is None:
                found_signals = signals(alerts, win.positions())
            else:
                found_signals = signals(alerts, {(e.index or "", e.id): i for i, e in enumerate(found)})
            run.matches = len(found_signals)
            max_signals = int(getattr(rule, "max_signals", 100) or 100)
            run.capped = run.matches >= max_signals
            spec = suppression_of(rule) if getattr(rule, "raw", None) else None
            if spec is not None:
                run.alerts_written, run.alerts_suppressed = stateful.write_suppressed(
                    rule,
                    spec,
                    [alert for signal in found_signals for alert in signal],
                    win.by_key() if found is None else found,
                    self.alerts,
                    memory,
                    now=now,
                    now_ms=now_ms,
                    from_ms=start_ms,
                    to_ms=end_ms,
                )
            else:
                rows = alert_rows(alert for signal in found_signals[:max_signals] for alert in signal)
        except Exception as exc:  # a broken rule must not stop the others
            run.error = f"{type(exc).__name__}: {str(exc)[:500]}"
            log.error("rule %s failed: %s\n%s", rid, exc, traceback.format_exc())
            rows = None
        finally:
            self.running.pop(rid, None)
        elapsed = time.monotonic() - t0
        if shared is not None and (together is not None or taken is not None):
            elapsed += shared.elapsed_s  # the rule's run waited for the pass
        run.duration_ms = int(elapsed * 1000)
        return run, rows

    def _core_pass(
        self, rules: list[Any], key: tuple, now: datetime, deadline: float, ctx: _Tick | None = None
    ) -> dict[str, list[dict]]:
        """The alerts of ``rules`` over the window ``key``, by rule: one pass of the engine
        core, each rule reading the window's events of its own indices."""
        from vigil.engine.core import scan_items

        engine = self.engine_factory(rules, now)
        events = self._window(ctx or _Tick(0, None, None), key).events
        seen = [0]
        out: dict[str, list[dict]] = {}
        # With ``rescan`` (the window, in memory), sequences and samples are streamed while
        # their events come in order, as a scan streams them, rather than each kept event
        # written out and read back for one run at the end; a rule that sees an event out of
        # order runs again over the window, as Engine.batch says.
        items = ((e, None) for e in _budgeted(events, deadline, seen))
        for alert in scan_items(engine, items, rescan=lambda: events):
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
