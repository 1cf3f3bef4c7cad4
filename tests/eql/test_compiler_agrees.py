"""Property: the compiled matcher and the reference interpreter agree on every
generated query and event (and neither raises)."""

from __future__ import annotations

import json
import re
import tomllib
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.eql import ast, interpreter
from vigil.eql.checker import check
from vigil.eql.compiler import compile_condition, compile_event_filter, compile_value
from vigil.eql.schema import Schema

SCHEMA = Schema.from_mapping(
    {
        "properties": {
            "s": {"type": "keyword"},
            "n": {"type": "long"},
            "t": {"type": "date"},
            "ip": {"type": "ip"},
            "v": {"type": "version"},
            "b": {"type": "boolean"},
            "nv": {"type": "keyword", "null_value": "NULL"},
            "cat": {"type": "keyword"},
            "event": {"properties": {"category": {"type": "alias", "path": "cat"}}},
            "o": {"properties": {"k": {"type": "keyword"}}},
        }
    }
)
SCHEMAS = st.sampled_from([SCHEMA, Schema.ecs(), None])

FIELD_NAMES = ["s", "n", "t", "ip", "v", "b", "nv", "o.k", "d"]
fields = st.builds(
    lambda name, opt: ast.Field(tuple(name.split(".")), opt),
    st.sampled_from(FIELD_NAMES + ["missing"]),
    st.booleans(),
)

text = st.text(alphabet="aAbB*?.\\-\n 1", max_size=6)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 20),
    st.sampled_from([0.5, 2.0, -1.5]),
    text,
    st.sampled_from(["1.2.3", "1.10.0", "bad", "10.0.0.1", "::1", "2020-01-01T00:00:00Z", "12", "true"]),
)
literals = st.builds(ast.Literal, scalars)
str_literals = st.builds(ast.Literal, text)


def expressions():
    def extend(children):
        return st.one_of(
            st.builds(ast.Arithmetic, st.sampled_from(["+", "-", "*", "/", "%"]), children, children),
            st.builds(ast.Negate, children),
            st.builds(
                ast.FunctionCall,
                st.sampled_from(["length", "string", "concat", "number"]),
                st.tuples(children),
            ),
            st.builds(
                ast.FunctionCall,
                st.sampled_from(["startsWith", "endsWith", "stringContains", "indexOf", "concat", "add"]),
                st.tuples(children, children),
                st.booleans(),
            ),
            st.builds(
                lambda a, b, c: ast.FunctionCall("between", (a, b, c)),
                children,
                str_literals,
                str_literals,
            ),
            st.builds(
                lambda a, b: ast.FunctionCall("substring", (a, b)),
                children,
                st.builds(ast.Literal, st.integers(-4, 4)),
            ),
            st.builds(
                lambda a, b: ast.FunctionCall("cidrMatch", (a, b)),
                children,
                st.sampled_from([ast.Literal("10.0.0.0/8"), ast.Literal("::/0")]),
            ),
        )

    return st.recursive(st.one_of(fields, literals), extend, max_leaves=4)


values = expressions()


def conditions():
    atoms = st.one_of(
        st.builds(ast.Comparison, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), values, values),
        st.builds(ast.Comparison, st.sampled_from(["==", "!=", "<", ">="]), fields, literals),
        st.builds(
            ast.Pattern,
            st.sampled_from([":", "like", "like~", "regex", "regex~"]),
            values,
            st.lists(
                st.builds(ast.Literal, st.text(alphabet="aAb*?.1", max_size=4)), min_size=1, max_size=3
            ).map(tuple),
        ),
        st.builds(
            ast.In,
            values,
            st.lists(literals, min_size=1, max_size=3).map(tuple),
            st.booleans(),
            st.booleans(),
        ),
        fields,
        values,
    )
    return st.recursive(
        atoms,
        lambda c: st.one_of(
            st.builds(ast.Not, c),
            st.lists(c, min_size=2, max_size=3).map(lambda ts: ast.And(tuple(ts))),
            st.lists(c, min_size=2, max_size=3).map(lambda ts: ast.Or(tuple(ts))),
        ),
        max_leaves=6,
    )


leaf_values = st.one_of(scalars, st.lists(scalars, max_size=3))
CATEGORIES = st.sampled_from(["process", "file", ["process", "file"], "Process", 1])


@st.composite
def documents(draw):
    doc: dict = {}
    for name in FIELD_NAMES + ["cat"]:
        if draw(st.integers(0, 3)) == 0:
            continue
        value = draw(CATEGORIES if name == "cat" else leaf_values)
        if "." in name and draw(st.booleans()):
            head, tail = name.split(".", 1)
            doc[head] = {tail: value}
        else:
            doc[name] = value
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conditions(), documents(), SCHEMAS)
def test_conditions_agree(expr, doc, schema):
    try:
        compiled = compile_condition(expr, schema)
    except ValueError:
        # Malformed regex: the checker reports it before compiling; the interpreter too.
        return
    assert compiled(doc) == interpreter.matches(expr, doc, schema)


@settings(max_examples=300, deadline=None)
@given(values, documents(), SCHEMAS)
def test_values_agree(expr, doc, schema):
    got = compile_value(expr, schema)(doc)
    want = interpreter.value(expr, doc, schema)
    assert repr(got) == repr(want)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([None, "process", "file"]), conditions(), documents())
def test_event_filters_agree(category, cond, doc):
    query = ast.EventQuery(category, cond)
    try:
        compiled = compile_event_filter(query, SCHEMA)
    except ValueError:
        return
    assert compiled(doc) == interpreter.matches_event(query, doc, SCHEMA)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), st.text(max_size=3)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["s", "n", "o", "k", "o.k", "t", "ip"]), inner, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(conditions(), json_values, SCHEMAS)
def test_any_json_document_is_safe(expr, doc, schema):
    # Arbitrary JSON, including non-objects and arrays of arrays: no exceptions, same answer.
    try:
        compiled = compile_condition(expr, schema)
    except ValueError:
        return
    assert compiled(doc) == interpreter.matches(expr, doc, schema)


# --- the spec's event queries, once a parser is installed ---------------------------

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "elasticsearch-eql"
ENDGAME_FILES = ("test_queries.toml", "additional_test_queries.toml", "test_queries_date.toml")


def _spec_entries(name: str) -> list[dict]:
    if not (SPEC / name).is_file():
        return []
    text = (SPEC / name).read_text(encoding="utf-8")
    # test_extra.toml has bare nulls in join_keys (not TOML); the runner compares "null".
    text = "\n".join(
        re.sub(r'(?<!")\bnull\b(?!")', '"null"', line) if "join_keys" in line else line
        for line in text.splitlines()
    )
    return [
        q for q in tomllib.loads(text)["queries"] if not q["query"].strip().startswith(("sequence", "sample"))
    ]


EVENT_CASES = [(f, q) for f in (*ENDGAME_FILES, "test_extra.toml") for q in _spec_entries(f)]


@cache
def _spec_data(which: str):
    if which == "endgame":
        docs = json.loads((SPEC / "test_data.json").read_text())
        for d in docs:
            # DataLoader: @timestamp from the Windows FILETIME in "timestamp"
            d["@timestamp"] = d["timestamp"] // 10_000 - 11_644_473_600_000
        schema = Schema.from_mapping(SPEC / "data" / "endgame-140.mapping").add_dynamic(docs)
        docs.sort(key=lambda d: (d["@timestamp"], d["serial_event_id"]))
        return docs, schema, "serial_event_id"
    docs = json.loads((SPEC / "data" / "extra.data").read_text())
    schema = Schema.from_mapping(SPEC / "data" / "extra.mapping").add_dynamic(docs)
    docs.sort(key=lambda d: (int(d["@timestamp"]), d["sequence"]))
    return docs, schema, "sequence"


@pytest.mark.parametrize(("file", "case"), EVENT_CASES, ids=[q["name"] for _, q in EVENT_CASES])
def test_spec_event_queries(file, case):
    parser = pytest.importorskip("vigil.eql.parser")
    docs, schema, id_field = _spec_data("extra" if file == "test_extra.toml" else "endgame")
    statement = parser.parse(case["query"].strip())
    check(statement, schema)
    query = statement.query
    compiled = compile_event_filter(query, schema)
    got = [d[id_field] for d in docs if compiled(d)]
    reference = [d[id_field] for d in docs if interpreter.matches_event(query, d, schema)]
    for pipe in statement.pipes:
        got = got[: pipe.count] if pipe.name == "head" else got[-pipe.count :] if pipe.count else []
        reference = (
            reference[: pipe.count] if pipe.name == "head" else reference[-pipe.count :] if pipe.count else []
        )
    assert got == case["expected_event_ids"]
    assert reference == got
