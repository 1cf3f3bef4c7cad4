"""The scheduler in-process with a manual clock and the stand-in engine used by the server tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "server"))

from standin_engine import Engine, Rule  # noqa: E402

from vigil.scheduler.clock import ManualClock  # noqa: E402
from vigil.scheduler.runner import Scheduler  # noqa: E402
from vigil.store.alerts import AlertStore  # noqa: E402
from vigil.store.events import EventStore, Write  # noqa: E402
from vigil.store.runs import RunStore  # noqa: E402

T = 1_780_000_000_000
M = 60_000


def make(tmp_path, rules, clock):
    db = tmp_path / "v.db"
    return Scheduler(rules, EventStore(db), AlertStore(db), RunStore(db), engine_factory=Engine, clock=clock)


def test_bad_schedule_is_recorded_once_and_others_run(tmp_path):
    clock = ManualClock(T)
    good = Rule("good", "G", "x")
    bad = Rule("bad", "B", "x", interval="every so often")
    s = make(tmp_path, [bad, good], clock)
    s.events.write([Write("logs-a", {"event": {"action": "x"}})], T)
    runs = s.tick()
    assert [(r.rule_id, r.error is not None) for r in runs] == [("bad", True), ("good", False)]
    assert "every so often" in runs[0].error
    clock.now = T + 5 * M
    assert [r.rule_id for r in s.tick()] == ["good"]


def test_engine_failure_is_a_recorded_run(tmp_path):
    class Broken(Engine):
        def scan(self, events):
            raise RuntimeError("boom")

    clock = ManualClock(T)
    s = make(tmp_path, [Rule("r", "R", "x")], clock)
    s.engine_factory = Broken
    (run,) = s.tick()
    assert run.error == "RuntimeError: boom"
    assert s.runs.runs()[0]["error"] == "RuntimeError: boom"
    assert s.runs.totals()["failed_runs"] == 1


def test_not_runnable_or_disabled_rules_never_run(tmp_path):
    clock = ManualClock(T)
    off = Rule("off", "O", "x", enabled=False)
    ml = Rule("ml", "M", "x", runnable=False)
    s = make(tmp_path, [off, ml], clock)
    assert s.tick() == []
    s.set_enabled("off", True)
    assert [r.rule_id for r in s.tick()] == ["off"]


def test_from_shorter_than_interval_adds_a_catch_up_not_a_gap(tmp_path):
    # Kibana's getRuleRangeTuples: gap = (startedAt - previousStartedAt) - (to - from) = 3m,
    # one catch-up window (the current one moved back an interval), remaining gap 0.
    clock = ManualClock(T)
    s = make(tmp_path, [Rule("r", "R", "x", interval="5m", from_="now-2m")], clock)
    (first,) = s.tick()
    assert (first.window_from_ms, first.window_to_ms, first.gap_from_ms) == (T - 2 * M, T, None)
    clock.now = T + 5 * M
    catch_up, current = s.tick()
    assert (catch_up.window_from_ms, catch_up.window_to_ms, catch_up.catch_up) == (T - 2 * M, T, True)
    assert (current.window_from_ms, current.window_to_ms, current.gap_from_ms) == (T + 3 * M, T + 5 * M, None)
