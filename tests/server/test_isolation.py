"""Rule runs are isolated: an event whose evaluation fails, a failing rule or a slow rule
costs itself, and the other events and rules of the run still alert."""

from __future__ import annotations

import time

from vigil.rules.model import rule_from_dict
from vigil.scheduler.clock import ManualClock
from vigil.scheduler.runner import Scheduler, default_engine_factory
from vigil.store.alerts import AlertStore
from vigil.store.events import EventStore, Write, iso_millis
from vigil.store.runs import RunStore

T = 1_780_000_000_000


def rule(rid: str, action: str = "x"):
    return rule_from_dict(
        {
            "rule_id": rid,
            "name": rid.upper(),
            "type": "eql",
            "language": "eql",
            "index": ["logs-*"],
            "query": f'any where event.action == "{action}"',
            "timestamp_override": "event.ingested",
        }
    )


def event(action: str, n: int, **extra) -> dict:
    return {"@timestamp": iso_millis(T - 1000), "event": {"action": action}, "n": n, **extra}


class Trap:
    """The real engine, except that evaluating an event marked ``trap`` raises, as an
    unexpected value in some code path would, and one rule may be slow on every event."""

    def __init__(self, slow_rule: str | None = None, delay: float = 0.0) -> None:
        self.real = default_engine_factory()
        self.slow_rule, self.delay = slow_rule, delay

    def __call__(self, rules, now):
        engine = self.real(rules, now)
        slow = self.delay if rules[0].rule_id == self.slow_rule else 0.0

        class Engine:
            def scan(self, events):
                def checked():
                    for e in events:
                        if e.doc.get("trap"):
                            raise ValueError("year 0 is out of range")
                        time.sleep(slow)
                        yield e

                return engine.scan(checked())

        return Engine()


def make(tmp_path, rules, factory, **kw) -> Scheduler:
    db = tmp_path / "v.db"
    return Scheduler(
        rules,
        EventStore(db),
        AlertStore(db),
        RunStore(db),
        clock=ManualClock(T),
        engine_factory=factory,
        **kw,
    )


def test_an_event_that_fails_evaluation_is_set_aside_and_the_others_alert(tmp_path):
    s = make(tmp_path, [rule("a"), rule("b", "y")], Trap())
    docs = [event("x", 0), event("x", 1, trap=True), event("x", 2), event("y", 3, trap=True), event("y", 4)]
    s.events.write([Write("logs-a", d) for d in docs], T)
    runs = {r.rule_id: r for r in s.tick()}
    assert runs["a"].error is None and runs["a"].events_failed == 2 and runs["a"].alerts_written == 2
    assert runs["b"].error is None and runs["b"].events_failed == 2 and runs["b"].alerts_written == 1
    assert s.runs.totals()["events_failed"] == 4 and s.runs.totals()["failed_runs"] == 0
    assert sorted(a["n"] for a in s.alerts.list()) == [0, 2, 4]


def test_a_rule_broken_on_its_own_fails_its_run_only(tmp_path):
    class Broken:
        def __init__(self, rules, now):
            self.rid = rules[0].rule_id
            self.real = default_engine_factory()(rules, now)

        def scan(self, events):
            if self.rid == "broken":
                raise RuntimeError("boom")
            return self.real.scan(events)

    s = make(tmp_path, [rule("broken"), rule("fine")], Broken)
    s.events.write([Write("logs-a", event("x", 0))], T)
    runs = {r.rule_id: r for r in s.tick()}
    assert runs["broken"].error == "RuntimeError: boom" and runs["broken"].events_failed == 0
    assert runs["fine"].alerts_written == 1


def test_a_slow_rule_neither_delays_the_others_nor_runs_past_its_timeout(tmp_path):
    s = make(tmp_path, [rule("slow"), rule("quick")], Trap("slow", 0.2), run_timeout_s=1.0)
    s.events.write([Write("logs-a", event("x", n)) for n in range(50)], T)  # 10 s for the slow rule
    t0 = time.monotonic()
    first = s.tick(wait_s=0.5)
    assert [r.rule_id for r in first] == ["quick"] and first[0].alerts_written == 50
    assert time.monotonic() - t0 < 2
    assert s.tick(wait_s=0) == []  # the slow rule is still running: not started twice
    deadline = time.monotonic() + 10
    while not [r for r in s.runs.runs() if r["rule_id"] == "slow"]:
        assert time.monotonic() < deadline, "the slow run never ended"
        time.sleep(0.05)
    (slow,) = [r for r in s.runs.runs() if r["rule_id"] == "slow"]
    assert "timed out" in slow["error"] and slow["duration_ms"] < 3000
    assert 0 < slow["alerts_written"] < 50  # what it found before the cut is kept
    s.close()
