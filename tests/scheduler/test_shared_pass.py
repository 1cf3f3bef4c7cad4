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
