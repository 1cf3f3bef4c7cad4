"""The superset filter of an ES|QL rule's leading WHERE (vigil.engine.esql_vector): every
event that :meth:`Program.keeps` keeps passes it, for every prebuilt ES|QL rule, over
events built from the rules' own constants and reshaped (case, arrays, dotted keys)."""

from __future__ import annotations

import pytest

from vigil.engine.core import Filtered
from vigil.engine.esql_rule import takes_index
from vigil.engine.esql_vector import condition, where_filter
from vigil.engine.vector import ALL, FieldTest
from vigil.esql import parse
from vigil.esql import tree as T
from vigil.events.model import Event


def _constants(e, out: list) -> None:
    """(field, value) pairs that could make the condition true."""
    match e:
        case T.Binary(op="and" | "or", left=left, right=right):
            _constants(left, out)
            _constants(right, out)
        case T.Binary(left=left, right=right):
            for f, v in ((left, right), (right, left)):
                if isinstance(f, T.Call) and f.args:
                    f = f.args[0]
                if isinstance(f, T.Column) and isinstance(v, T.Literal) and v.value is not None:
                    out.append((f.name, v.value))
        case T.In(value=T.Column(name=name), items=items):
            out.extend((name, i.value) for i in items if isinstance(i, T.Literal))
        case T.Like(value=value, patterns=patterns):
            if isinstance(value, T.Call) and value.args:
                value = value.args[0]
            if isinstance(value, T.Column):
                out.extend(
                    (value.name, p.replace("\\", "").replace("*", "abc").replace("?", "x")) for p in patterns
                )
        case T.Call(name="starts_with" | "ends_with", args=(T.Column(name=name), T.Literal(value=str(v)))):
            out.append((name, v + "tail"))
            out.append((name, "head" + v))
        case T.Unary(operand=operand):
            _constants(operand, out)


def _nested(path: str, value) -> dict:
    doc: dict = {}
    node = doc
    parts = path.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return doc


def _merge(a: dict, b: dict) -> dict:
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            _merge(a[k], v)
        else:
            a[k] = v
    return a


def _docs(pairs: list) -> list[dict]:
    """The pairs together, each alone, upper-cased, in arrays and under dotted keys."""
    out = []
    together: dict = {}
    for name, value in pairs:
        _merge(together, _nested(name, value))
    out.append(together)
    for name, value in pairs:
        out.append(_merge(dict(_nested("@timestamp", "2026-12-01T00:00:00Z")), _nested(name, value)))
        out.append({name: value})
        out.append(_nested(name, ["other", value]))
        if isinstance(value, str):
            out.append(_nested(name, value.upper()))
            out.append(_nested(name, value.lower()))
    return out


@pytest.fixture(scope="module")
def esql_rules(prebuilt_rules):
    return [r for r in prebuilt_rules if r.type == "esql" and r.runnable]


def test_every_kept_event_passes_its_rules_filter(esql_rules):
    assert len(esql_rules) > 150
    programs = {r.rule_id: r.compiled() for r in esql_rules}
    docs: list[dict] = []
    narrowed = 0
    for r in esql_rules:
        program = programs[r.rule_id]
        if program.leading_where:
            pairs: list = []
            _constants(program.query.commands[0].condition, pairs)
            docs.extend(_docs(pairs))
            narrowed += where_filter(program) is not ALL
    assert narrowed > 100, "most rules' WHERE narrows the rows"
    indices = sorted({p.replace("*", "x") for prog in programs.values() for p in prog.indices})
    kept = 0
    for index in indices:
        events = [Event(d, index) for d in docs]
        readers = [r for r in esql_rules if takes_index(programs[r.rule_id], index)]
        filtered = Filtered(
            [(r, where_filter(programs[r.rule_id])) for r in readers],
            patterns=lambda r: tuple(programs[r.rule_id].indices),
            reads=lambda r, idx: takes_index(programs[r.rule_id], idx),
        )
        passed = {k: set(rows) for k, rows in filtered.rows(events)}
        for k, r in enumerate(readers):
            program = programs[r.rule_id]
            for row, event in enumerate(events):
                if program.keeps(event):
                    kept += 1
                    assert row in passed.get(k, ()), (r.name, event.doc)
    assert kept > 500, "the built events meet the rules' conditions"


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('process.name == "Bash"', FieldTest("process.name", "in", ("bash",))),
        ('TO_LOWER(process.name) IN ("a", "B")', FieldTest("process.name", "in", ("a", "b"))),
        ('process.name LIKE "*ssh*"', FieldTest("process.name", "contains", ("ssh",))),
        ('STARTS_WITH(file.path, "/tmp/")', FieldTest("file.path", "prefix", ("/tmp/",))),
        ("destination.port > 1024", FieldTest("destination.port", "exists", ())),
        ('destination.ip == "10.0.0.1"', FieldTest("destination.ip", "exists", ())),  # ip: not text
        ('process.name RLIKE "ba.h"', FieldTest("process.name", "exists", ())),
        ('NOT process.name == "bash"', ALL),
        ("process.name IS NULL", ALL),
        ('_index == "logs-x"', ALL),  # metadata: not a field of the document
        ('process.name == "bash" OR COALESCE(user.name, "x") == "x"', ALL),
        ('process.name LIKE "a\\\\*b"', FieldTest("process.name", "exists", ())),  # escapes: the program's
    ],
)
def test_translations(where, expected):
    query = parse(f"FROM logs-* METADATA _index | WHERE {where}")
    assert condition(query.commands[0].condition) == expected
