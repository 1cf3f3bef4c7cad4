"""Elastic's prebuilt rules that carry ``filters``, through ``vigil scan`` with every
prebuilt rule loaded.

Kibana ANDs a rule's filters with its query (security_solution
``rule_types/utils/get_query_filter.ts``; kbn-es-query ``es_query/from_filters.ts``
puts a ``meta.negate`` filter in ``must_not``). The rules are found by scanning
``../shared/detection-rules`` for ``filters``. For each, an event its query matches
and its filters keep, which must alert, and for each negated filter a twin the
query alone still matches but that filter excludes, which must not (Vigil alerted
on those before it ran filters). Whether a filter keeps an event is decided here
from the filter's own query DSL, with Python's ``re`` as the reference for Lucene's
wildcard (``*``, ``?``, ``\\`` escapes; ``case_insensitive`` folds ASCII only).
"""

from __future__ import annotations

import copy
import re
import sys
import tomllib
from pathlib import Path

import orjson
import pytest

from vigil import kql
from vigil.cli import main
from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.eql.fields import lookup

sys.path.insert(0, str(Path(__file__).parent))
from shaped_events import put, satisfy  # noqa: E402
from test_category_override import _fired, _write  # noqa: E402

STAMP = "2026-11-20T08:00:00Z"
# Every query DSL shape the prebuilt rules' filters use; a new one fails the test.
SHAPES = {"wildcard", "exists"}


def _filtered_rules(base: Path) -> list[dict]:
    found = []
    for folder in ("rules", "rules_building_block"):
        for path in sorted((base / folder).rglob("*.toml")):
            text = path.read_text(encoding="utf-8")
            if "filters" not in text:
                continue
            rule = tomllib.loads(text).get("rule", {})
            if rule.get("filters"):
                found.append(rule)
    return found


def _clause(flt: dict) -> tuple[str, dict]:
    query = flt.get("query") or {k: v for k, v in flt.items() if k not in ("meta", "$state")}
    ((kind, body),) = query.items()
    return kind, body


def _wildcard(body: dict) -> tuple[str, str, bool]:
    ((name, params),) = body.items()
    return name, params["value"], bool(params.get("case_insensitive"))


def _lucene_re(pattern: str, insensitive: bool) -> re.Pattern:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE | re.ASCII if insensitive else 0))


def _fill(pattern: str, insensitive: bool) -> str:
    """A value the wildcard matches (upper-cased when case-insensitive, to fold)."""
    text = re.sub(r"\\(.)|[*?]", lambda m: m.group(1) or ("x" if m.group(0) == "?" else ""), pattern)
    return text.upper() if insensitive else text


def _holds(flt: dict, doc: dict) -> bool:
    kind, body = _clause(flt)
    if kind == "exists":
        return bool([v for v in lookup(doc, body["field"]) if v is not None])
    name, pattern, insensitive = _wildcard(body)
    rx = _lucene_re(pattern, insensitive)
    return any(isinstance(v, str) and rx.fullmatch(v) for v in lookup(doc, name))


def _kept(rule: dict, doc: dict) -> bool:
    return all(_holds(f, doc) != bool(f.get("meta", {}).get("negate")) for f in rule["filters"])


def _cases(rules: list[dict]) -> tuple[list[dict], list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    """Events, the (rule_id, case) pairs that must alert and those that must not, and
    the rules no event could be built for."""
    events, must, must_not, unserved = [], [], [], []
    for rule in rules:
        query = kql.compile(rule["query"])  # the query alone, as Vigil ran it before
        base = satisfy(query.statement.query.condition, {}, query.matches)
        if base is None:
            unserved.append(rule["name"])
            continue
        kept = copy.deepcopy(base)
        for flt in rule["filters"]:
            kind, body = _clause(flt)
            if kind == "wildcard" and not flt.get("meta", {}).get("negate"):
                name, pattern, insensitive = _wildcard(body)
                put(kept, tuple(name.split(".")), _fill(pattern, insensitive))
        new_terms = rule.get("new_terms", {}).get("value", []) if rule["type"] == "new_terms" else []
        twins = []
        for n, flt in enumerate(rule["filters"]):
            if not flt.get("meta", {}).get("negate"):
                continue
            kind, body = _clause(flt)
            twin = copy.deepcopy(kept)
            name = body["field"] if kind == "exists" else _wildcard(body)[0]
            value = "vigil-present" if kind == "exists" else _fill(*_wildcard(body)[1:])
            put(twin, tuple(name.split(".")), value)
            twins.append((f"{rule['rule_id']}:out{n}", twin, {name}))
        for case, doc, fixed in [(f"{rule['rule_id']}:kept", kept, set()), *twins]:
            for field in new_terms:  # a value no other case has: a new term
                if field not in fixed:  # the filter's own value is the twin's new term
                    put(doc, tuple(field.split(".")), f"vigil-{case}")
            doc["@timestamp"] = STAMP
            put(doc, ("labels", "vigil_case"), case)
            if not query.matches(doc):
                continue  # the filter's value breaks the query itself: no twin here
            should_alert = _kept(rule, doc)
            (must if should_alert else must_not).append((rule["rule_id"], case))
            events.append(doc)
    return events, must, must_not, unserved


@pytest.fixture(scope="module")
def base(shared) -> Path:
    return shared / "detection-rules"


@pytest.fixture(scope="module")
def filtered(base) -> list[dict]:
    from vigil.rules.model import rule_from_dict

    rules = _filtered_rules(base)
    assert len(rules) >= 15, "the prebuilt rules hold a score of rules with filters"
    shapes = {_clause(f)[0] for r in rules for f in r["filters"]}
    assert shapes <= SHAPES, f"new query DSL shapes in prebuilt filters: {shapes - SHAPES}"
    # The KQL query and new terms rules Vigil runs (an indicator match rule alerts only on
    # indicators: tests/engine/test_indicator_match.py).
    return [r for r in rules if r["type"] in ("query", "new_terms") and rule_from_dict(r).runnable]


def test_prebuilt_rules_with_filters_alert_as_kibana_does(filtered, base, tmp_path, capsys):
    events, must, must_not, unserved = _cases(filtered)
    assert len(unserved) <= 2, unserved
    assert len({rid for rid, _ in must}) >= len(filtered) - len(unserved)
    # Every rule has a twin its filters exclude.
    assert {rid for rid, _ in must_not} == {r["rule_id"] for r in filtered if r["name"] not in unserved}
    data = _write(tmp_path / "events.ndjson", events)
    rules = [a for folder in ("rules", "rules_building_block") for a in ("--rules", str(base / folder))]
    assert main(["scan", "--format", "ndjson", *rules, str(data)]) == 0
    out, _ = capsys.readouterr()
    fired = _fired([orjson.loads(line) for line in out.splitlines() if line.strip()])
    missed = [c for c in must if c not in fired]
    assert not missed, f"{len(missed)} of {len(must)} kept events did not alert: {missed}"
    wrong = [c for c in must_not if c in fired]
    assert not wrong, f"{len(wrong)} of {len(must_not)} filtered-out events alerted: {wrong}"


def _scan_ids(rules, data: Path, **kw) -> list[str]:
    return [a["kibana.alert.uuid"] for a in scan_paths(Engine(rules), [data], **kw)]


def test_every_path_runs_the_filters(filtered, base, tmp_path, monkeypatch):
    """The plain and routed per-event paths, the columnar core, ``--jobs`` and Parquet
    (SQL in DuckDB) give the same alerts: the filter is part of the compiled statement."""
    from vigil.engine import batch
    from vigil.rules.loaders import load_rules

    monkeypatch.setattr(batch, "CHUNK", 4 << 10)  # several byte ranges from a small file
    events, must, must_not, _ = _cases(filtered)
    data = _write(tmp_path / "events.ndjson", events)
    ids = {r["rule_id"] for r in filtered}
    rules = [r for r in load_rules([base / "rules", base / "rules_building_block"]).rules if r.rule_id in ids]
    event_rules = [r for r in rules if r.type == "query"]
    plain_alerts = list(scan_paths(Engine(event_rules), [data], fast=False))
    plain = [a["kibana.alert.uuid"] for a in plain_alerts]
    fired = _fired(plain_alerts)
    kept = {c for c in must if c[0] in {r.rule_id for r in event_rules}}
    assert kept and kept <= fired and not fired & set(must_not)
    assert _scan_ids(event_rules, data, core=False) == plain
    assert _scan_ids(event_rules, data, core=True) == plain
    assert _scan_ids(event_rules, data, jobs=2) == plain
    duckdb = pytest.importorskip("duckdb")
    from vigil.engine.columnar import ColumnarReport, scan_parquet
    from vigil.events.parquet import read_parquet

    path = tmp_path / "events.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{data}')) TO '{path}' (FORMAT parquet)")
    report = ColumnarReport()
    columnar = [a["kibana.alert.uuid"] for a in scan_parquet(Engine(event_rules), path, report=report)]
    flat = [a["kibana.alert.uuid"] for a in Engine(event_rules).scan(read_parquet(path))]
    assert sorted(columnar) == sorted(flat) and len(flat) == len(plain)
    assert report.unconfirmed == 0, report
