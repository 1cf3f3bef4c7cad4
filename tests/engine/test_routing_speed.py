"""Routing narrows candidates with every ``and`` term's anchor, never past a match.

A stage's condition ``a and b`` needs both: an event meeting only ``a`` cannot match
that stage. The anchors of different stages of a sequence are never combined (two
events match them), and odd values (non-ASCII, numbers, dotted keys) still admit.
"""

from __future__ import annotations

from vigil.engine import Engine
from vigil.events.model import Event
from vigil.rules.model import rule_from_dict

QUERIES = {
    "both": 'process where process.name == "curl" and host.os.type == "linux" and user.id like "S-1-5-21*"',
    "seq": 'sequence by host.id [process where process.name == "curl" and host.os.type == "linux"] '
    '[file where file.name == "evil.sh" and host.os.type == "macos"]',
    "either": 'process where (process.name == "curl" and host.os.type == "linux") or user.name == "root"',
}


def _router():
    rules = [
        rule_from_dict({"rule_id": k, "name": k, "type": "eql", "language": "eql", "query": q})
        for k, q in QUERIES.items()
    ]
    return Engine(rules).router


def _candidates(router, doc):
    return {p.rule.rule_id: stages for p, stages in router.group(Event(doc)).candidates(doc, None)}


def _doc(cat, **fields):
    doc: dict = {"event": {"category": [cat]}}
    for dotted, value in fields.items():
        *heads, last = dotted.split("__")
        node = doc
        for h in heads:
            node = node.setdefault(h, {})
        node[last] = value
    return doc


def test_a_conjunction_needs_every_anchor():
    router = _router()
    plans = {p.rule.rule_id: p for p in router.plans}
    full = _doc("process", process__name="curl", host__os__type="linux", user__id="S-1-5-21-9")
    assert plans["both"].query.matches(full)
    assert "both" in _candidates(router, full)
    # One term missing: the rule is not even tested.
    for broken in (
        _doc("process", process__name="curl", host__os__type="windows", user__id="S-1-5-21-9"),
        _doc("process", process__name="curl", host__os__type="linux", user__id="S-1-5-18"),
        _doc("process", process__name="curl", user__id="S-1-5-21-9"),
    ):
        assert not plans["both"].query.matches(broken)
        assert "both" not in _candidates(router, broken)


def test_odd_values_in_a_narrowing_field_still_admit():
    router = _router()
    for value in (["linux", "x"], "LINUX", "linu\u212a", 7, ["\u00e9", "linux"]):
        doc = _doc("process", process__name="curl", host__os__type=value, user__id="S-1-5-21-9")
        assert "both" in _candidates(router, doc), value
    dotted = {
        "event.category": "process",
        "process.name": "curl",
        "host.os.type": "linux",
        "user.id": "S-1-5-21-1",
    }
    assert "both" in _candidates(router, dotted)
    assert next(p for p in router.plans if p.rule.rule_id == "both").query.matches(dotted)


def test_sequence_stages_are_narrowed_apart():
    """Stage 0 wants linux, stage 1 macos: neither event meets both, and each must
    still reach its own stage (fusing the stages' anchors would lose the sequence)."""
    router = _router()
    first = _doc("process", process__name="curl", host__os__type="linux", host__id="h")
    second = _doc("file", file__name="evil.sh", host__os__type="macos", host__id="h")
    assert _candidates(router, first)["seq"] == (0,)
    assert _candidates(router, second)["seq"] == (1,)
    wrong = _doc("file", file__name="evil.sh", host__os__type="linux", host__id="h")
    assert "seq" not in _candidates(router, wrong)
    plan = next(p for p in router.plans if p.rule.rule_id == "seq")
    matches = list(plan.query.run([first, second]))
    assert len(matches) == 1


def test_or_branches_are_not_narrowed_by_one_branch():
    router = _router()
    root = _doc("process", process__name="bash", user__name="root", host__os__type="windows")
    assert "either" in _candidates(router, root)
    curl = _doc("process", process__name="curl", host__os__type="linux")
    assert "either" in _candidates(router, curl)
