"""The scheduler in-process with a manual clock, real rules and the real engine."""

from __future__ import annotations

from vigil.rules.model import rule_from_dict
from vigil.scheduler.clock import ManualClock
from vigil.scheduler.runner import Scheduler, default_engine_factory
from vigil.store.alerts import AlertStore, to_millis
from vigil.store.events import EventStore, Write, iso_millis
from vigil.store.runs import RunStore

T = 1_780_000_000_000
M = 60_000


def rule(rid: str, query: str = 'any where event.action == "x"', **fields):
    data = {
        "rule_id": rid,
        "name": rid.upper(),
        "type": "eql",
        "language": "eql",
        "index": ["logs-*"],
        "query": query,
        "timestamp_override": "event.ingested",
    }
    data.update({k.rstrip("_"): v for k, v in fields.items()})
    return rule_from_dict(data)


def make(tmp_path, rules, clock, **kw):
    db = tmp_path / "v.db"
    return Scheduler(rules, EventStore(db), AlertStore(db), RunStore(db), clock=clock, **kw)


def ev(action: str, ts_ms: int, host: str = "h1", **extra) -> dict:
    return {"@timestamp": iso_millis(ts_ms), "event": {"action": action}, "host": {"name": host}, **extra}


def test_bad_schedule_is_recorded_once_and_others_run(tmp_path):
    clock = ManualClock(T)
    good = rule("good")
    bad = rule("bad", interval="every so often")
    s = make(tmp_path, [bad, good], clock)
    s.events.write([Write("logs-a", ev("x", T))], T)
    runs = s.tick()
    assert [(r.rule_id, r.error is not None) for r in runs] == [("bad", True), ("good", False)]
    assert "every so often" in runs[0].error
    assert runs[1].alerts_written == 1
    clock.now = T + 5 * M
    assert [r.rule_id for r in s.tick()] == ["good"]


def test_engine_failure_is_a_recorded_run(tmp_path):
    class Broken:
        def __init__(self, rules, now):
            pass

        def scan(self, events):
            raise RuntimeError("boom")

    clock = ManualClock(T)
    s = make(tmp_path, [rule("r")], clock, engine_factory=Broken)
    (run,) = s.tick()
    assert run.error == "RuntimeError: boom"
    assert s.runs.runs()[0]["error"] == "RuntimeError: boom"
    assert s.runs.totals()["failed_runs"] == 1


def test_not_runnable_or_disabled_rules_never_run(tmp_path):
    clock = ManualClock(T)
    off = rule("off", enabled=False)
    lucene = rule("lucene", type="query", language="lucene", query="event.action:x")
    kql_text = rule("kql-text", type="query", language="kuery", query="x")  # a value with no field
    broken = rule("broken", query="any where (")
    s = make(tmp_path, [off, lucene, kql_text, broken], clock)
    assert s.tick() == []
    s.set_enabled("off", True)
    assert [r.rule_id for r in s.tick()] == ["off"]


def test_from_shorter_than_interval_adds_a_catch_up_not_a_gap(tmp_path):
    # Kibana's getRuleRangeTuples: gap = (startedAt - previousStartedAt) - (to - from) = 3m,
    # one catch-up window (the current one moved back an interval), remaining gap 0.
    clock = ManualClock(T)
    s = make(tmp_path, [rule("r", interval="5m", from_="now-2m")], clock)
    (first,) = s.tick()
    assert (first.window_from_ms, first.window_to_ms, first.gap_from_ms) == (T - 2 * M, T, None)
    clock.now = T + 5 * M
    catch_up, current = s.tick()
    assert (catch_up.window_from_ms, catch_up.window_to_ms, catch_up.catch_up) == (T - 2 * M, T, True)
    assert (current.window_from_ms, current.window_to_ms, current.gap_from_ms) == (T + 3 * M, T + 5 * M, None)


def test_alerts_are_kibana_shaped_and_stamped_with_the_run_time(tmp_path):
    clock = ManualClock(T)
    s = make(tmp_path, [rule("r", severity="high", risk_score=73)], clock)
    s.events.write([Write("logs-a", ev("x", T - 1000), "doc-1")], T - 500)
    (run,) = s.tick()
    (alert,) = s.alerts.list()
    assert to_millis(alert["@timestamp"]) == T  # the run's "now", from the scheduler's clock
    assert alert["kibana.alert.original_time"] == iso_millis(T - 1000)
    assert alert["kibana.alert.rule.rule_id"] == "r" and alert["kibana.alert.severity"] == "high"
    assert alert["kibana.alert.ancestors"][0] == {
        "id": "doc-1",
        "type": "event",
        "index": "logs-a",
        "depth": 0,
    }
    assert alert["event"]["kind"] == "signal" and alert["host"]["name"] == "h1"


def test_cap_counts_sequences_not_alert_documents(tmp_path):
    # Kibana sends the EQL search with size = max_signals: for a sequence rule that is
    # max_signals sequences, each written as a shell plus one building block per event.
    seq = rule(
        "seq",
        query='sequence by host.name [any where event.action == "a"] [any where event.action == "b"]',
        max_signals=2,
    )
    clock = ManualClock(T)
    s = make(tmp_path, [seq], clock)
    docs = []
    for h in range(3):  # host h2 first in time, then h1, then h0
        base = T - 60_000 + (2 - h) * 1000
        docs += [ev("a", base, f"h{h}"), ev("b", base + 100, f"h{h}")]
    s.events.write([Write("logs-a", d) for d in docs], T - 1000)
    (run,) = s.tick()
    assert run.matches == 3 and run.capped is True
    assert run.alerts_written == 2 * 3  # two sequences kept: shell + 2 building blocks each
    kept_hosts = {a["host"]["name"] for a in s.alerts.list() if "host" in a}
    assert kept_hosts == {"h2", "h1"}  # the earliest two by @timestamp


def test_exceptions_suppress_through_the_scheduler(tmp_path):
    lists = tmp_path / "exceptions.ndjson"
    lists.write_text(
        '{"list_id":"quiet","namespace_type":"single","type":"detection","name":"Q"}\n'
        '{"list_id":"quiet","item_id":"i1","namespace_type":"single","type":"simple","name":"h9",'
        '"entries":[{"field":"host.name","operator":"included","type":"match","value":"h9"}]}\n'
    )
    from vigil.rules.exceptions import load_exceptions

    exceptions = load_exceptions(lists)
    clock = ManualClock(T)
    s = make(
        tmp_path,
        [rule("r")],
        clock,
        engine_factory=default_engine_factory(exceptions, exceptions_all=True),
    )
    s.events.write([Write("logs-a", ev("x", T, "h9")), Write("logs-a", ev("x", T, "h1"))], T)
    (run,) = s.tick()
    assert run.matches == 1 and [a["host"]["name"] for a in s.alerts.list()] == ["h1"]


class CountingEventStore(EventStore):
    """The real store, counting how many times events are read (a window, or the span of
    a tick's windows)."""

    searches = 0

    def search(self, *args, **kwargs):
        CountingEventStore.searches += 1
        return super().search(*args, **kwargs)

    def span(self, *args, **kwargs):
        CountingEventStore.searches += 1
        return super().span(*args, **kwargs)


def test_rules_of_one_schedule_read_their_window_once_and_still_see_only_their_indices(tmp_path):
    clock = ManualClock(T)
    db = tmp_path / "v.db"
    rules = [rule(f"r{i}", index=["logs-a*"] if i % 2 else ["logs-b*"]) for i in range(6)]
    s = Scheduler(rules, CountingEventStore(db), AlertStore(db), RunStore(db), clock=clock)
    s.events.write([Write("logs-a", ev("x", T)), Write("logs-b", ev("x", T))], T)
    CountingEventStore.searches = 0
    runs = s.tick()
    assert CountingEventStore.searches == 1
    assert [r.events_searched for r in runs] == [1] * 6
    assert [r.alerts_written for r in runs] == [1] * 6
    # Outside a tick nothing is cached: an event written since is seen by a direct run.
    s.events.write([Write("logs-a", ev("x", T + 1))], T + 1)
    clock.now = T + 5 * M
    (run,) = s.run_rule(rules[1], T + 5 * M)
    assert run.events_searched == 2


class PickyRunStore(RunStore):
    """The real run store, refusing the runs of rule "bad" unless they are failed runs."""

    def finish_many(self, records):
        if any(f.run.rule_id == "bad" and f.run.error is None for f in records):
            raise OSError("disk says no")
        return super().finish_many(records)


def test_runs_that_cannot_be_recorded_fail_alone_and_the_tick_records_the_others(tmp_path):
    clock = ManualClock(T)
    db = tmp_path / "v.db"
    s = Scheduler([rule("good"), rule("bad")], EventStore(db), AlertStore(db), PickyRunStore(db), clock=clock)
    s.events.write([Write("logs-a", ev("x", T))], T)
    runs = {r.rule_id: r for r in s.tick()}
    assert runs["good"].error is None and runs["good"].alerts_written == 1
    assert "disk says no" in runs["bad"].error
    recorded = {r["rule_id"]: r for r in s.runs.runs()}
    assert recorded["good"]["alerts_written"] == 1 and "disk says no" in recorded["bad"]["error"]
    assert [a["kibana.alert.rule.rule_id"] for a in s.alerts.list()] == ["good"]


def test_signals_rank_by_their_earliest_event_in_the_window():
    # A capped run keeps the first max_signals signals in the window's order (Kibana's
    # searches sort by time, ascending), whatever order the engine gave them in.
    from datetime import UTC, datetime

    from vigil.engine import Engine
    from vigil.events.model import Event
    from vigil.scheduler.runner import signals

    events = [Event(ev("x", T + i * 1000, f"h{i}"), "logs-a", f"id{i}", f"logs-a/id{i}") for i in range(3)]
    engine = Engine([rule("r")], now=datetime.fromtimestamp(T / 1000 + 60, UTC))
    alerts = [a for e in reversed(events) for a in engine.scan([e])]
    assert [a["host"]["name"] for a in alerts] == ["h2", "h1", "h0"]
    order = {("logs-a", e.id): i for i, e in enumerate(events)}
    ranked = signals(alerts, order)
    assert [[a["host"]["name"] for a in s] for s in ranked] == [["h0"], ["h1"], ["h2"]]
