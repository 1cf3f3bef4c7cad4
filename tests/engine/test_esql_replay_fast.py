"""A scan's ES|QL replay (``EsqlReplay`` fast: each event through a rule's local prefix
once as it arrives, aggregating rules' runs from the projected rows) gives exactly the
alerts of the reference replay (every run evaluates the whole query row by row over
its window), for every prebuilt ES|QL rule, over generated events and events built from
the rules' own constants, reshaped (case, arrays, dotted keys, missing fields, nulls).

Semantics of the row-local commands: x-pack/plugin/esql/.../planner/LocalExecutionPlanner.java
(FilterExec, EvalExec, MvExpandExec, DissectExec, GrokExec, ProjectExec run page by page)."""

from __future__ import annotations

import copy
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vigil.engine import esql_rule
from vigil.engine.esql_rule import EsqlReplay
from vigil.engine.esql_vector import prefix_filter, where_filter
from vigil.engine.spill import Spill
from vigil.engine.vector import ALL
from vigil.esql import parse
from vigil.esql import tree as T
from vigil.esql.evaluate import walk
from vigil.events.model import Event

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
gen_events = pytest.importorskip("gen_events")
from test_esql_vector import _constants as _vector_constants  # noqa: E402
from test_esql_vector import _merge, _nested  # noqa: E402

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
VARIED = ("host.id", "host.name", "user.name", "user.id", "source.ip", "process.pid", "process.entity_id")


def _program(rule):
    program = rule.compiled()
    build = getattr(program, "_program", None)
    return build() if build is not None else program


def _constants(e, out: list) -> None:
    """(field, value) pairs that could make a condition true (or, under NOT, false): those
    of test_esql_vector, and those inside function calls and IS [NOT] NULL tests."""
    for x in walk(e):
        if isinstance(x, T.Call) and x.name not in ("starts_with", "ends_with"):
            for arg in x.args:
                _vector_constants(arg, out)
        elif isinstance(x, T.IsNull) and isinstance(x.value, T.Column):
            out.append((x.value.name, "present"))
    _vector_constants(e, out)


def _rule_docs(program) -> list[dict]:
    """Documents meeting the rule's conditions (the first value of each field: an OR's
    first branch mostly), several of them differing in host, user and address (for the
    aggregating rules' distinct counts), then reshaped."""
    pairs: list = []
    for c in program.query.commands:
        if isinstance(c, T.Where):
            _constants(c.condition, pairs)
        elif isinstance(c, T.Eval):
            for a in c.fields:
                _constants(a.expr, pairs)
    first: dict = {}
    for name, value in pairs:
        first.setdefault(name, value)
    together: dict = {}
    for name, value in first.items():
        _merge(together, _nested(name, value))
    out = []
    for n in range(15):
        doc = copy.deepcopy(together)
        for name in VARIED:
            if name not in first:
                _merge(doc, _nested(name, f"10.0.0.{n}" if name == "source.ip" else f"{name}-{n}"))
        out.append(doc)
    for name, value in list(first.items())[:12]:
        out.append({**copy.deepcopy(together), name: value})  # a dotted key beside the object
        doc = copy.deepcopy(together)
        _merge(doc, _nested(name, ["other", value]))  # an array
        out.append(doc)
        doc = copy.deepcopy(together)
        _merge(doc, _nested(name, None))  # null
        out.append(doc)
        missing = {k: v for k, v in first.items() if k != name}  # missing
        doc = {}
        for k, v in missing.items():
            _merge(doc, _nested(k, v))
        out.append(doc)
        if isinstance(value, str):
            doc = copy.deepcopy(together)
            _merge(doc, _nested(name, value.upper()))  # case
            out.append(doc)
    return out


def _events(esql_rules, seed: int = 11) -> list[Event]:
    rng = random.Random(seed)
    events: list[Event] = []
    generated = list(gen_events.generate(600, seed=seed, mix="default"))
    generated += list(gen_events.generate(600, seed=seed, mix="linux"))
    for i, doc in enumerate(generated):
        events.append(Event(doc, _index_of(doc), f"g{i}"))
    for r in esql_rules:
        program = _program(r)
        indices = [p.replace("*", "x") for p in program.indices]
        for j, doc in enumerate(_rule_docs(program)):
            index = indices[j % len(indices)]
            events.append(Event(doc, index, f"{r.rule_id}-{j}"))
    rng.shuffle(events)
    for k, e in enumerate(events):
        if k % 97 == 0:
            e.doc.pop("@timestamp", None)  # no time: never searched
            continue
        ts = START + timedelta(seconds=rng.uniform(0, 30 * 60))
        e.doc["@timestamp"] = ts.isoformat().replace("+00:00", "Z")
    return events


def _index_of(doc: dict) -> str:
    category = doc.get("event", {}).get("category", "process")
    if isinstance(category, list):
        category = category[0]
    return f"logs-endpoint.events.{category}-default"


def _replay(rules, events, *, fast: bool, spill_budget: int = 10**9, batch: int = 1000) -> list[dict]:
    spill = Spill(budget=spill_budget)
    try:
        r = EsqlReplay(rules, spill=spill if fast else None, fast=fast)
        first = 1
        for k in range(0, len(events), batch):
            chunk = events[k : k + batch]
            r.feed_batch(chunk, first)
            first += len(chunk)
        return list(r.alerts())
    finally:
        spill.close()


@pytest.fixture(scope="module")
def esql_rules(prebuilt_rules):
    rules = [r for r in prebuilt_rules if r.type == "esql" and r.runnable]
    assert len(rules) > 200
    return rules


@pytest.fixture(scope="module")
def events(esql_rules):
    return _events(esql_rules)


@pytest.fixture(scope="module")
def reference(esql_rules, events):
    alerts = _replay(esql_rules, events, fast=False)
    assert len({a["kibana.alert.rule.rule_id"] for a in alerts}) > 20, "the built events alert"
    return alerts


def _key(alerts: list[dict]) -> list:
    return sorted((a["kibana.alert.uuid"], repr(sorted(a.items()))) for a in alerts)


def test_fast_replay_gives_the_reference_alerts(esql_rules, events, reference):
    fast = _replay(esql_rules, events, fast=True)
    assert [a["kibana.alert.uuid"] for a in fast] == [a["kibana.alert.uuid"] for a in reference]
    assert _key(fast) == _key(reference)


def test_fast_replay_past_its_row_budget_and_on_disk(esql_rules, events, reference, monkeypatch):
    # Past the budget, an aggregating rule's events wait (here on disk) and their rows are
    # made again in each run, beside the rows kept before.
    monkeypatch.setattr(esql_rule, "ROW_BUDGET", 3000)
    fast = _replay(esql_rules, events, fast=True, spill_budget=0, batch=257)
    assert _key(fast) == _key(reference)


def test_local_prefix_and_its_filter():
    program = _query(
        "FROM logs-* | MV_EXPAND event.action | EVAL n = TO_LOWER(process.name) "
        '| WHERE event.action == "exec" AND n == "x" | STATS c = COUNT(*) BY host.id | WHERE c > 1'
    )
    assert program.local == 3 and program.filter_end == 3 and not program.leading_where
    assert program.stats_reads == {"host.id": "keyword"}
    # n is computed: its test is left to the program; event.action's stays.
    assert repr(prefix_filter(program)) == "FieldTest(path='event.action', kind='in', values=('exec',))"
    assert where_filter(program) is ALL  # no leading WHERE: every event is timed
    late = _query('FROM logs-* | WHERE process.name == "a" | EVAL t = NOW() | WHERE t > @timestamp')
    assert late.local == 1 and late.filter_end == 1
    sorted_first = _query('FROM logs-* | SORT @timestamp | WHERE process.name == "a"')
    assert sorted_first.local == 0 and sorted_first.stats_reads is None
    reads_doc = _query('FROM logs-* | STATS c = COUNT(*) WHERE KQL("a:b") BY host.id')
    assert reads_doc.stats_reads is None


def _query(text: str):
    from vigil.esql.evaluate import Program

    return Program(parse(text))


def test_one_path_reads_what_lookup_reads(events):
    """values._one_path (one key from each object to the next) beside fields.lookup, the
    reference walk (dotted keys, arrays of objects: vigil.eql.fields)."""
    from vigil.eql.fields import lookup
    from vigil.esql.values import _one_path

    docs = [e.doc for e in events[:3000]]
    docs += [
        {"process": {"name": "a"}, "process.name": "b"},
        {"process": [{"name": "a"}, {"name": "c"}]},
        {"process": {"name": [["x", None], {"k": 1}, "y"]}},
        {"process": {"name": None}, "a.b": {"c": 1}},
        {"process": "flat", "a": {"b.c": [1, 2]}},
    ]
    names = ["process.name", "a.b.c", "process", "event.category", "host.os.type", "user.name"]
    fast = 0
    for doc in docs:
        for name in names + [".".join(p) for p in _paths(doc)][:20]:
            got = _one_path(doc, name)
            if got is not None:
                fast += 1
                assert got == lookup(doc, name), (doc, name)
    assert fast > 10_000


def _paths(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))


def test_case_remembered_by_its_column_gives_each_rows_answer(esql_rules, events, monkeypatch):
    """A CASE that reads one column is remembered by its value (Program._memo_by_column):
    the same rows and warnings as the CASE run on every row, on every prebuilt rule that
    has one, over the built events."""
    from vigil.esql.evaluate import Program

    with_case = [r for r in esql_rules if "case(" in r.query.lower()]
    assert len(with_case) > 10
    remembered = 0
    for r in with_case:
        text = _program(r).text
        fast = Program(parse(text))
        remembered += "remembered" in repr([fn for fn in _closures(fast)])
        with monkeypatch.context() as m:
            m.setattr(Program, "_memo_by_column", lambda self, args, env, fn: None)
            slow = Program(parse(text))
        window = [e for e in events if e.doc.get("@timestamp")][:2000]
        a, b = fast.run(window, limit=None, now=0), slow.run(window, limit=None, now=0)
        assert (a.columns, a.rows, a.warnings) == (b.columns, b.rows, b.warnings), r.name
    assert remembered > 5


def _closures(program) -> list:
    """The functions a program's steps close over, two levels down."""
    out = []
    for step in program.steps:
        for cell in step.__closure__ or ():
            v = cell.cell_contents
            out.append(v)
            if isinstance(v, list):
                for item in v:
                    if isinstance(item, tuple):
                        out.extend(x for x in item if callable(x))
    return out
