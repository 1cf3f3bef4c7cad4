"""Parquet input: the columnar scan (event rules filtered inside DuckDB) raises exactly
the alerts of the plain path (every row read as an event and run through the Engine).

The file mixes generated Elastic Defend events (bench/gen_events.py) with traps:
case variants, arrays, missing fields, NULLs under ``not``, ``?`` wildcards, ``in~``,
rows of other data streams, and a flat dotted column beside the nested one.
"""

from __future__ import annotations

import copy
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from split_values import rule_groups, split_docs

from vigil.engine import Engine
from vigil.events.readers import ReadStats
from vigil.rules.loaders import bundled_rules, load_rules

duckdb = pytest.importorskip("duckdb")

from vigil.engine.columnar import ColumnarReport, scan_parquet  # noqa: E402
from vigil.events.parquet import read_parquet  # noqa: E402

NOW = datetime(2026, 12, 1, tzinfo=UTC)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
gen_events = pytest.importorskip("gen_events")

TRAP_RULES = """
[metadata]
creation_date = "2026/01/01"
maturity = "production"
updated_date = "2026/01/01"

[rule]
author = ["Vigil tests"]
description = "Trap: {name}"
from = "now-9m"
index = ["logs-endpoint.events.*"]
language = "eql"
license = "Elastic License v2"
name = "{name}"
risk_score = 21
rule_id = "{rule_id}"
severity = "low"
type = "eql"
query = \'\'\'
{query}
\'\'\'
"""

TRAPS = {
    "wildcard-question": 'file where file.name like~ "module-setup?.SH"',
    "in-insensitive": 'process where process.name in~ ("CURL", "Bash") and not user.name in~ ("ROOT")',
    "not-missing": 'file where not file.extension in ("sh", "conf") and process.name : "c*"',
    "array-any": 'any where event.type == "creation" and event.category : "FILE"',
    "has-value": "network where destination.port != null and not source.port < 2000",
    "dotted-flat": 'file where file.path : "/USR/LIB/DRACUT/*"',
}


def _trap_docs(rng: random.Random) -> list[dict]:
    ts = datetime(2026, 11, 1, tzinfo=UTC)
    base = [gen_events._dracut_event(rng, ts, n) for n in range(12)]
    out = []
    for n, ev in enumerate(base):
        ev = copy.deepcopy(ev)
        kind = n % 12
        if kind == 0:
            ev["file"]["path"] = ev["file"]["path"].upper()  # like~ matches whatever the case
        elif kind == 1:
            ev["process"]["executable"] = "/USR/BIN/DPKG"  # `in` is case-sensitive: not excluded
        elif kind == 2:
            del ev["process"]["executable"]  # != null fails
        elif kind == 3:
            ev["process"]["executable"] = None  # a NULL is missing too
        elif kind == 4:
            ev["file"]["extension"] = None  # not (extension in ...) holds on a NULL
            ev["process"]["executable"] = "/usr/bin/curl"
        elif kind == 5:
            ev["process"]["executable"] = "/dev/fd/3"  # like~ "/dev/fd/*" excludes it
        elif kind == 6:
            ev["process"]["executable"] = "/tmp/vmisXbin"  # "." is not a wildcard
        elif kind == 7:
            ev["process"]["name"], ev["file"]["name"] = "sed", "SED9"  # `:` is case-insensitive
            ev["process"]["executable"] = "/usr/bin/sed"
        elif kind == 8:
            ev["event"]["type"] = ["info", "creation"]  # any value of an array
        elif kind == 9:
            ev["host"]["os"]["type"] = "Linux"  # == is case-sensitive
        elif kind == 10:
            ev["data_stream"]["dataset"] = "endpoint.events.process"  # another index: not the rule's
        else:
            ev["file.path"] = ev["file"].pop("path").replace("/usr/lib", "/USR/LIB")  # flat dotted key
        out.append(ev)
    return out


@pytest.fixture(scope="module")
def event_rules(shared) -> list:
    loaded = load_rules([shared / "detection-rules" / "rules"])
    return [r for r in loaded.rules if r.type == "eql" and r.runnable]


@pytest.fixture(scope="module")
def events_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("parquet")
    rng = random.Random(5)
    docs = list(gen_events.generate(3000, seed=11))
    docs[100:100] = _trap_docs(rng)
    docs[2000:2000] = _trap_docs(rng)
    src = d / "events.ndjson"
    src.write_bytes(b"".join(orjson.dumps(doc) + b"\n" for doc in docs))
    out = d / "events.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{src}')) TO '{out}' (FORMAT parquet)")
    return out


def _plain(rules, path, **kw) -> list[str]:
    return [a["kibana.alert.uuid"] for a in Engine(rules, now=NOW).scan(read_parquet(path, **kw))]


def _columnar(rules, path, **kw) -> tuple[list[str], ColumnarReport, Engine]:
    engine = Engine(rules, now=NOW)
    report = ColumnarReport()
    ids = [a["kibana.alert.uuid"] for a in scan_parquet(engine, path, report=report, **kw)]
    return ids, report, engine


def test_seed_rule_same_alerts_as_the_plain_path(events_file):
    rules = bundled_rules().rules
    plain = _plain(rules, events_file)
    ids, report, engine = _columnar(rules, events_file)
    assert report.sql_rules == [rules[0].rule_id] and not report.plain_rules
    assert report.unconfirmed == 0
    assert ids == plain  # same alerts, same order
    assert len(plain) >= 5
    # DuckDB handed over only the matching rows, not the file.
    assert report.sql_matches == len(plain) < report.rows
    assert engine.stats[rules[0].rule_id]["alerts"] == len(plain)


def test_trap_rules_same_alerts(events_file, tmp_path):
    for n, (name, query) in enumerate(TRAPS.items()):
        body = TRAP_RULES.format(name=name, rule_id=f"00000000-0000-4000-8000-{n:012d}", query=query)
        (tmp_path / f"{name}.toml").write_text(body)
    rules = load_rules([tmp_path]).rules
    assert len(rules) == len(TRAPS)
    ids, report, engine = _columnar(rules, events_file)
    assert sorted(report.sql_rules) == sorted(r.rule_id for r in rules)
    assert report.unconfirmed == 0
    plain = _plain(rules, events_file)
    assert sorted(ids) == sorted(plain)
    # Every trap fires somewhere, so agreement is not the agreement of empty sets.
    assert all(engine.stats[r.rule_id]["alerts"] > 0 for r in rules), engine.stats


def test_index_given_routes_every_row(events_file):
    rules = bundled_rules().rules
    for index in ("logs-endpoint.events.file-default", "logs-other-default"):
        plain = _plain(rules, events_file, index=index)
        ids, report, _ = _columnar(rules, events_file, index=index)
        assert ids == plain
        assert report.unconfirmed == 0
    assert _plain(rules, events_file, index="logs-other-default") == []


def test_prebuilt_event_rules_same_alerts(events_file, event_rules):
    ids, report, engine = _columnar(event_rules, events_file)
    assert report.unconfirmed == 0
    # A good share of the prebuilt event rules has a SQL form; the rest ran in Python.
    assert len(report.sql_rules) >= 200, len(report.sql_rules)
    plain = _plain(event_rules, events_file)
    assert sorted(ids) == sorted(plain)
    assert len(plain) > 0


def test_same_field_conjunctions_on_split_arrays(event_rules, tmp_path):
    # The prebuilt rules that compare one field twice in an `and`, over their events
    # with the values split across arrays (every value a list, as Parquet needs one type
    # per column), and a trap of the same shape that must run as SQL.
    src, out = tmp_path / "split.ndjson", tmp_path / "split.parquet"
    src.write_bytes(b"".join(orjson.dumps(doc) + b"\n" for doc in split_docs(event_rules, lists=True)))
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{src}')) TO '{out}' (FORMAT parquet)")
    query = 'iam where event.type == "user" and event.type == "creation"'
    body = TRAP_RULES.format(
        name="same-field-and", rule_id="00000000-0000-4000-8000-100000000000", query=query
    )
    (tmp_path / "trap.toml").write_text(body)
    trap = load_rules([tmp_path / "trap.toml"]).rules[0]
    rules = [*event_rules, trap]
    ids, report, engine = _columnar(rules, out)
    assert report.unconfirmed == 0
    assert trap.rule_id in report.sql_rules and engine.stats[trap.rule_id]["alerts"] > 0
    in_sql = [r for r in event_rules if r.rule_id in report.sql_rules and rule_groups(r.query)]
    assert len(in_sql) >= 15 and sum(engine.stats[r.rule_id]["alerts"] for r in in_sql) >= 15
    assert sorted(ids) == sorted(_plain(rules, out))
    assert len(ids) > 20


def test_bad_file_is_one_counted_problem(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 not really")
    stats = ReadStats()
    assert list(scan_parquet(Engine(bundled_rules().rules), bad, stats=stats)) == []
    assert stats.files_failed == 1 and "Parquet" in stats.problems[0].message
    stats = ReadStats()
    assert list(read_parquet(bad, stats=stats)) == []
    assert stats.files_failed == 1


def test_vendor_rows_take_the_plain_path(tmp_path):
    # SentinelOne Cloud Funnel rows must be normalized first: no column filter applies.
    src = tmp_path / "s1.ndjson"
    src.write_bytes(b'{"meta.event.name": "FILECREATION", "tgt.file.path": "/usr/lib/dracut/modules.d/x"}\n')
    out = tmp_path / "s1.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{src}')) TO '{out}' (FORMAT parquet)")
    rules = bundled_rules().rules
    ids, report, _ = _columnar(rules, out)
    assert report.plain_reason == "SentinelOne events" and not report.sql_rules
    assert ids == _plain(rules, out)
