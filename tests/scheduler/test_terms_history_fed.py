"""New terms histories in ``vigil serve``'s shared replay (vigil.scheduler.stateful.Fed): the
events the window's replay was fed already are not fed again to bring a history up to date,
their kept terms are taken as they are. The histories, runs and alerts must equal those of
feeding every event stored since again, over events stored before the window, inside it,
and after a history's position only."""

from __future__ import annotations

import copy
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vigil.scheduler import stateful
from vigil.scheduler.clock import ManualClock
from vigil.scheduler.runner import Scheduler
from vigil.store.alerts import AlertStore
from vigil.store.events import EventStore, Write
from vigil.store.runs import RunStore

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
gen_events = pytest.importorskip("gen_events")
bench = pytest.importorskip("serve_tick_bench")

T = bench.NOW
M = 60_000


@pytest.fixture(scope="module")
def terms_rules(prebuilt_rules):
    return [r for r in prebuilt_rules if r.runnable and r.type == "new_terms"]


def _serve(tmp_path, name, rules, reuse: bool, monkeypatch):
    if not reuse:
        # Every event stored since a history's position is fed again (no reuse).
        monkeypatch.setattr(stateful.Fed, "take", lambda self, rules, events, histories: events)
    db = tmp_path / f"{name}.db"
    clock = ManualClock(T)
    s = Scheduler([copy.copy(r) for r in rules], EventStore(db), AlertStore(db), RunStore(db), clock=clock)
    s.scheduled_shared_min = 2
    # Stored 30 minutes before the first tick (in the histories, not in the windows), just
    # before it, and between the ticks (the second tick's window holds both of the last two).
    batches = [(T - 30 * M, 7), (T - M, 8), (T + 4 * M, 9)]
    ticks = {1: T, 2: T + 5 * M}
    out = []
    for n, (at, seed) in enumerate(batches):
        start = datetime.fromtimestamp((at - 20_000) / 1000, UTC)
        events = list(gen_events.generate(400, seed=seed, start=start, mix="default"))
        s.events.write([Write(bench._index(e), e, id=f"e-{n}-{k}") for k, e in enumerate(events)], at)
        if n in ticks:
            clock.now = ticks[n]
            runs = s.tick()
            out.append(
                (
                    sorted(
                        (r.rule_id, r.events_searched, r.matches, r.alerts_written, r.error) for r in runs
                    ),
                    {rid: copy.deepcopy(h.index.times) for rid, h in s._terms.items()},
                )
            )
    alerts = sorted(
        (a["kibana.alert.rule.rule_id"], a["kibana.alert.uuid"]) for a in s.alerts.between(0, 2**62)
    )
    s.close()
    monkeypatch.undo()
    return out, alerts


def test_histories_taking_the_replays_kept_terms_equal_feeding_again(tmp_path, terms_rules, monkeypatch):
    again, again_alerts = _serve(tmp_path, "again", terms_rules, False, monkeypatch)
    fed, fed_alerts = _serve(tmp_path, "fed", terms_rules, True, monkeypatch)
    assert len(terms_rules) > 100
    assert len(again) == 2

    def held(histories):
        return sum(len(times) for h in histories.values() for times in h.values())

    # The histories hold terms, and the second tick's more than the first's.
    assert 10 < held(again[0][1]) < held(again[1][1])
    for (runs_a, hist_a), (runs_f, hist_f) in zip(again, fed, strict=True):
        assert hist_f == hist_a
        assert runs_f == runs_a
    assert fed_alerts == again_alerts
