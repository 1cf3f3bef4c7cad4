"""The C walk of a batch's documents (``_batchwalk.c``) gives what the Python walk
(:meth:`vigil.engine.batches.Reader.walk_python`) gives, on generated fleets and on
documents shaped to trip it: dotted keys, arrays of objects and of arrays, values that
are not strings, keys that are not text, string subclasses, deep nesting."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from vigil.engine import batches
from vigil.engine.batches import Reader

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
gen_events = pytest.importorskip("gen_events")

pytestmark = pytest.mark.skipif(batches._batchwalk is None, reason="the C walk was not built")

PATHS = [
    "process.name",
    "process.args",
    "process.parent.name",
    "file.path",
    "file.extension",
    "event.category",
    "event.type",
    "host.os.type",
    "destination.port",
    "user.name",
    "a.b.c",
    "a.b",
    "x",
]


class Text(str):
    pass


ODD = [
    {"process.name": "bash", "process": {"args": ["-c", None, 3, True]}},
    {"process": [{"name": "a"}, {"name": ["b", ["c", ["d"]]]}, None, "e"]},
    {"a": {"b": "value", "b.c": 1.5}, "a.b.c": [None, {"k": 1}], "x": {"y": 1}},
    {"file": {"path": Text("/tmp/x"), "extension": b"sh"}, 7: "key that is not text", None: 1},
    {"event": {"category": []}, "host": {"os": {"type": {}}}, "destination": {"port": 443}},
    {"...": 1, "process..name": "y", ".process": 1, "process.": 2, "user.name": "ü", "x": "\ud800"},
    {"process": {"name": [[[[[[[[["deep"]]]]]]]]]}},
    "not an object",
    None,
    {},
]


def _same(docs: list) -> None:
    reader = Reader(PATHS)
    assert reader.batch.__self__ is reader
    native = batches._batchwalk.walk(list(docs), reader.trie, len(reader.paths))
    assert native == reader.walk_python(docs)
    assert any(native[0]) and any(native[1])
    for values in native[0]:  # each field's dictionary encoding, in C and in Python
        distinct, raw = batches._batchwalk.encode(values)
        index: dict[str, int] = {}
        codes = [index.setdefault(v, len(index)) for v in values]
        assert distinct == list(index)
        assert np.frombuffer(raw, dtype=np.int32).tolist() == codes
        assert [distinct[c] for c in codes] == values


def test_odd_documents():
    _same(ODD)


@pytest.mark.parametrize("mix", ["default", "linux"])
def test_generated_fleets(mix):
    _same(list(gen_events.generate(3000, seed=3, mix=mix)))


def test_too_deep_is_an_error_not_a_crash():
    doc: object = "v"
    for _ in range(100_000):
        doc = [doc]
    reader = Reader(PATHS)
    with pytest.raises(RecursionError):
        batches._batchwalk.walk([{"x": doc}], reader.trie, len(reader.paths))


def _field_tests(node, out: set) -> None:
    from vigil.engine.vector import ALL, FieldTest

    if node is ALL:
        return
    if isinstance(node, FieldTest):
        out.add(node)
        return
    for term in node.terms:
        _field_tests(term, out)


@pytest.mark.parametrize("mix", ["default", "linux"])
def test_plain_tests_give_arrows_answer(prebuilt_rules, monkeypatch, mix):
    """``in`` tests, and columns of few values, are tested with Python's string methods
    (Column.plain_test); every field test of every prebuilt event rule gives Arrow's
    answer, on every column."""
    from vigil.engine import Engine
    from vigil.engine.core import EventRules

    rules = EventRules(Engine(prebuilt_rules))
    tests: set = set()
    for *_, filt in rules.plans:
        _field_tests(filt, tests)
    assert len(tests) > 1000
    docs = list(gen_events.generate(400, seed=9, mix=mix))
    for doc in docs[::7]:  # upper case and arrays too
        doc["process"] = {"name": ["BASH", "Sh"], "args": ["-C", "Curl http://X"]}
    reader = Reader(rules.paths)
    monkeypatch.setattr(batches, "_plain", lambda col, kind: kind in batches._PLAIN)
    plain = reader.batch(docs)
    answers = {t: plain.test(t) for t in tests}
    monkeypatch.setattr(batches, "_plain", lambda col, kind: False)
    arrow = reader.batch(docs)
    differ = [t for t in tests if not (arrow.test(t) == answers[t]).all()]
    assert not differ
