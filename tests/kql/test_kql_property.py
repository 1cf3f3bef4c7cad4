"""Random KQL over keyword fields: the text parses back to the tree it was written
from, and the compiled query agrees with a direct model of the Elasticsearch
queries Kibana builds (match: an exact term on any value; query_string wildcard:
``*`` any run of characters, everything else literal, case-sensitive; exists: any
value; bool must_not: the complement, so true on a missing field)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil import kql
from vigil.kql import tree as T

FIELDS = ("x.a", "x.b")
_SPECIAL = '\\():<>"*{}'


def _escape_unquoted(part: str) -> str:
    return "".join("\\" + c if c in _SPECIAL else c for c in part)


def render(node: T.Node) -> str:
    match node:
        case T.Is(field=f, value=v):
            if v.quoted:
                text = '"' + v.parts[0].replace("\\", "\\\\").replace('"', '\\"') + '"'
            else:
                text = "*".join(_escape_unquoted(p) for p in v.parts)
            return f"{f.parts[0]}: {text}"
        case T.Not(query=q):
            return f"not ({render(q)})"
        case T.And(terms=ts):
            return "(" + " and ".join(render(t) for t in ts) + ")"
        case T.Or(terms=ts):
            return "(" + " or ".join(render(t) for t in ts) + ")"
    raise AssertionError(node)


_text = st.text(alphabet="ab?.*\\-(", min_size=1, max_size=4)
_quoted = _text.map(lambda s: T.Value((s,), quoted=True))
_plain = _text.filter(lambda s: "*" not in s).map(lambda s: T.Value((s,)))
_wild = st.lists(st.text(alphabet="ab?.\\-", max_size=3), min_size=2, max_size=4).map(
    lambda parts: T.Value(tuple(parts))
)
_leaf = st.builds(
    lambda f, v: T.Is(T.Value((f,)), v), st.sampled_from(FIELDS), st.one_of(_quoted, _plain, _wild)
)
_query = st.recursive(
    _leaf,
    lambda sub: st.one_of(
        sub.map(T.Not),
        st.lists(sub, min_size=2, max_size=3).map(lambda ts: T.And(tuple(ts))),
        st.lists(sub, min_size=2, max_size=3).map(lambda ts: T.Or(tuple(ts))),
    ),
    max_leaves=6,
)
_value = st.text(alphabet="abAB?.*\\-\n", max_size=4)
_field = st.one_of(
    st.none(), st.just("<missing>"), _value, st.lists(st.one_of(_value, st.none()), max_size=3)
)


def _doc(a, b) -> dict:
    inner = {k: v for k, v in (("a", a), ("b", b)) if v != "<missing>"}
    return {"x": inner}


def model(node: T.Node, doc: dict) -> bool:
    match node:
        case T.Is(field=f, value=v):
            raw = doc["x"].get(f.parts[0].split(".")[1])
            values = [x for x in (raw if isinstance(raw, list) else [raw]) if x is not None]
            if v.parts == ("", ""):
                return bool(values)
            if v.is_wildcard:
                rx = re.compile(".*".join(re.escape(p) for p in v.parts), re.DOTALL)
                return any(rx.fullmatch(x) for x in values)
            return v.parts[0] in values
        case T.Not(query=q):
            return not model(q, doc)
        case T.And(terms=ts):
            return all(model(t, doc) for t in ts)
        case T.Or(terms=ts):
            return any(model(t, doc) for t in ts)
    raise AssertionError(node)


@settings(max_examples=300, deadline=None)
@given(_query, _field, _field)
def test_compiled_kql_agrees_with_the_elasticsearch_model(query, a, b):
    text = render(query)
    assert kql.parse(text) == query
    doc = _doc(a, b)
    assert kql.compile(text).matches(doc) == model(query, doc), text
