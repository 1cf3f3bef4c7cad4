"""Gates (vigil.engine.gates) leave out only the rules no row of a batch can reach.

Each prebuilt event rule gets an event built from its own query and checked by its own
matcher (shaped_events.satisfy); in a batch beside unrelated events, and reshaped
(dotted keys, values in arrays, upper case), the rule must be reached. The point of
gates is checked too: a batch of one plain event reaches few of the rules.
"""

from __future__ import annotations

import copy
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from vigil.engine import Engine
from vigil.engine.batches import Reader
from vigil.engine.core import EventRules, StageRules
from vigil.engine.gates import Gates, conjuncts
from vigil.engine.vector import FieldTest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from shaped_events import dotted, satisfy  # noqa: E402

gen_events = pytest.importorskip("gen_events")


@pytest.fixture(scope="module")
def core(prebuilt_rules):
    engine = Engine(prebuilt_rules, now=datetime(2026, 12, 1, tzinfo=UTC))
    rules, stages = EventRules(engine), StageRules(engine)
    return rules, stages, Reader(rules.paths | stages.paths)


def _reshaped(doc):
    if isinstance(doc, dict):
        return {k: _reshaped(v) for k, v in doc.items()}
    if isinstance(doc, str):
        return [None, doc.upper()]  # any value of an array; case left to the matcher
    return doc


def test_every_prebuilt_event_rule_is_reached_by_its_own_event(core):
    rules, _, reader = core
    others = list(gen_events.generate(20, seed=7, mix="linux"))
    built = checked = 0
    for k, (_, rule, query, _filt) in enumerate(rules.plans):
        eq = query.statement.query
        base = {"event": {"category": eq.category}} if eq.category not in (None, "any") else {}
        doc = satisfy(eq.condition, base, query.matches)
        if doc is None or not query.matches(doc):
            continue
        built += 1
        for shape in (doc, dotted(doc), _reshaped(copy.deepcopy(doc))):
            batch = reader.batch([*others, shape])
            assert k in rules.gates.reached(batch), (rule.name, shape)
            checked += 1
    assert built > 1000, built  # the check ran over most of the set


def test_a_rule_is_reached_whenever_its_filter_passes_a_row(core):
    rules, stages, reader = core
    for mix in ("default", "linux"):
        docs = list(gen_events.generate(600, seed=11, mix=mix))
        for size in (1, 7, 600):
            for at in range(0, len(docs) if size == 600 else 84, size):
                batch = reader.batch(docs[at : at + size])
                every = np.ones(batch.n, dtype=bool)
                reached = rules.gates.reached(batch)
                for k, (*_, filt) in enumerate(rules.plans):
                    if k not in reached:
                        assert not batch.mask(filt, every).any(), rules.plans[k][1].name
                reached = stages.gates.reached(batch)
                for k, filters in enumerate(stages.filters):
                    if k not in reached:
                        assert not any(batch.mask(f, every).any() for f in filters)


def test_one_plain_event_reaches_few_rules(core):
    rules, _, reader = core
    doc = {
        "event": {"category": ["process"], "type": ["start"]},
        "process": {"name": "ls", "args": ["ls", "-l"]},
    }
    reached = rules.gates.reached(reader.batch([doc]))
    assert len(reached) < len(rules.plans) / 10, len(reached)


def test_gates_of_filters():
    t = FieldTest("process.name", "in", ("bash", "sh"))
    c = FieldTest("event.category", "in", ("process",))
    p = FieldTest("file.path", "prefix", ("/tmp/",))
    from vigil.engine.vector import AndF, OrF

    assert conjuncts(AndF((c, t))) == [
        (("event.category", ("process",)),),
        (("process.name", ("bash", "sh")),),
    ]
    # An "or" is one gate when every branch has one: the best gate of each branch.
    assert conjuncts(OrF((AndF((c, t)), p))) == [(("process.name", ("bash", "sh")), ("file.path", None))]
    assert conjuncts(OrF((t, None))) == []  # a branch that says nothing: no gate
    gates = Gates([(0, AndF((c, t))), (1, p), (2, None), (3, p), (3, t)])
    reader = Reader(["event.category", "process.name", "file.path"])
    assert gates.reached(reader.batch([{"process": {"name": "BASH"}}])) == {2, 3}
    assert gates.reached(reader.batch([{"process": {"name": "BASH"}, "event": {"category": "process"}}])) == {
        0,
        2,
        3,
    }
    assert gates.reached(reader.batch([{"file": {"path": 1}}])) == {1, 2, 3}
    # A value that is not an ASCII string passes every test of its field.
    assert 0 in gates.reached(reader.batch([{"process.name": "bäsh", "event.category": 5}]))
