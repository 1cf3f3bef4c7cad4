"""EQL rules' ``event_category_override``, ``timestamp_field`` and ``tiebreaker_field``.

Kibana's EQL executor sends a rule's ``event_category_override`` as the EQL search's
``event_category_field``, with its ``timestamp_field`` and ``tiebreaker_field``
(``rule_types/eql/build_eql_search_request.ts`` in Kibana's security_solution
detection engine), so ``info where ...`` in a rule overriding the category with
``event.type`` means ``event.type == "info"``. Every path must read them: the
compiled matcher, routing by category, the fast scan, ``--jobs``, Parquet, ``watch``
(``Engine.process``) and ``serve``; Spark in ``test_spark_category_override.py``.

The prebuilt rules concerned are found by scanning ``../shared/detection-rules``;
their events are built from their own queries (``rule_events.py``).
"""

from __future__ import annotations

import copy
import json
import random
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from rule_events import events_for, put

from vigil.cli import main
from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.eql.fields import lookup
from vigil.events.model import Event
from vigil.events.readers import ReadStats
from vigil.rules.loaders import load_rules, parse_json, parse_ndjson, parse_toml
from vigil.rules.model import rule_from_dict

NOW = datetime(2026, 12, 1, tzinfo=UTC)
DEFAULT_FIELD = "event.category"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


# --- the prebuilt rules that override the category --------------------------------------


def _override_rules(base: Path) -> list[dict]:
    """Every prebuilt rule file whose [rule] sets event_category_override, read as TOML."""
    found = []
    for folder in ("rules", "rules_building_block"):
        for path in sorted((base / folder).rglob("*.toml")):
            text = path.read_text(encoding="utf-8")
            if "event_category_override" not in text:
                continue
            rule = tomllib.loads(text).get("rule", {})
            if "event_category_override" in rule:
                found.append(rule)
    return found


def _case(doc: dict, name: str) -> dict:
    return put(doc, "labels.vigil_case", name)


def _cases(rules: list[dict]) -> tuple[list[dict], list[dict]]:
    """Positive events (the category in the rule's category field only) and their
    negative twins (the category in event.category only), each labelled by rule."""
    positives, negatives = [], []
    for n, rule in enumerate(rules):
        built = events_for(rule["query"], start=datetime(2026, 11, 20, 8, n, tzinfo=UTC))
        field = rule["event_category_override"]
        for doc in built.events:
            pos = copy.deepcopy(doc)
            if built.category is not None:
                put(pos, field, [built.category])
            positives.append(_case(pos, f"{rule['rule_id']}:pos"))
            if built.category is not None and field != DEFAULT_FIELD:
                neg = copy.deepcopy(doc)
                put(neg, DEFAULT_FIELD, [built.category])
                negatives.append(_case(neg, f"{rule['rule_id']}:neg"))
    return positives, negatives


@pytest.fixture(scope="module")
def base(shared) -> Path:
    return shared / "detection-rules"


@pytest.fixture(scope="module")
def overriding(base) -> list[dict]:
    rules = _override_rules(base)
    assert len(rules) >= 10, "the prebuilt rules hold a dozen or more overrides"
    assert any(r["event_category_override"] != DEFAULT_FIELD for r in rules)
    return rules


@pytest.fixture(scope="module")
def prebuilt(base, overriding):
    rules = load_rules([base / "rules", base / "rules_building_block"]).rules
    ids = {r["rule_id"] for r in overriding}
    assert sum(1 for r in rules if r.rule_id in ids and r.runnable) == len(ids)
    return rules


def _write(path: Path, docs: list) -> Path:
    path.write_bytes(b"".join((d if isinstance(d, bytes) else orjson.dumps(d)) + b"\n" for d in docs))
    return path


def _fired(alerts: list[dict]) -> set[tuple[str, str]]:
    """(rule_id, labelled case) of each alert whose event carries a case label."""
    out = set()
    for alert in alerts:
        rid = lookup(alert, "kibana.alert.rule.rule_id")[0]
        for case in lookup(alert, "labels.vigil_case"):
            out.add((rid, case))
    return out


def test_every_override_rule_fires_through_vigil_scan_with_all_prebuilt_rules(
    overriding, base, tmp_path, capsys
):
    positives, negatives = _cases(overriding)
    data = _write(tmp_path / "events.ndjson", positives + negatives)
    code = main(
        [
            "scan",
            "--format",
            "ndjson",
            "--rules",
            str(base / "rules"),
            "--rules",
            str(base / "rules_building_block"),
            str(data),
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    fired = _fired([orjson.loads(line) for line in out.splitlines() if line.strip()])
    missed = [r["name"] for r in overriding if (r["rule_id"], f"{r['rule_id']}:pos") not in fired]
    assert not missed, f"{len(missed)} of {len(overriding)} rules did not fire: {missed}"
    wrong = sorted({rid for rid, case in fired if case == f"{rid}:neg"})
    assert not wrong, "a rule fired on the category in event.category, not in its override field"
    # The twins are real: every rule with a category in another field has one.
    assert len({c for d in negatives for c in lookup(d, "labels.vigil_case")}) == sum(
        1 for r in overriding if r["event_category_override"] != DEFAULT_FIELD
    )


# --- every path gives the same alerts ------------------------------------------------------


def _variants(positives: list[dict], negatives: list[dict]) -> list[dict]:
    """Shapes of the category field routing and pre-filters could get wrong."""
    out = []
    for doc in positives:
        for field in ("event.type",):
            values = lookup(doc, field)
            if values != ["info"]:
                continue
            flat = copy.deepcopy(doc)
            flat["event"].pop("type")
            flat["event.type"] = "info"  # a dotted key, a string
            out.append(flat)
            many = copy.deepcopy(doc)
            many["event"]["type"] = ["change", "info"]  # one value of several
            out.append(many)
            upper = copy.deepcopy(doc)
            upper["event"]["type"] = ["INFO"]  # a keyword compares case-sensitively
            out.append(upper)
            number = copy.deepcopy(doc)
            number["event"]["type"] = 7  # not a string: routing must not drop the rules
            out.append(number)
            other = copy.deepcopy(doc)
            other["event"]["type"] = ["change"]
            other["event"]["category"] = ["info"]
            out.append(other)
    return out + negatives


@pytest.fixture(scope="module")
def mixed(overriding, tmp_path_factory) -> Path:
    """Generated endpoint events with the override cases and their variants among them,
    a stretch of late events written early."""
    gen_events = pytest.importorskip("gen_events")
    rng = random.Random(14)
    positives, negatives = _cases(overriding)
    lines = [orjson.dumps(d) for d in gen_events.generate(1500, seed=14)]
    for doc in positives + _variants(positives, negatives):
        lines.insert(rng.randrange(len(lines)), orjson.dumps(doc))
    lines[10:10] = lines[-60:]
    del lines[-60:]
    return _write(tmp_path_factory.mktemp("override") / "events.ndjson", lines)


def _ids(rules, data, **kw) -> tuple[list[str], ReadStats, Engine]:
    engine = Engine(rules, now=NOW)
    stats = ReadStats()
    alerts = list(scan_paths(engine, [data], stats=stats, **kw))
    return [a["kibana.alert.uuid"] for a in alerts], stats, engine


def _too_few_alerts(engine: Engine, overriding: list[dict]) -> dict[str, int]:
    """Rules with fewer alerts than their cases give: an event rule fires on its positive
    and on its dotted and several-valued variants, a sequence once."""
    out = {}
    for r in overriding:
        got = engine.stats[r["rule_id"]]["alerts"]
        if got < (3 if events_for(r["query"]).category is not None else 1):
            out[r["name"]] = got
    return out


def test_plain_fast_and_jobs_agree_on_the_override(prebuilt, overriding, mixed, monkeypatch):
    from vigil.engine import batch

    monkeypatch.setattr(batch, "CHUNK", 64 << 10)  # several byte ranges from a small file
    ids = {r["rule_id"] for r in overriding}
    only = [r for r in prebuilt if r.rule_id in ids]
    assert len(only) == len(overriding)
    for rules in (prebuilt, only):  # --jobs splits the rules, then the bytes
        plain, pstats, pengine = _ids(rules, mixed, fast=False)
        # The routed per-event path and the columnar core, whichever the rule count picks.
        routed, rstats, _ = _ids(rules, mixed, core=False)
        core, cstats, _ = _ids(rules, mixed, core=True)
        jobs, jstats, _ = _ids(rules, mixed, jobs=2)
        assert not _too_few_alerts(pengine, overriding)
        assert routed == plain and core == plain and jobs == plain
        assert rstats.events == pstats.events == cstats.events == jstats.events


def test_parquet_runs_the_override_as_sql(overriding, prebuilt, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    from vigil.engine.columnar import ColumnarReport, scan_parquet
    from vigil.events.parquet import read_parquet

    gen_events = pytest.importorskip("gen_events")
    positives, negatives = _cases(overriding)
    docs = list(gen_events.generate(400, seed=3))
    # One shape per column (lists of strings), so that the file runs as SQL.
    shifted = []
    for doc in positives:
        if lookup(doc, "event.type") == ["info"]:
            other = copy.deepcopy(doc)
            other["event"]["type"] = ["change", "info"]
            shifted.append(other)
    docs[50:50] = positives + negatives + shifted
    src = _write(tmp_path / "events.ndjson", docs)
    path = tmp_path / "events.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{src}')) TO '{path}' (FORMAT parquet)")
    ids = {r["rule_id"] for r in overriding}
    event_rules = [r for r in prebuilt if r.rule_id in ids and r.compiled().kind == "event"]
    # The prebuilt ones call stringContains, which has no SQL form: this one runs in DuckDB.
    sql_rule = rule_from_dict({**EQL, "rule_id": "sql", "query": 'info where event.outcome == "success"'})
    engine = Engine([*event_rules, sql_rule], now=NOW)
    report = ColumnarReport()
    sql = [a["kibana.alert.uuid"] for a in scan_parquet(engine, path, report=report)]
    assert report.sql_rules == ["sql"] and report.unconfirmed == 0
    plain_engine = Engine([*event_rules, sql_rule], now=NOW)
    plain = [a["kibana.alert.uuid"] for a in plain_engine.scan(read_parquet(path))]
    assert sorted(sql) == sorted(plain)
    # Each positive and its several-valued copy; never a twin.
    assert {r.rule_id: engine.stats[r.rule_id]["alerts"] for r in event_rules} == dict.fromkeys(
        (r.rule_id for r in event_rules), 2
    )
    assert engine.stats["sql"]["alerts"] >= 2 * len(event_rules)
    assert engine.stats["sql"] == plain_engine.stats["sql"]


# --- watch and serve -----------------------------------------------------------------------


def test_watch_path_engine_process(overriding, prebuilt):
    """``vigil watch`` hands each event to Engine.process as it comes."""
    positives, negatives = _cases(overriding)
    engine = Engine(prebuilt, now=NOW)
    alerts = []
    for doc in positives + negatives:
        ds = doc["data_stream"]
        alerts += engine.process(Event(doc, index=f"{ds['type']}-{ds['dataset']}-{ds['namespace']}"))
    alerts += engine.finish()
    fired = _fired(alerts)
    assert {rid for rid, case in fired if case.endswith(":pos") and case.startswith(rid)} == {
        r["rule_id"] for r in overriding
    }
    assert not [1 for rid, case in fired if case == f"{rid}:neg"]


def test_serve_runs_the_override(overriding, base, tmp_path):
    from vigil.scheduler.clock import ManualClock
    from vigil.scheduler.runner import Scheduler
    from vigil.store.alerts import AlertStore, to_millis
    from vigil.store.events import EventStore, Write
    from vigil.store.runs import RunStore

    files = [p for p in (base / "rules").rglob("*.toml") if "event_category_override" in p.read_text()]
    rules = load_rules(files).rules
    positives, negatives = _cases(overriding)
    now = max(to_millis(d["@timestamp"]) for d in positives) + 60_000
    db = tmp_path / "v.db"
    s = Scheduler(rules, EventStore(db), AlertStore(db), RunStore(db), clock=ManualClock(now))
    writes = []
    for doc in positives + negatives:
        ds = doc["data_stream"]
        doc["event"].pop("ingested", None)  # the store stamps it, as an ingest pipeline
        writes.append(Write(f"{ds['type']}-{ds['dataset']}-{ds['namespace']}", doc))
    s.events.write(writes, now - 30_000)
    runs = s.tick()
    assert runs and not [r.error for r in runs if r.error]
    fired = _fired(s.alerts.list())
    assert {rid for rid, case in fired if case == f"{rid}:pos"} == {r["rule_id"] for r in overriding}
    assert not [1 for rid, case in fired if case == f"{rid}:neg"]


# --- the rule model ------------------------------------------------------------------------

EQL = {
    "rule_id": "r-1",
    "name": "Console login",
    "type": "eql",
    "language": "eql",
    "index": ["logs-*"],
    "query": 'info where event.action == "ConsoleLogin"',
    "event_category_override": "event.type",
    "timestamp_field": "event.created",
    "tiebreaker_field": "event.sequence",
}


def test_the_three_rule_formats_carry_the_parameters():
    toml = "[rule]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in EQL.items())
    loaded = [
        parse_toml(toml, "r.toml").rules,
        parse_ndjson(json.dumps(EQL) + '\n{"exported_count": 1}\n', "r.ndjson").rules,
        parse_json(json.dumps({"attributes": EQL, "type": "security-rule"}), "r.json").rules,
    ]
    for (rule,) in loaded:
        options = rule.compiled().options
        assert (options.event_category_field, options.timestamp_field, options.tiebreaker_field) == (
            "event.type",
            "event.created",
            "event.sequence",
        )
        assert rule.compiled().matches({"event": {"type": "info", "action": "ConsoleLogin"}})
        assert not rule.compiled().matches({"event": {"category": "info", "action": "ConsoleLogin"}})


def test_bad_parameters_are_reported_not_run():
    bad = parse_ndjson(json.dumps({**EQL, "timestamp_field": ["a"]}), "r.ndjson")
    assert not bad.rules and "timestamp_field" in bad.problems[0].message
    # Elasticsearch refuses an empty event_category_field or timestamp_field
    # (EqlSearchRequest.validate); Kibana leaves out an empty tiebreaker_field.
    for key in ("event_category_override", "timestamp_field"):
        rule = rule_from_dict({**EQL, key: ""})
        assert not rule.runnable and key in rule.why_not_runnable
    rule = rule_from_dict({**EQL, "tiebreaker_field": ""})
    assert rule.runnable and rule.compiled().options.tiebreaker_field is None


def test_alert_parameters_carry_them_as_kibana_does():
    from vigil.engine.alerts import build_alert

    doc = {"@timestamp": "2026-11-20T08:00:00Z", "event": {"type": ["info"], "action": "ConsoleLogin"}}
    alert = build_alert(rule_from_dict(EQL), Event(doc, "logs-a-default"), now=NOW)
    params = alert["kibana.alert.rule.parameters"]
    assert params["event_category_override"] == "event.type"
    assert params["timestamp_field"] == "event.created"
    assert params["tiebreaker_field"] == "event.sequence"
    plain = {k: v for k, v in EQL.items() if k not in ("event_category_override", "timestamp_field")}
    plain["tiebreaker_field"] = None
    params = build_alert(rule_from_dict(plain), Event(doc, "logs-a-default"), now=NOW)[
        "kibana.alert.rule.parameters"
    ]
    assert not {"event_category_override", "timestamp_field", "tiebreaker_field"} & set(params)


def test_rules_show_names_them(tmp_path, capsys):
    (tmp_path / "r.ndjson").write_text(json.dumps(EQL) + "\n")
    assert main(["rules", "show", "--format", "table", "--rules", str(tmp_path), "r-1"]) == 0
    out = capsys.readouterr().out
    assert "Event category field: event.type" in out
    assert "Timestamp field: event.created" in out
    assert "Tiebreaker field: event.sequence" in out


# --- routing --------------------------------------------------------------------------------


def test_routing_reads_the_rules_category_field():
    rules = [
        rule_from_dict(EQL),
        rule_from_dict(
            {**EQL, "rule_id": "r-2", "event_category_override": None, "query": "info where true"}
        ),
    ]
    router = Engine(rules, now=NOW).router

    def reached(doc):
        return {p.rule.rule_id for p in router.route(Event(doc, "logs-a-default"))}

    assert reached({"event": {"type": ["info"]}}) == {"r-1"}
    assert reached({"event": {"category": ["info"]}}) == {"r-2"}
    assert reached({"event.type": "info", "event.category": "info"}) == {"r-1", "r-2"}
    assert reached({"event": {"type": ["change"], "category": "process"}}) == set()
    assert reached({"event": {"type": 7}}) == {"r-1"}  # an odd shape reaches its field's rules
    # Values of the override field no rule names share one route.
    for n in range(40):
        router.group(Event({"event": {"type": [f"type-{n}"], "category": ["process"]}}, "logs-a-default"))
    assert len(router._groups) == 1


# --- timestamp_field and tiebreaker_field order the events ------------------------------------


def _sequence_rule(**params) -> dict:
    return {
        "rule_id": "seq",
        "name": "Seq",
        "type": "eql",
        "language": "eql",
        "index": ["logs-*"],
        "query": 'sequence by host.id [any where event.action == "a"] [any where event.action == "b"]',
        **params,
    }


def _seq_events(**times) -> list[dict]:
    a = {"host": {"id": "h"}, "event": {"action": "a"}, "@timestamp": "2026-11-20T08:00:02Z"}
    b = {"host": {"id": "h"}, "event": {"action": "b"}, "@timestamp": "2026-11-20T08:00:01Z"}
    for action, value in times.items():
        doc = a if action == "a" else b
        doc["event"].update(value)
    return [b, a]  # b first in the data


@pytest.mark.parametrize(
    ("params", "fields", "fires"),
    [
        ({}, {}, False),  # @timestamp puts b before a
        (
            {"timestamp_field": "event.created"},
            {"a": {"created": "2026-11-20T08:00:00Z"}, "b": {"created": "2026-11-20T08:00:05Z"}},
            True,
        ),
        # Equal times: the tiebreaker orders them, not their place in the data.
        (
            {"timestamp_field": "event.created", "tiebreaker_field": "event.sequence"},
            {
                "a": {"created": "2026-11-20T08:00:00Z", "sequence": 1},
                "b": {"created": "2026-11-20T08:00:00Z", "sequence": 2},
            },
            True,
        ),
        (
            {"timestamp_field": "event.created"},
            {
                "a": {"created": "2026-11-20T08:00:00Z", "sequence": 1},
                "b": {"created": "2026-11-20T08:00:00Z", "sequence": 2},
            },
            False,
        ),
    ],
)
def test_timestamp_and_tiebreaker_fields_order_a_sequence(tmp_path, params, fields, fires):
    from vigil.scheduler.clock import ManualClock
    from vigil.scheduler.runner import Scheduler
    from vigil.store.alerts import AlertStore, to_millis
    from vigil.store.events import EventStore, Write
    from vigil.store.runs import RunStore

    rule = rule_from_dict(_sequence_rule(**params))
    docs = _seq_events(**fields)
    data = _write(tmp_path / "events.ndjson", docs)
    paths = {
        "plain": _ids([rule], data, fast=False)[0],
        "fast": _ids([rule], data)[0],
    }
    now = to_millis("2026-11-20T08:01:00Z")
    db = tmp_path / "v.db"
    s = Scheduler([rule], EventStore(db), AlertStore(db), RunStore(db), clock=ManualClock(now))
    s.events.write([Write("logs-a-default", d) for d in docs], now - 1000)
    s.tick()
    paths["serve"] = [a["kibana.alert.uuid"] for a in s.alerts.list()]
    expected = 3 if fires else 0  # the sequence's alert and one per event
    assert {name: len(ids) for name, ids in paths.items()} == dict.fromkeys(paths, expected)
