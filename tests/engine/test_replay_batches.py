"""A scan's replayed schedule (``replay_paths``: events in batches, rules' queries as
masks over each batch, kept events waiting on disk) gives the alerts of the plain replay
(``replay``: event by event, in memory), with every scheduled prebuilt rule; and the
spill file gives back what was parked."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vigil.engine import Engine
from vigil.engine import replay as replay_module
from vigil.engine.replay import replay, replay_paths
from vigil.engine.spill import Spill
from vigil.events.model import Event
from vigil.events.readers import ReadStats, read_inputs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
gen_events = pytest.importorskip("gen_events")


@pytest.mark.parametrize("in_memory", [0, 500])
@pytest.mark.parametrize("mix", ["default", "linux"])
def test_batched_spilled_replay_gives_the_plain_replays_alerts(
    prebuilt_rules, tmp_path, monkeypatch, mix, in_memory
):
    monkeypatch.setattr(replay_module, "IN_MEMORY", in_memory)  # all, or most, kept events on disk
    path = tmp_path / "events.ndjson"
    gen_events.write(str(path), 4000, mix=mix)
    engine = Engine(prebuilt_rules, now=datetime(2026, 12, 1, tzinfo=UTC))
    assert len(engine.scheduled) > 400
    plain = [
        a["kibana.alert.uuid"] for a in replay(engine.scheduled, read_inputs([str(path)]), engine=engine)
    ]
    fast = [a["kibana.alert.uuid"] for a in replay_paths(engine, [str(path)], stats=ReadStats())]
    assert plain, "the generated events raise scheduled alerts"
    assert fast == plain


def test_spill_round_trip_and_windows():
    spill = Spill()
    events = [Event({"n": n, "s": "é\u2028"}, "logs-x", f"id{n}", f"f:{n}") for n in range(50)]
    handles = [spill.park(e) for e in events]
    assert spill.park(events[3]) == handles[3]  # parked once
    odd = Event({"big": 1 << 70}, None)  # orjson cannot write it: kept as it is
    assert spill.park(odd) is odd
    budgeted = Spill(budget=2)
    first, second, third = (budgeted.park(e) for e in events[:3])
    assert first is events[0] and second is events[1] and isinstance(third, tuple)
    assert budgeted.event(third) == events[2]
    assert [spill.event(h) for h in handles] == events
    last: dict = {}
    first = spill.window(handles[:30], last)
    second = spill.window(handles[20:], last)
    assert first == events[:30] and second == events[20:]
    assert all(a is b for a, b in zip(first[20:], second[:10], strict=True))  # not read again
    spill.close()
