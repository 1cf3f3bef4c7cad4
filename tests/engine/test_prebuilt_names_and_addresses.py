"""Elastic's prebuilt rules that read back-quoted field names or ip fields, run whole.

Two classes of rules are found by scanning ``../shared/detection-rules`` for their shape:

- rules naming a field back-quoted with characters outside identifiers
  (`` `kubernetes.audit.annotations.authorization_k8s_io/decision` ``): Elasticsearch
  joins a name's parts with dots and resolves it against the full field paths, and its
  document parsing expands dotted keys into objects, so the Kubernetes integration's
  nested objects, dotted keys and any mix of both are the one field;
- rules testing an ip field against addresses or CIDR blocks (EQL ``cidrMatch``,
  ``==``, ``in``; KQL terms such as the "to/from the Internet" rules'
  ``not destination.ip: (10.0.0.0/8 or ...)``): an ip field stores every address on
  16 bytes (Lucene's InetAddressPoint, ES's IpFieldMapper), so ``::ffff:10.1.2.3``, as
  dual-stack sockets report it, is ``10.1.2.3``.

Every rule of a class gets events built from its own query (``shaped_events.py``) and
written as the class requires (nested names; IPv4-mapped addresses); all prebuilt
rules are loaded and run over them through the scan paths (plain, fast, ``--jobs``),
and each rule must alert on its events. Its negative twin (one top-level condition
on the class's field made false: for an exclusion of private ranges, a mapped
internal address) must not.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from shaped_events import (
    ABSENT,
    _ip_candidates,
    _query,
    get,
    is_ip,
    map_ips,
    public,
    put,
    satisfy,
    top_conjuncts,
)

from vigil import eql
from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.eql import ast
from vigil.eql.query import QueryOptions
from vigil.eql.tokens import tokenize
from vigil.events.readers import ReadStats
from vigil.rules.model import SCHEDULED_TYPES

NOW = datetime(2026, 12, 1, tzinfo=UTC)
_IDENT = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@")


@pytest.fixture(scope="module")
def prebuilt(prebuilt_rules):
    assert sum(1 for r in prebuilt_rules if r.runnable) > 1000
    return prebuilt_rules


# --- finding the classes ------------------------------------------------------------


def quoted_paths(rule) -> set[tuple[str, ...]]:
    """Paths of the fields the rule back-quotes with a character outside identifiers."""
    if rule.query_language != "eql" or "`" not in (rule.query or ""):
        return set()
    names = set()
    for tok in tokenize(rule.query):
        if tok.kind == "quoted_ident" and not set(tok.value) <= _IDENT:
            names.add(tok.value)
    if not names:
        return set()
    stmt = rule.compiled().statement
    fields = {n.path for n in ast.walk(stmt) if isinstance(n, ast.Field)}
    return {p for p in fields if any(name in ".".join(p) for name in names)}


def ip_paths(rule) -> set[tuple[str, ...]]:
    """Paths of ip fields the rule tests against addresses or CIDR blocks."""
    out = set()
    for n in ast.walk(rule.compiled().statement):
        fields = ()
        if isinstance(n, ast.FunctionCall) and n.name.lower() == "cidrmatch" and n.args:
            fields = n.args[:1]
        elif isinstance(n, ast.Comparison):
            fields = (n.left, n.right)
        elif isinstance(n, ast.In | ast.Pattern):
            fields = (n.value,)
        for f in fields:
            if isinstance(f, ast.Field) and is_ip(f.path):
                out.add(f.path)
    return out


def classes(rules) -> dict[str, list]:
    found: dict[str, list] = {"quoted": [], "cidr": [], "ip_compare": []}
    for r in rules:
        # Threshold and new terms rules alert on groups, not on one event: their own
        # tests replay them (tests/engine/test_replay_prebuilt.py).
        if not r.runnable or r.type in SCHEDULED_TYPES:
            continue
        if quoted_paths(r):
            found["quoted"].append(r)
        paths = ip_paths(r)
        if paths:
            has_cidr = any(
                isinstance(n, ast.FunctionCall) and n.name.lower() == "cidrmatch"
                for n in ast.walk(r.compiled().statement)
            )
            found["cidr" if has_cidr else "ip_compare"].append(r)
    return found


# --- events of one rule ---------------------------------------------------------------


def _stages(rule):
    """(event query, join keys, how many events) per stage that needs events."""
    q = rule.compiled().statement.query
    if isinstance(q, ast.EventQuery):
        return [(q, (), 1)]
    stages = [s for s in q.stages if not getattr(s, "missing", False)]
    return [(s.query, s.keys, getattr(s, "runs", 1)) for s in stages]


def _checker(query: ast.EventQuery, options: QueryOptions):
    compiled = eql.compile(ast.Statement(query), options=options)
    return compiled.matches


def build(rule, case: str, start: datetime, paths: set) -> tuple[list[dict], list[dict]] | None:
    """(events, twin events) for the rule, plain: None when no event can be built.
    The twin has one top-level condition on one of ``paths`` made false."""
    options = rule.compiled().options
    events, twins, twinned = [], [], False
    chosen: dict = {}  # join key values, as the first stage chose them
    for query, keys, runs in _stages(rule):
        base: dict = {}
        if query.category is not None:
            put(base, tuple(options.event_category_field.split(".")), query.category)
        key_paths = [k.path for k in keys if isinstance(k, ast.Field)]
        for p in key_paths:
            put(base, p, chosen.get(p, _key(p, case)))
        check = _checker(query, options)
        # An ip key may have to meet the stage's conditions: only the first stage chooses.
        fixed = frozenset(p for p in key_paths if p in chosen or not is_ip(p))
        doc = satisfy(query.condition, base, check, fixed)
        if doc is None:
            return None
        for p in key_paths:
            chosen.setdefault(p, get(doc, p))
        twin = None if twinned else _twin(query.condition, doc, paths, check)
        if twin is None and not twinned and isinstance(rule.compiled().statement.query, ast.Sequence):
            # A join key on the field: another value there and the events do not join.
            for p in key_paths:
                if p in paths:
                    twin = _copy_with(doc, p, "vigil-other")
                    break
        twinned = twinned or twin is not None
        for _ in range(runs):
            events.append(orjson.loads(orjson.dumps(doc)))
            twins.append(orjson.loads(orjson.dumps(twin if twin is not None else doc)))
    if not twinned:
        twins = []
    for k, (e, t) in enumerate(zip(events, twins or events, strict=True)):
        # 10 ms apart: within any maxspan, even of 60 runs.
        e["@timestamp"] = _iso(start + timedelta(milliseconds=10 * k))
        if twins:
            t["@timestamp"] = _iso(start + timedelta(minutes=30, milliseconds=10 * k))
            _rekey(t, f"{case}-key", f"{case}-twin-key")
    return events, twins


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key(path, case: str) -> str:
    """A join key value of its own per case (an address on an ip field)."""
    if is_ip(path):
        n = int(case[1:].split("-")[0])
        return f"11.{n // 250}.{n % 250}.1"
    return f"{case}-key"


def _rekey(doc, old, new):
    for k, v in doc.items():
        if isinstance(v, str) and old in v:
            doc[k] = v.replace(old, new)
        elif isinstance(v, dict):
            _rekey(v, old, new)


def _twin(condition, doc, paths, check) -> dict | None:
    """``doc`` with one top-level condition on a path of ``paths`` made false, or None."""
    for term in top_conjuncts(condition):
        fields = {n.path for n in ast.walk(term) if isinstance(n, ast.Field)}
        hit = fields & paths
        if len(fields) != 1 or not hit:
            continue
        (path,) = hit
        proposals = _ip_candidates(term) + public(path) if is_ip(path) else ["vigil-other", ABSENT]
        for value in proposals:
            twin = _copy_with(doc, path, value)
            if not _query(term, True).matches(twin) and not check(twin):
                return twin
    return None


def _copy_with(doc, path, value):
    twin = orjson.loads(orjson.dumps(doc))
    if value is ABSENT:
        node = twin
        for key in path[:-1]:
            node = node.get(key, {})
        node.pop(path[-1], None)
        return twin
    return put(twin, path, value)


def _index(rule) -> str | None:
    for pattern in rule.index or []:
        if not pattern.startswith("-"):
            return pattern.replace("*", "vigil").replace(":", "")
    return None


def dotted(doc: dict, paths: set, how: str) -> dict:
    """The document with each of ``paths`` written flat (one dotted key at the top) or
    half flat (the first key an object, the rest one dotted key)."""
    out = orjson.loads(orjson.dumps(doc))
    for path in paths:
        node, parents = out, []
        for key in path[:-1]:
            if not isinstance(node, dict) or key not in node:
                break
            parents.append((node, key))
            node = node[key]
        else:
            if not isinstance(node, dict) or path[-1] not in node:
                continue
            value = node.pop(path[-1])
            if how == "flat":
                out[".".join(path)] = value
            else:
                out.setdefault(path[0], {})[".".join(path[1:])] = value
            for parent, key in reversed(parents):
                if parent[key] == {}:
                    del parent[key]
    return out


# --- the run ------------------------------------------------------------------------------


def _alerted(rules, data: Path, *, fast: bool, jobs: int = 1) -> dict[str, set[str]]:
    """rule_id -> the cases (event id prefixes) its alerts come from."""
    out: dict[str, set[str]] = defaultdict(set)
    engine = Engine(rules, now=NOW)
    for alert in scan_paths(engine, [data], stats=ReadStats(), fast=fast, jobs=jobs):
        for ancestor in alert.get("kibana.alert.ancestors", []):
            out[alert["kibana.alert.rule.rule_id"]].add(ancestor["id"].split("/")[0])
    return out


@pytest.fixture(scope="module")
def cases(prebuilt, tmp_path_factory):
    found = classes(prebuilt)
    lines: list[bytes] = []
    wanted: dict[str, list[tuple[str, str, bool]]] = defaultdict(list)  # class -> (rule_id, case, fires)
    unserved: dict[str, list[str]] = defaultdict(list)
    start = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    times: dict[datetime, str] = {}  # an event's time -> its case, shape aside
    n = 0
    for kind, rules in found.items():
        for rule in rules:
            paths = quoted_paths(rule) if kind == "quoted" else ip_paths(rule)
            n += 1
            built = build(rule, f"c{n}", start + timedelta(hours=n), paths)
            if built is None:
                unserved[kind].append(rule.name)
                continue
            events, twins = built
            shapes = (
                {"mapped": map_ips}
                if kind != "quoted"
                else {
                    "nested": lambda d: d,
                    "flat": lambda d, p=paths: dotted(d, p, "flat"),
                    "half": lambda d, p=paths: dotted(d, p, "half"),
                }
            )
            index = _index(rule)
            for shape, write in shapes.items():
                for label, docs, fires in (("pos", events, True), ("twin", twins, False)):
                    if not docs:
                        continue
                    case = f"c{n}-{shape}-{label}"
                    if shape != "nested" and shape != "mapped":
                        # A distinct join key per shape, so shapes never pair up.
                        docs = [
                            orjson.loads(orjson.dumps(d).replace(b"-key", f"-{shape}-key".encode()))
                            for d in docs
                        ]
                    for k, doc in enumerate(docs):
                        times[datetime.fromisoformat(doc["@timestamp"])] = f"c{n}-{label}"
                        hit = {"_id": f"{case}/{k}", "_source": write(doc)}
                        if index:
                            hit["_index"] = index
                        lines.append(orjson.dumps(hit))
                    wanted[kind].append((rule.rule_id, case, fires))
    data = tmp_path_factory.mktemp("shaped") / "events.ndjson"
    data.write_bytes(b"\n".join(lines) + b"\n")
    return found, wanted, unserved, data, times


def test_the_classes_are_found(cases):
    found, wanted, unserved, _, _ = cases
    counts = {k: len(v) for k, v in found.items()}
    print("prebuilt rules per class:", counts, "not served:", dict(unserved))
    assert counts["quoted"] >= 8
    assert counts["cidr"] >= 60
    assert counts["ip_compare"] >= 20
    # Every rule of a class gets its events: none is left out.
    assert not any(unserved.values()), dict(unserved)
    # And nearly every one a negative twin too (some rules test the field only inside an `or`).
    for kind in found:
        twins = {rid for rid, case, fires in wanted[kind] if not fires}
        assert len(twins) >= 0.75 * len(found[kind]), (kind, len(twins), len(found[kind]))


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
def test_each_rule_fires_on_its_events_and_not_on_its_twin(prebuilt, cases, fast):
    found, wanted, _, data, _ = cases
    alerted = _alerted(prebuilt, data, fast=fast)
    missed = [
        (kind, rid, case)
        for kind, rows in wanted.items()
        for rid, case, fires in rows
        if fires and case not in alerted[rid]
    ]
    false = [
        (kind, rid, case)
        for kind, rows in wanted.items()
        for rid, case, fires in rows
        if not fires and case in alerted[rid]
    ]
    assert not missed, missed
    assert not false, false


def test_jobs_give_the_same_alerts(prebuilt, cases, monkeypatch):
    from vigil.engine import batch

    _, _, _, data, _ = cases
    monkeypatch.setattr(batch, "CHUNK", 16 << 10)
    assert _alerted(prebuilt, data, fast=True, jobs=2) == _alerted(prebuilt, data, fast=False)


def test_parquet_columnar_and_plain_paths_fire_the_same(prebuilt, cases, tmp_path):
    """The same events in a Parquet file (no index: every rule reads every row), through
    DuckDB's SQL filter and through the plain reader: the same alerts, and each event
    rule fires on its events and not on its twin's (known by the events' times)."""
    duckdb = pytest.importorskip("duckdb")
    from vigil.engine.columnar import ColumnarReport, scan_parquet
    from vigil.events.parquet import read_parquet

    _, wanted, _, data, times = cases
    src = tmp_path / "sources.ndjson"
    rows = [orjson.loads(line)["_source"] for line in data.read_bytes().split(b"\n") if line]
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = tmp_path / "events.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{src}', sample_size=-1)) TO '{out}' (FORMAT parquet)")
    report = ColumnarReport()
    columnar = list(scan_parquet(Engine(prebuilt, now=NOW), out, report=report))
    plain = list(Engine(prebuilt, now=NOW).scan(read_parquet(out)))
    assert report.unconfirmed == 0
    assert sorted(a["kibana.alert.uuid"] for a in columnar) == sorted(a["kibana.alert.uuid"] for a in plain)
    fired: dict[str, set[str]] = defaultdict(set)
    for a in columnar:
        when = a.get("kibana.alert.original_time")
        if when:
            fired[a["kibana.alert.rule.rule_id"]].add(
                times.get(datetime.fromisoformat(when.replace("Z", "+00:00")), "")
            )
    # Event rules (a sequence's join keys go through the Parquet file's column types).
    single = {r.rule_id for rules in cases[0].values() for r in rules if r.compiled().kind == "event"}
    checked = 0
    for rows in wanted.values():
        for rid, case, fires in rows:
            if rid in single:
                n, _, label = case.split("-")
                assert (f"{n}-{label}" in fired[rid]) == fires, (rid, case)
                checked += 1
    assert checked >= 50
