"""The columnar core's superset filters never lose an event the exact matcher takes.

For every runnable prebuilt rule (event rules and each stage of sequences), events
built from the rule's own query (``rule_events.py``) and rewritten in the shapes a
filter could misread (dotted keys, arrays, upper case, numbers, non-ASCII text) are
read into one batch; each shape the compiled matcher accepts must pass the rule's
vectorized filter. End to end equality with the plain path is in test_fast_path.py.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import numpy as np
import pytest
from rule_events import Unsupported, _stage_doc, put
from shaped_events import dotted

from vigil.engine import Engine
from vigil.engine.batches import Reader
from vigil.engine.vector import ALL, AndF, FieldTest, OrF, condition_filter, event_filter, fields_of
from vigil.eql import ast, parse
from vigil.rules.loaders import load_rules

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _map_leaves(doc, fn):
    if isinstance(doc, dict):
        return {k: _map_leaves(v, fn) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_map_leaves(v, fn) for v in doc]
    return fn(doc)


def _shapes(doc: dict) -> list[dict]:
    """The document and rewritings of it that the exact matcher may still accept."""
    half = {k: v for k, v in doc.items() if k != "event"}
    half["event"] = dotted({"x": doc.get("event", {})})  # some keys dotted, some not
    nested_list = copy.deepcopy(doc)
    for k, v in list(nested_list.items()):
        if isinstance(v, dict):
            nested_list[k] = [v, {"other": "x"}]  # an array of objects on the way
    return [
        doc,
        dotted(doc),
        half,
        nested_list,
        _map_leaves(doc, lambda v: [v, "vigil-other"] if isinstance(v, str) else v),
        _map_leaves(doc, lambda v: v.upper() if isinstance(v, str) else v),
        _map_leaves(doc, lambda v: int(v) if isinstance(v, str) and v.isdigit() else v),
        _map_leaves(doc, lambda v: str(v) if type(v) in (int, float) else v),
        _map_leaves(doc, lambda v: [v] if type(v) in (int, float) else v),
        _map_leaves(doc, lambda v: float(v) if type(v) is int else v),
        _map_leaves(doc, lambda v: v.replace("e", "\u00e9", 1) if isinstance(v, str) else v),
        _map_leaves(doc, lambda v: v.replace("k", "\u212a") if isinstance(v, str) else v),
    ]


@pytest.fixture(scope="module")
def prebuilt(prebuilt_rules):
    """The runnable prebuilt rules whose query compiles to EQL (EQL and KQL; not ES|QL)."""
    return [r for r in prebuilt_rules if r.query_language in ("eql", "kuery") and r.runnable]


def _stage_queries(query) -> list[tuple[ast.EventQuery, object]]:
    """(event query, exact filter) of each stage of a compiled query (the query itself
    for an event query)."""
    q = query.statement.query
    if isinstance(q, ast.EventQuery):
        return [(q, query.matches)]
    stages = [s.query for s in q.stages] + ([q.until.query] if getattr(q, "until", None) else [])
    exact = [s.filter for s in query._stages] + ([query._until.filter] if query._until else [])
    return list(zip(stages, exact, strict=True))


def test_every_prebuilt_filter_passes_what_its_rule_matches(prebuilt):
    cases = []  # (rule name, filter, exact test, docs)
    built = 0
    for rule in prebuilt:
        query = rule.compiled()
        field = query.options.event_category_field
        for eq, exact in _stage_queries(query):
            try:
                docs = [_stage_doc(eq, (), "")]
            except (Unsupported, TypeError):  # a condition the builder cannot meet
                docs = []
            shaped = []
            for doc in docs:
                if eq.category is not None:
                    put(doc, field, eq.category)
                shaped.extend(_shapes(doc))
            cases.append((rule.name, event_filter(eq, field), exact, shaped))
            built += bool(docs)
    assert built > 1000, "the builder must serve most rules for the test to mean something"
    paths = set().union(*(fields_of(f) for _, f, _, _ in cases))
    reader = Reader(paths)
    docs = [d for *_, ds in cases for d in ds]
    batch = reader.batch(docs)
    every = np.ones(len(docs), dtype=bool)
    row = 0
    accepted = 0
    for name, filt, exact, ds in cases:
        mask = batch.mask(filt, every)
        for k, d in enumerate(ds):
            try:
                hit = bool(exact(d))
            except Exception:  # noqa: BLE001 - an error is no match, as in Query.matches
                hit = False
            if hit:
                accepted += 1
                assert mask[row + k], (name, d)
        row += len(ds)
    assert accepted > 5000


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('process.name == "Bash"', FieldTest("process.name", "in", ("bash",))),
        ('process.name in ("b", "A")', FieldTest("process.name", "in", ("a", "b"))),
        ('process.name : "*sh"', FieldTest("process.name", "suffix", ("sh",))),
        ('process.name like~ "ba*"', FieldTest("process.name", "prefix", ("ba",))),
        ('process.name : "*as*"', FieldTest("process.name", "contains", ("as",))),
        ('startsWith~(process.name, "BA")', FieldTest("process.name", "prefix", ("ba",))),
        ('not process.name == "bash"', ALL),
        ('process.name != "bash"', ALL),
        ('process.name not in ("bash")', ALL),
        ("process.pid == 4", FieldTest("process.pid", "num", (4,))),
        ("process.pid in (4, 2.5)", FieldTest("process.pid", "num", (2.5, 4))),
        ('process.pid in (4, "a")', FieldTest("process.pid", "exists", ())),
        ("process.pid >= 4", FieldTest("process.pid", "exists", ())),
        ('destination.ip == "10.0.0.1"', FieldTest("destination.ip", "exists", ())),  # as an address
        ('cidrMatch(destination.ip, "10.0.0.0/8")', FieldTest("destination.ip", "exists", ())),
        ('process.name regex~ "ba.*"', FieldTest("process.name", "regex", ("^(?:[Bb][Aa](?:(?s:.))*)$",))),
        ('process.name regex "a&b"', FieldTest("process.name", "exists", ())),  # refused by ES
        ("process.pid == null", ALL),  # true on a missing field
        ("process.pid == process.ppid", ALL),
        ("length(process.name) > 3", ALL),
        # Non-ASCII folding and a wildcard query's own syntax are the matcher's.
        ('process.name == "cr\u00e9"', FieldTest("process.name", "exists", ())),
        ('endsWith(process.name, "a*b")', FieldTest("process.name", "exists", ())),
        ('process.name == "a" or length(process.pid) > 3', ALL),
    ],
)
def test_translation(condition, expected):
    assert condition_filter(parse(f"any where {condition}").query.condition) == expected


def test_and_or_and_wildcards_with_question_marks():
    cond = parse('any where a.b == "x" and (c : "d?e" or c : ("f", "g*"))').query.condition
    f = condition_filter(cond)
    assert isinstance(f, AndF) and isinstance(f.terms[1], OrF)
    reader = Reader(fields_of(f))
    docs = [
        {"a": {"b": "X"}, "c": "DzE"},
        {"a.b": ["y", "x"], "c": "gone"},
        {"a": {"b": "x"}, "c": "d\ne"},  # ? matches a newline
        {"a": {"b": "x"}, "c": "dze!"},
        {"a": {"b": "z"}, "c": "f"},
        {"a": [{"b": "x"}], "c": 7},  # a number: the matcher decides
    ]
    batch = reader.batch(docs)
    assert batch.mask(f, np.ones(len(docs), dtype=bool)).tolist() == [True, True, True, False, False, True]


def test_engine_rule_split_keeps_every_rule(prebuilt):
    from vigil.engine.core import EventRules, StageRules

    engine = Engine(prebuilt, now=NOW)
    events, stages = EventRules(engine), StageRules(engine)
    assert len(events.plans) + len(stages.plans) == len(engine.rules)
    assert stages.plans and all(p.query.kind != "event" for p in stages.plans)


def test_regular_expressions_read_values_in_their_own_case():
    f = condition_filter(parse('any where a regex "[A-Z][a-z]+" or b regex~ "x[0-9]"').query.condition)
    docs = [{"a": "Bash"}, {"a": "bash"}, {"b": "X7"}, {"b": "y7"}, {"a": "Z\u00e9"}, {"a": ["q", "Qq"]}]
    batch = Reader(fields_of(f)).batch(docs)
    assert batch.mask(f, np.ones(len(docs), dtype=bool)).tolist() == [True, False, True, False, True, True]


def test_numbers_pass_when_equal_or_when_a_string_may_read_as_one():
    f = condition_filter(parse("any where port in (20, 21)").query.condition)
    docs = [{"port": 20}, {"port": 22}, {"port": "21"}, {"port": 21.0}, {"port": [22, 21]}, {"port": True}]
    batch = Reader(fields_of(f)).batch(docs)
    assert batch.mask(f, np.ones(len(docs), dtype=bool)).tolist() == [True, False, True, True, True, True]


def test_values_arrow_cannot_hold_pass_and_never_crash():
    f = condition_filter(parse('any where a : "x*" or a regex "y.*"').query.condition)
    docs = [{"a": "x\ud800"}, {"a": "\udc00"}, {"a": "z"}, {"a": "X1"}]
    batch = Reader(fields_of(f)).batch(docs)
    assert batch.mask(f, np.ones(len(docs), dtype=bool)).tolist() == [True, True, False, True]


def test_exceptions_drop_the_same_alerts_on_the_core(shared, tmp_path):
    """Kibana's exception items (here on every rule) apply on the core as on the plain path:
    an event rule's alert is dropped, a sequence never takes the event."""
    import sys
    from pathlib import Path

    import orjson

    from vigil.engine.batch import scan_paths
    from vigil.rules.exceptions import load_exceptions

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import gen_events

    rules = load_rules([shared / "detection-rules" / "rules" / "linux"]).rules
    data = tmp_path / "events.ndjson"
    data.write_bytes(
        b"".join(orjson.dumps(d) + b"\n" for d in gen_events.generate(1500, seed=4, mix="linux"))
    )
    items = [
        {
            "list_id": "ours",
            "name": "ours",
            "description": "x",
            "type": "detection",
            "namespace_type": "single",
        },
        {
            "item_id": "curl",
            "list_id": "ours",
            "namespace_type": "single",
            "type": "simple",
            "name": "curl",
            "entries": [{"field": "process.name", "type": "match", "operator": "included", "value": "curl"}],
        },
    ]
    path = tmp_path / "exceptions.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in items) + b"\n")
    lists = load_exceptions(path)

    def ids(**kw):
        engine = Engine(rules, exceptions=lists, exceptions_all=True, now=NOW)
        return [a["kibana.alert.uuid"] for a in scan_paths(engine, [data], **kw)]

    plain, core = ids(fast=False), ids(core=True)
    every = [a["kibana.alert.uuid"] for a in scan_paths(Engine(rules, now=NOW), [data], core=True)]
    assert plain and core == plain
    assert len(every) > len(plain)
