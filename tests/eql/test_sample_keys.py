"""Samples as Elasticsearch's SampleIterator builds them (x-pack/plugin/eql execution.sample)."""

from __future__ import annotations

from vigil import eql
from vigil.eql.query import QueryOptions
from vigil.eql.sample import match_samples
from vigil.eql.schema import Schema


def ev(n, cat, **fields):
    return {"n": n, "event": {"category": cat}, **fields}


def run(query, events, per_key=1, schema=None):
    q = eql.compile(query, schema=schema, options=QueryOptions(max_samples_per_key=per_key))
    return [([e["n"] for e in m.events], m.join_keys) for m in q.run(events)]


def test_one_event_may_serve_several_samples_of_a_key_but_one_stage_of_each():
    evs = [ev(1, "a", h="x"), ev(2, "a", h="x"), ev(3, "b", h="x")]
    q = "sample by h [a where true] [b where true]"
    assert run(q, evs, per_key=2) == [([1, 3], ["x"]), ([2, 3], ["x"])]
    # An event matching both stages never fills both in one sample.
    both = [ev(1, "a", h="x", tag=True)]
    assert run("sample by h [any where tag == true] [any where tag == true]", both, per_key=3) == []


def test_samples_picked_depth_first_in_input_order():
    evs = [ev(1, "a", h="x"), ev(2, "a", h="x"), ev(3, "a", h="x"), ev(4, "b", h="x")]
    assert run("sample by h [a where true] [b where true]", evs, per_key=5) == [
        ([1, 4], ["x"]),
        ([2, 4], ["x"]),
        ([3, 4], ["x"]),
    ]
    assert match_samples([[1, 2], [1, 2]], 5) == [[1, 2], [2, 1]]
    assert match_samples([[1, 2], [1, 2]], 1) == [[1, 2]]
    assert match_samples([[1], []], 1) == []


def test_keys_in_composite_order_null_first_numbers_by_value():
    evs = [ev(n, c, port=p) for n, (c, p) in enumerate([("a", 10), ("b", 10), ("a", 9), ("b", 9)])]
    evs += [ev(7, "a"), ev(8, "b")]
    got = run("sample by ?port [a where true] [b where true]", evs)
    assert [k for _, k in got] == [[None], [9], [10]]


def test_date_keys_are_epoch_millis():
    schema = Schema.from_mapping({"properties": {"d": {"type": "date", "format": "dd-MM-yyyy"}}})
    evs = [ev(1, "a", d="17-12-2022"), ev(2, "b", d="17-12-2022")]
    assert run("sample by d [a where true] [b where true]", evs, schema=schema) == [([1, 2], [1671235200000])]


def test_stream_gives_samples_at_close():
    q = eql.compile("sample by h [a where true] [b where true]")
    s = q.stream()
    assert s.feed(ev(1, "a", h="x")) == [] and s.feed(ev(2, "b", h="x")) == []
    assert [[e["n"] for e in m.events] for m in s.close()] == [[1, 2]]
