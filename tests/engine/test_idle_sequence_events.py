"""Events that can change no sequence now are left out of the core's sequence matching
(``SequenceMatcher.idle``): the alerts stay those of the plain engine, in and out of
time order, with until and missing stages (x-pack/plugin/eql ``execution.sequence``:
``SequenceMatcher.match`` only extends sequences already in flight)."""

from __future__ import annotations

import itertools

import pytest

from vigil.engine import Engine
from vigil.engine.core import scan_items
from vigil.eql.sequence import SequenceMatcher, Stage
from vigil.events.model import Event
from vigil.rules.model import Rule

INDEX = "logs-endpoint.events.process-default"

QUERIES = {
    "plain": 'sequence by host.name [process where process.name == "curl"] [file where file.extension == "sh"]',
    "maxspan": 'sequence by host.name with maxspan=1m [process where process.name == "curl"] '
    '[file where file.extension == "sh"]',
    "until": 'sequence by host.name [process where process.name == "curl"] [file where file.extension == "sh"] '
    'until [process where process.name == "logout"]',
    "missing": 'sequence by host.name with maxspan=5m [process where process.name == "curl"] '
    '![process where process.name == "logout"] [file where file.extension == "sh"]',
    "three": 'sequence by host.name [process where process.name == "curl"] [file where file.extension == "sh"] '
    '[file where file.extension == "sh"]',
}


def _rules() -> list[Rule]:
    return [Rule(rule_id=k, name=k, type="eql", language="eql", query=q) for k, q in QUERIES.items()]


def _doc(minute: int, kind: str, host: str) -> dict:
    ts = f"2026-12-01T10:{minute:02d}:00.000Z"
    if kind == "file":
        return {
            "@timestamp": ts,
            "event": {"category": ["file"]},
            "host": {"name": host},
            "file": {"extension": "sh"},
        }
    return {
        "@timestamp": ts,
        "event": {"category": ["process"]},
        "host": {"name": host},
        "process": {"name": kind},
    }


# (minute, kind, host): files that arrive before any curl (idle), sequences that start,
# an until and a missing-stage event between, and a second host.
STORY = [
    (1, "file", "a"),
    (2, "file", "a"),
    (3, "curl", "a"),
    (4, "file", "b"),
    (5, "logout", "a"),
    (6, "file", "a"),
    (7, "curl", "b"),
    (8, "file", "b"),
    (9, "file", "b"),
    (10, "curl", "a"),
    (20, "file", "a"),
    (21, "file", "a"),
    (40, "ls", "a"),  # meets no stage: only the passing of time settles what waits
]


def _events(order: list[int]) -> list[Event]:
    return [Event(_doc(*STORY[i]), INDEX, f"e{i}") for i in order]


def _ids(alerts) -> list[str]:
    return [a["kibana.alert.uuid"] for a in alerts]


ORDERS = [
    list(range(len(STORY))),
    [2, 0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],  # a curl after later files: run again at the end
    [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    [0, 1, 3, 2, 5, 4, 6, 8, 7, 9, 11, 10, 12],
]


@pytest.mark.parametrize("order", ORDERS)
def test_core_sequences_give_the_plain_engines_alerts(order):
    rules = _rules()
    plain = _ids(Engine(rules).scan(_events(order)))
    assert plain, "the story raises sequence alerts"
    core = _ids(scan_items(Engine(rules), [(e, None) for e in _events(order)], rescan=lambda: _events(order)))
    assert core == plain


def test_every_order_of_a_short_story():
    story = [0, 2, 5, 6, 9, 10]
    rules = _rules()
    for order in itertools.permutations(story):
        order = list(order)
        plain = _ids(Engine(rules).scan(_events(order)))
        core = _ids(
            scan_items(Engine(rules), [(e, None) for e in _events(order)], rescan=lambda o=order: _events(o))
        )
        assert core == plain, order


def _matcher() -> SequenceMatcher:
    key = [lambda d: d["k"]]
    stages = [
        Stage(lambda d: d["s"] == 0, key),
        Stage(lambda d: d["s"] == 1, key),
        Stage(lambda d: d["s"] == 2, key),
    ]
    return SequenceMatcher(stages, Stage(lambda d: d["s"] == 3, key), None)


def test_idle_only_while_no_sequence_waits_at_the_stage_before():
    m = _matcher()
    assert m.idle({1}) and m.idle({2}) and m.idle({1, 2}) and m.idle({3})
    assert not m.idle({0}) and not m.idle({0, 2})  # a first stage starts a sequence
    m.feed("a", {"s": 0, "k": 1}, 1, known={0})
    assert not m.idle({1}) and not m.idle({3})  # it may advance, or be dropped by until
    assert m.idle({2})  # nothing waits at stage 1
    m.feed("b", {"s": 1, "k": 1}, 2, known={1})
    assert m.idle({1}) and not m.idle({2})
    assert m.feed("c", {"s": 2, "k": 1}, 3, known={2})  # completes
    assert m.idle({1}) and m.idle({2}) and m.idle({3})


TRAILING = (
    'sequence by host.name with maxspan=15m [process where process.name == "curl"] '
    '[file where file.extension == "sh"] ![process where process.name == "logout"]'
)
SAMPLE = 'sample by host.name [process where process.name == "curl"] [file where file.extension == "sh"]'


@pytest.mark.parametrize("size", [1, 3, 12])
@pytest.mark.parametrize("order", ORDERS[:2])
def test_live_micro_batches_alert_with_the_event_that_completes(order, size):
    from vigil.engine.core import LiveCore

    rules = _rules() + [
        Rule(rule_id="trailing", name="trailing", type="eql", language="eql", query=TRAILING),
        Rule(rule_id="sample", name="sample", type="eql", language="eql", query=SAMPLE),
    ]
    plain = Engine(rules)
    by_event = [[a["kibana.alert.uuid"] for a in plain.process(e)] for e in _events(order)]
    at_end = sorted(a["kibana.alert.uuid"] for a in plain.finish())
    assert sum(map(len, by_event)) and at_end
    live = LiveCore(Engine(rules))
    events = _events(order)
    for start in range(0, len(events), size):
        got = [a["kibana.alert.uuid"] for a in live.process_batch(events[start : start + size])]
        assert sorted(got) == sorted(u for alerts in by_event[start : start + size] for u in alerts)
    assert sorted(a["kibana.alert.uuid"] for a in live.finish()) == at_end
