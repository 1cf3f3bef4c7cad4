"""KQL rules on every path of the engine: the columnar scan (SQL inside DuckDB, then
confirmed in Python), the fast NDJSON path and the plain path raise the same alerts,
and each alert is an event the compiled query matches on its own."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.events.model import Event
from vigil.rules.model import rule_from_dict

duckdb = pytest.importorskip("duckdb")

from vigil.engine.columnar import ColumnarReport, scan_parquet  # noqa: E402
from vigil.events.parquet import read_parquet  # noqa: E402

NOW = datetime(2026, 12, 1, tzinfo=UTC)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
gen_events = pytest.importorskip("gen_events")

QUERIES = {
    "term": "event.category: process and process.name: (bash or sh)",
    "wildcard": "process.executable: /usr/* and not process.name: python*",
    "literal-question-mark": "process.args: *\\*?*",
    "exists": "event.category: network and process.name: *",
    "not-exists": "event.category: process and not source.ip: *",
    "range": "source.port >= 60000 or destination.port < 1100",
    "not-range": "event.category: network and not source.port > 2000",
    "cidr": "destination.ip: (10.0.0.0/8 or 192.168.0.0/16)",
    "not-cidr": "event.category: network and not destination.ip: 10.0.0.0/8",
    "case": "host.os.type: Linux",
    "same-field": "event.type: start and event.type: process_started",
}


def _rules():
    return [
        rule_from_dict({"rule_id": name, "name": name, "type": "query", "language": "kuery", "query": q})
        for name, q in QUERIES.items()
    ]


def _docs() -> list[dict]:
    docs = list(gen_events.generate(2500, seed=3))
    extra = []
    for n, doc in enumerate(docs[:40]):
        doc = orjson.loads(orjson.dumps(doc))
        if n % 4 == 0:
            doc["event"]["type"] = ["start", "process_started"]
        elif n % 4 == 1:
            doc.setdefault("process", {})["args"] = ["a*?b", "c"]
        elif n % 4 == 2:
            doc.setdefault("host", {}).setdefault("os", {})["type"] = "Linux"
        else:
            doc["source"] = {"port": [100, 65000]}
        extra.append(doc)
    return docs + extra


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("kql")
    src = d / "events.ndjson"
    src.write_bytes(b"".join(orjson.dumps(doc) + b"\n" for doc in _docs()))
    out = d / "events.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{src}')) TO '{out}' (FORMAT parquet)")
    return src, out


def test_columnar_fast_and_plain_paths_agree(files):
    ndjson, parquet = files
    rules = _rules()
    assert all(r.runnable for r in rules)
    plain = [a["kibana.alert.uuid"] for a in Engine(rules, now=NOW).scan(read_parquet(parquet))]
    report = ColumnarReport()
    columnar = [a["kibana.alert.uuid"] for a in scan_paths_columnar(rules, parquet, report)]
    assert sorted(columnar) == sorted(plain)
    assert report.unconfirmed == 0 and report.sql_rules, report
    fast = [a["kibana.alert.uuid"] for a in scan_paths(Engine(rules, now=NOW), [str(ndjson)], fast=True)]
    slow = [a["kibana.alert.uuid"] for a in scan_paths(Engine(rules, now=NOW), [str(ndjson)], fast=False)]
    assert sorted(fast) == sorted(slow)
    assert len(fast) == len(plain)


def scan_paths_columnar(rules, parquet, report):
    return scan_parquet(Engine(rules, now=NOW), parquet, report=report)


def test_every_rule_fires_and_alerts_are_exactly_the_matching_events(files):
    ndjson, _ = files
    docs = [orjson.loads(line) for line in ndjson.read_bytes().splitlines()]
    rules = _rules()
    alerts = list(Engine(rules, now=NOW).scan(Event(doc) for doc in docs))
    for rule in rules:
        expected = sum(1 for doc in docs if rule.compiled().matches(doc))
        got = sum(1 for a in alerts if a["kibana.alert.rule.rule_id"] == rule.rule_id)
        assert got == expected > 0, rule.rule_id
