"""The engine core over live micro-batches (vigil.engine.core.LiveCore, as ``vigil watch``
runs it): the alerts of the per-event engine, each with the batch of its event, whatever
the batch sizes, with Elastic's Linux endpoint rules over generated Linux events."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vigil.engine import Engine
from vigil.engine.core import LiveCore
from vigil.events.model import Event

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
gen_events = pytest.importorskip("gen_events")


def _index(doc: dict) -> str:
    ds = doc["data_stream"]
    return f"{ds['type']}-{ds['dataset']}-{ds['namespace']}"


@pytest.fixture(scope="module")
def linux_rules(prebuilt_rules):
    return [
        r
        for r in prebuilt_rules
        if r.runnable
        and r.query_language in ("eql", "kuery")
        and r.type in ("eql", "query")
        and any(p.startswith("logs-endpoint.events") for p in r.index or ())
    ]


@pytest.fixture(scope="module")
def events():
    return [
        (doc, _index(doc), f"e{n}") for n, doc in enumerate(gen_events.generate(1500, seed=21, mix="linux"))
    ]


def _fresh(events):
    return [Event(doc, index=index, id=eid) for doc, index, eid in events]


@pytest.fixture(scope="module")
def per_event(linux_rules, events):
    """The per-event engine's alerts: by event, and those only the end gives."""
    plain = Engine(linux_rules)
    by_event = [[a["kibana.alert.uuid"] for a in plain.process(e)] for e in _fresh(events)]
    return by_event, [a["kibana.alert.uuid"] for a in plain.finish()]


@pytest.mark.parametrize("size", [1, 9, 400])
def test_micro_batches_give_the_per_event_alerts(linux_rules, events, per_event, size):
    by_event, at_end = per_event
    assert sum(map(len, by_event)) > 20
    assert len(linux_rules) > 250 and any(r.compiled().kind == "sequence" for r in linux_rules)
    live = LiveCore(Engine(linux_rules))
    stream = _fresh(events)
    for start in range(0, len(stream), size):
        got = [a["kibana.alert.uuid"] for a in live.process_batch(stream[start : start + size])]
        # A batch gives the alerts of its own events, sequences included, no later.
        assert sorted(got) == sorted(u for alerts in by_event[start : start + size] for u in alerts)
    assert sorted(a["kibana.alert.uuid"] for a in live.finish()) == sorted(at_end)
