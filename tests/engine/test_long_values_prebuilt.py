"""Elastic's prebuilt rules on values past ``ignore_above``, through ``scan``.

ECS keyword fields are mapped with ``ignore_above: 1024`` (generated/ecs/ecs_flat.yml;
ecs@mappings' ``all_strings_to_keywords`` for names ECS lacks): a longer string is
not indexed (KeywordFieldMapper), so no term, wildcard or prefix query matches it
and the ``not`` of such a query holds. The rules are found by their shape: a
top-level condition (EQL, or KQL as Vigil translates it) that a wildcard pattern,
``stringContains``, ``startsWith`` or ``endsWith`` puts on a field with a limit.
Each gets an event that fires it, then that event with the field padded past the
limit so that the condition still holds on the whole string: a positive condition
must then stop firing, a negated one must start; with ``match_long_values`` the
twins do the opposite. All prebuilt rules are loaded and scanned together.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime

import orjson
import pytest
from rule_events import Unsupported, _Doc
from shaped_events import put

from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.eql import ast
from vigil.eql import semantics as S
from vigil.rules.model import SCHEDULED_TYPES

NOW = datetime(2026, 12, 1, tzinfo=UTC)
PAD = "x" * 1100
PATTERN_OPS = (":", "like", "like~")
FUNCTIONS = {"stringcontains", "startswith", "endswith"}


def _limited(fld: ast.Field) -> bool:
    return S.field_spec(fld, None).limit is not None


def _padded_value(atom: ast.Expr) -> tuple[ast.Field, str] | None:
    """A field of ``atom`` and a string past its limit that meets ``atom`` in full."""
    match atom:
        case ast.Pattern(op=op, value=ast.Field() as fld, patterns=(ast.Literal(value=str() as p), *_)) if (
            op in PATTERN_OPS and "*" in p and _limited(fld)
        ):
            return fld, p.replace("*", PAD, 1).replace("*", "").replace("?", "x")
        case ast.FunctionCall(name=name, args=(ast.Field() as fld, ast.Literal(value=str() as v))) if (
            name.lower() in FUNCTIONS and _limited(fld) and "*" not in v and "?" not in v
        ):
            return fld, (PAD + v if name.lower() == "endswith" else v + PAD)
    return None


def _cases(rule) -> list[tuple[str, dict, bool]]:
    """(case id, padded event, whether it fires by default) for one rule."""
    query = rule.compiled()
    stmt = query.statement
    if not isinstance(stmt.query, ast.EventQuery) or stmt.pipes:
        return []
    cond = stmt.query.condition
    d = _Doc()
    try:
        d.meet(cond)
    except Unsupported:
        return []
    base = d.document()
    if stmt.query.category is not None:
        put(base, S.path_of(query.options.event_category_field), stmt.query.category)
    if not query.matches(base):
        return []
    loose = dataclasses.replace(rule, _compiled=None, _compile_error=None, match_long_values=True).compiled()
    out = []
    for n, term in enumerate(S.flatten_and([cond])):
        negated = isinstance(term, ast.Not)
        found = _padded_value(term.expr if negated else term)
        if found is None:
            continue
        fld, value = found
        doc = copy.deepcopy(base)
        put(doc, fld.path, value)
        fires = negated  # Elasticsearch: the long value is missing
        if query.matches(doc) != fires or loose.matches(doc) == fires:
            continue  # another condition on the field decides: not this shape
        doc.setdefault("labels", {})["vigil_case"] = case = f"{rule.rule_id}:{n}"
        out.append((case, doc, fires))
    return out


@pytest.fixture(scope="module")
def prebuilt(prebuilt_rules):
    return prebuilt_rules


@pytest.fixture(scope="module")
def cases(prebuilt):
    out = []
    for rule in prebuilt:
        # Threshold and new terms rules alert on groups, not on one event: their own
        # tests replay them (tests/engine/test_replay_prebuilt.py).
        if rule.runnable and rule.type not in SCHEDULED_TYPES:
            out.extend((rule, *c) for c in _cases(rule))
    return out


def _scan(rules, docs, tmp_path, *, long_values: bool, fast: bool) -> set[tuple[str, str]]:
    path = tmp_path / f"long-{long_values}-{fast}.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(d) for d in docs) + b"\n")
    rules = [copy.copy(r) for r in rules]  # the session's rules stay as loaded
    for r in rules:
        r.match_long_values = long_values
        r._compiled = None
    engine = Engine(rules, now=NOW)
    fired = set()
    for alert in scan_paths(engine, [path], fast=fast):
        case = (alert.get("labels") or {}).get("vigil_case")
        if case:
            fired.add((alert["kibana.alert.rule.rule_id"], case))
    return fired


def test_prebuilt_rules_follow_ignore_above(prebuilt, cases, tmp_path):
    rules = [copy.copy(r) for r in prebuilt]
    docs = [doc for _, _, doc, _ in cases]
    positive = {(r.rule_id, c) for r, c, _, fires in cases if not fires}
    negated = {(r.rule_id, c) for r, c, _, fires in cases if fires}
    affected = {r.rule_id for r, *_ in cases}
    print(
        f"\n{len(affected)} prebuilt rules affected: {len({r for r, _ in positive})} by a positive "
        f"condition ({len(positive)} cases), {len({r for r, _ in negated})} by a negated one ({len(negated)})"
    )
    assert len({r for r, _ in positive}) >= 50 and negated
    for fast in (False, True):
        fired = _scan(rules, docs, tmp_path, long_values=False, fast=fast)
        assert not positive & fired, "a long value must not match a positive condition"
        assert negated <= fired, "a long value is missing: the negated condition holds"
    loose = _scan(rules, docs, tmp_path, long_values=True, fast=True)
    assert positive <= loose and not negated & loose, "--match-long-values matches long values"


def test_parquet_path_agrees_on_long_values(prebuilt, cases, tmp_path):
    # Plain vs columnar over the same Parquet file: the SQL condition leaves long
    # strings to the compiled matcher, so both give the same alerts.
    duckdb = pytest.importorskip("duckdb")
    from vigil.engine.columnar import ColumnarReport, scan_parquet
    from vigil.events.parquet import read_parquet

    docs = [doc for _, _, doc, _ in cases]
    src = tmp_path / "long.ndjson"
    src.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    out = tmp_path / "long.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{src}', sample_size=-1)) TO '{out}' (FORMAT parquet)")
    rules = [copy.copy(r) for r in prebuilt if r.runnable]
    for r in rules:
        r._compiled = None
    report = ColumnarReport()
    columnar = sorted(
        a["kibana.alert.uuid"] for a in scan_parquet(Engine(rules, now=NOW), out, report=report)
    )
    alerts = list(Engine(rules, now=NOW).scan(read_parquet(out)))
    assert columnar == sorted(a["kibana.alert.uuid"] for a in alerts) and report.sql_rules
    negated = {c for _, c, _, fires in cases if fires}
    assert negated & {(a.get("labels") or {}).get("vigil_case") for a in alerts}
