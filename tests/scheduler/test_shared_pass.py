"""Rules due together over one window run as one pass of the engine core in ``vigil serve``
(vigil.scheduler.runner.SharedPass): the same runs and alerts as each rule searching alone,
with Elastic's prebuilt rules over generated endpoint events."""

from __future__ import annotations

import copy
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vigil.rules.model import SCHEDULED_TYPES
from vigil.scheduler.clock import ManualClock
from vigil.scheduler.runner import Scheduler
from vigil.store.alerts import AlertStore
from vigil.store.events import EventStore, Write
from vigil.store.runs import RunStore

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
gen_events = pytest.importorskip("gen_events")

T = 1_780_000_000_000
M = 60_000


def _index(doc: dict) -> str:
    ds = doc.get("data_stream") or {}
    return f"{ds.get('type', 'logs')}-{ds.get('dataset', 'generic')}-{ds.get('namespace', 'default')}"


@pytest.fixture(scope="module")
def endpoint_rules(prebuilt_rules):
    """The runnable prebuilt event, sequence and sample rules that read endpoint events."""
    return [
        r
        for r in prebuilt_rules
        if r.runnable
        and r.type not in SCHEDULED_TYPES
        and any(p.startswith("logs-endpoint.events") for p in r.index or ())
    ]


def _run(tmp_path, name, rules, events, shared_min):
    db = tmp_path / f"{name}.db"
    s = Scheduler(
        [copy.copy(r) for r in rules], EventStore(db), AlertStore(db), RunStore(db), clock=ManualClock(T + M)
    )
    s.shared_min = shared_min
    s.events.write([Write(_index(e), e, id=f"event-{n}") for n, e in enumerate(events)], T)
    runs = s.tick()
    alerts = sorted(
        (a["kibana.alert.rule.rule_id"], a["kibana.alert.uuid"]) for a in s.alerts.between(0, 2**62)
    )
    return {r.rule_id: (r.events_searched, r.matches, r.alerts_written, r.error) for r in runs}, alerts


@pytest.mark.parametrize("mix", ["linux", "default"])
def test_one_core_pass_gives_each_rule_its_own_runs_and_alerts(tmp_path, endpoint_rules, mix, monkeypatch):
    start = datetime.fromtimestamp((T - 30_000) / 1000, UTC)
    events = list(gen_events.generate(700, seed=11, start=start, mix=mix))
    passes = []
    real = Scheduler._core_pass

    def counted(self, rules, *a, **kw):
        passes.append(len(rules))
        return real(self, rules, *a, **kw)

    monkeypatch.setattr(Scheduler, "_core_pass", counted)
    alone_runs, alone = _run(tmp_path, "alone", endpoint_rules, events, shared_min=10**9)
    assert passes == []
    shared_runs, shared = _run(tmp_path, "shared", endpoint_rules, events, shared_min=2)
    # Nearly every rule searched in a pass (a rule whose window no other rule shares searches alone).
    assert len(endpoint_rules) >= sum(passes) > 0.9 * len(endpoint_rules)
    assert len(endpoint_rules) > 300 and len(alone) > 20  # the rules and events meet
    assert shared == alone
    assert shared_runs == alone_runs
    assert not any(err for *_, err in shared_runs.values())


def test_a_failed_pass_lets_each_rule_search_alone(tmp_path, endpoint_rules, monkeypatch):
    start = datetime.fromtimestamp((T - 30_000) / 1000, UTC)
    events = list(gen_events.generate(600, seed=3, start=start, mix="linux"))
    _, alone = _run(tmp_path, "alone", endpoint_rules[:80], events, shared_min=10**9)

    def broken(self, *a, **kw):
        raise RuntimeError("no core today")

    monkeypatch.setattr(Scheduler, "_core_pass", broken)
    runs, shared = _run(tmp_path, "shared", endpoint_rules[:80], events, shared_min=2)
    assert shared == alone and len(runs) == 80


@pytest.fixture(scope="module")
def scheduled_rules(prebuilt_rules):
    """The runnable prebuilt threshold, new terms, indicator match and ES|QL rules."""
    return [
        r
        for r in prebuilt_rules
        if r.runnable and r.type in ("threshold", "new_terms", "esql", "threat_match")
    ]


def _ticks(tmp_path, name, rules, batches, scheduled_shared_min):
    """Ticks over a store file, events written before each: every run's counts and errors,
    and the alerts stored."""
    db = tmp_path / f"{name}.db"
    clock = ManualClock(T + M)
    s = Scheduler([copy.copy(r) for r in rules], EventStore(db), AlertStore(db), RunStore(db), clock=clock)
    s.scheduled_shared_min = scheduled_shared_min
    runs = []
    for n, (now, events) in enumerate(batches):
        clock.now = now
        s.events.write([Write(_index(e), e, id=f"event-{n}-{k}") for k, e in enumerate(events)], now - 1000)
        runs += [
            (r.rule_id, r.window_from_ms, r.catch_up, r.events_searched, r.matches, r.alerts_written, r.error)
            for r in s.tick()
        ]
    alerts = sorted(
        (a["kibana.alert.rule.rule_id"], a["kibana.alert.uuid"]) for a in s.alerts.between(0, 2**62)
    )
    s.close()
    return sorted(runs, key=lambda r: (r[0], r[1])), alerts


def test_one_replay_feed_gives_each_scheduled_rule_its_own_runs_and_alerts(tmp_path, scheduled_rules):
    # A first tick, an on-time one, and one after a stop (catch-up windows, a gap): the
    # rules fed together must run exactly as each alone.
    batches = []
    for n, now in enumerate((T + M, T + 6 * M, T + 40 * M)):
        start = datetime.fromtimestamp((now - 60_000) / 1000, UTC)
        batches.append((now, list(gen_events.generate(300, seed=20 + n, start=start, mix="default"))))
    alone_runs, alone = _ticks(tmp_path, "alone", scheduled_rules, batches, 10**9)
    fed_runs, fed = _ticks(tmp_path, "fed", scheduled_rules, batches, 2)
    assert len(scheduled_rules) > 400 and len(alone) > 5
    assert any(r[2] for r in alone_runs)  # catch-up windows were searched
    assert fed == alone
    assert fed_runs == alone_runs
    assert not any(r[-1] for r in fed_runs)


def test_a_failed_replay_feed_lets_each_scheduled_rule_run_alone(tmp_path, scheduled_rules, monkeypatch):
    start = datetime.fromtimestamp((T - 30_000) / 1000, UTC)
    batches = [(T + M, list(gen_events.generate(300, seed=4, start=start, mix="default")))]
    rules = scheduled_rules[::4]
    alone_runs, alone = _ticks(tmp_path, "alone", rules, batches, 10**9)

    def broken(self, *a, **kw):
        raise RuntimeError("no replay today")

    monkeypatch.setattr(Scheduler, "_scheduled_pass", broken)
    runs, fed = _ticks(tmp_path, "fed", rules, batches, 2)
    assert fed == alone and runs == alone_runs and len(runs) == len(rules)


def test_rules_of_a_narrower_window_searched_in_the_wider_pass_keep_to_their_window(tmp_path, endpoint_rules):
    # Events that arrived 8 and 1 minutes before the tick: the now-9m rules' window holds
    # both, the now-6m rules' only the later ones, though one pass searches all of them.
    rules = [copy.copy(r) for r in endpoint_rules]
    for r in rules[::3]:
        r.from_ = "now-6m"

    def run(name, shared_min):
        db = tmp_path / f"{name}.db"
        now = T + 10 * M
        s = Scheduler(
            [copy.copy(r) for r in rules],
            EventStore(db),
            AlertStore(db),
            RunStore(db),
            clock=ManualClock(now),
        )
        s.shared_min = shared_min
        for n, ago in enumerate((8 * M, 1 * M)):
            start = datetime.fromtimestamp((now - ago - 30_000) / 1000, UTC)
            events = list(gen_events.generate(400, seed=30 + n, start=start, mix="linux"))
            s.events.write(
                [Write(_index(e), e, id=f"event-{n}-{k}") for k, e in enumerate(events)], now - ago
            )
        runs = {
            r.rule_id: (r.window_from_ms, r.events_searched, r.matches, r.alerts_written, r.error)
            for r in s.tick()
        }
        alerts = sorted(
            (a["kibana.alert.rule.rule_id"], a["kibana.alert.uuid"]) for a in s.alerts.between(0, 2**62)
        )
        return runs, alerts

    alone_runs, alone = run("alone", 10**9)
    shared_runs, shared = run("shared", 2)
    narrow = {r.rule_id for r in rules[::3]}
    assert sum(alone_runs[rid][3] for rid in narrow) > 5  # the narrower rules alert
    # and see only the later events, the now-9m rules both batches
    assert max(alone_runs[rid][1] for rid in narrow) <= 400 < max(run[1] for run in alone_runs.values())
    assert shared == alone
    assert shared_runs == alone_runs
