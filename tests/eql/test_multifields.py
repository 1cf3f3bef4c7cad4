"""Multi-fields: a query on ``process.name.caseless`` or ``process.command_line.text``
reads the parent's values, indexed as the sub-field (vigil.eql.multifields), on every
path: the compiled matcher, the reference interpreter, KQL, the SQL/Parquet path,
the engine's routing and its fast scan.

Sources: ECS ``generated/ecs/ecs_flat.yml`` (``multi_fields``: ``text`` of type
``match_only_text``), elastic/endpoint-package ``package/endpoint/data_stream/*/fields/
fields.yml`` (``caseless``: keyword, ``normalizer: lowercase``, ``ignore_above: 1024``),
Lucene ``CharacterUtils.toLowerCase`` (LowerCaseFilter: ``Character.toLowerCase`` of
each code point), Elasticsearch ``KeywordFieldType.indexedValueForSearch`` (the query
term goes through the normalizer too).
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from vigil import eql, kql
from vigil.eql import ast, interpreter
from vigil.eql import semantics as S
from vigil.eql.multifields import ecs_multi_field
from vigil.eql.schema import Schema

PROC = {"event": {"category": ["process"]}}


def both(query: str, doc: dict, schema=None) -> bool:
    """The compiled matcher's answer, checked against the reference interpreter."""
    q = eql.compile(query, schema=schema)
    got = q.matches(doc)
    ref = interpreter.matches_event(q.statement.query, doc, schema)
    assert got == ref, (query, doc)
    return got


def proc(**fields) -> dict:
    return {**PROC, "process": fields}


def test_the_field_table_names_the_multi_fields():
    assert ecs_multi_field("process.name.caseless") == ("process.name", "lowercase")
    assert ecs_multi_field("process.command_line.text") == ("process.command_line", None)
    assert ecs_multi_field("file.path.text") == ("file.path", None)
    assert ecs_multi_field("user.name.text") == ("user.name", None)
    # Defend maps caseless on more names than the table keeps.
    assert ecs_multi_field("host.os.name.caseless") == ("host.os.name", "lowercase")
    # process.io.text is a field of its own (ECS wildcard), process.io an object.
    assert ecs_multi_field("process.io.text") is None
    assert ecs_multi_field("process.name") is None


@pytest.mark.parametrize(
    "doc",
    [
        proc(name="CMD.EXE"),
        {**PROC, "process.name": "Cmd.exe"},
        {**PROC, "process": [{"name": ["x", "cmd.EXE"]}]},
    ],
)
def test_caseless_reads_the_parent_in_every_spelling(doc):
    assert both('process where process.name.caseless == "cmd.exe"', doc)
    assert both('process where process.name.caseless == "CMD.exe"', doc)  # the term is normalized too
    assert both('process where process.name.caseless like "cmd*"', doc)  # like: pattern normalized
    assert both('process where process.name.caseless in ("x2", "CMD.EXE")', doc)
    assert both('process where process.name.caseless regex "cmd\\\\.exe"', doc)
    assert both('process where startsWith(process.name.caseless, "CMD")', doc)
    assert not both('process where process.name.caseless != "cmd.exe"', doc)
    assert not both('process where process.name == "cmd.exe"', doc)  # the parent stays exact


def test_a_literal_sub_field_key_is_not_the_multi_field():
    # ES cannot map an object under the keyword process.name: no query sees it.
    assert not both('process where process.name.caseless == "cmd.exe"', proc(name={"caseless": "cmd.exe"}))
    assert not both(
        'process where process.name.caseless == "cmd.exe"', {**PROC, "process.name.caseless": "cmd.exe"}
    )
    doc = {**PROC, "process.name.caseless": "x", "process": {"name": "CMD.exe"}}
    assert both('process where process.name.caseless == "cmd.exe"', doc)


def test_scripts_see_the_normalized_doc_values():
    assert both(
        'process where length(process.name.caseless) == 7 and process.name.caseless : "cmd.exe"',
        proc(name="CMD.EXE"),
    )
    assert both('process where concat(process.name.caseless, "") == "cmd.exe"', proc(name="CMD.EXE"))


# LowerCaseFilter lowers each code point alone (Character.toLowerCase), not as
# String.toLowerCase: İ is i (no combining dot), the Kelvin sign is k, ß stays ß.
@pytest.mark.parametrize(
    ("value", "literal", "hit"),
    [
        ("ÉTÉ.EXE", "été.exe", True),
        ("İx", "ix", True),
        ("İx", "İX", True),
        ("\u212aernel.exe", "kernel.exe", True),
        ("STRASSE.exe", "straße.exe", False),
        ("ẞ.exe", "ß.exe", True),
        ("ΣΑΣ", "σασ", True),  # no final sigma: each code point alone
        ("ΣΑΣ", "σας", False),
    ],
)
def test_the_lowercase_normalizer_outside_ascii(value, literal, hit):
    doc = proc(name=value)
    assert both(f'process where process.name.caseless == "{literal}"', doc) is hit
    assert kql.compile(f'process.name.caseless: "{literal}"').matches(doc) is hit


def test_ignore_above_of_the_sub_field_not_of_the_parent():
    long_name = "a" * 1025 + ".exe"
    assert not both('process where process.name.caseless : "a*"', proc(name=long_name))  # caseless: 1024
    path = "/" + "b" * 2000
    doc = {"event": {"category": ["file"]}, "file": {"path": path}}
    assert not both('file where file.path : "/b*"', doc)  # keyword, ignore_above 1024
    # file.path.text is match_only_text: no ignore_above, so the value is indexed there.
    assert kql.compile("file.path.text: " + "b" * 2000).matches(doc)


def test_text_multi_fields_are_analysed_in_kql():
    doc = {"process": {"command_line": "C:\\x\\WhoAmI.exe /all"}}
    assert kql.compile("process.command_line.text: whoami.exe").matches(doc)
    assert kql.compile('process.command_line.text: "whoami.exe /ALL"').matches(doc)
    assert not kql.compile("process.command_line.text: whoami").matches(doc)
    assert not kql.compile("process.command_line.text: x").matches(
        {"process": {"command_line": {"text": "x"}}}
    )


def test_a_mapping_names_its_own_multi_fields():
    mapping = {
        "properties": {
            "process": {
                "properties": {
                    "name": {
                        "type": "keyword",
                        "fields": {
                            "lc": {"type": "keyword", "normalizer": "lowercase"},
                            "raw": {"type": "keyword"},
                        },
                    }
                }
            }
        }
    }
    schema = Schema.from_mapping(mapping)
    doc = proc(name="CMD.exe")
    assert both('process where process.name.lc == "Cmd.EXE"', doc, schema)
    assert both('process where process.name.raw == "CMD.exe"', doc, schema)
    assert not both('process where process.name.raw == "cmd.exe"', doc, schema)
    spec = S.field_spec(ast.Field(("process", "name", "lc")), schema)
    assert spec.ftype == S.CASELESS and spec.path == ("process", "name")


# --- the prebuilt rules -------------------------------------------------------------------


def _caseless_values(query: str) -> list[str]:
    """The quoted values a prebuilt query compares process.name.caseless with."""
    tree = kql.parse(query)
    out: list[str] = []

    def walk(node):
        from vigil.kql import tree as T

        match node:
            case T.Or(terms=ts) | T.And(terms=ts):
                for t in ts:
                    walk(t)
            case T.Not(query=q):
                walk(q)
            case T.Is(field=f, value=v) if f is not None and f.text == "process.name.caseless":
                if not v.is_wildcard:
                    out.append(v.text)

    walk(tree)
    return out


def test_prebuilt_caseless_values_match_the_process_name_in_any_case(shared):
    rules = Path(shared) / "detection-rules"
    found = 0
    for path in sorted(rules.glob("rules*/**/*.toml")):
        text = path.read_text(encoding="utf-8")
        if "process.name.caseless" not in text:
            continue
        rule = tomllib.loads(text).get("rule", {})
        if rule.get("language") != "kuery":
            continue
        for value in _caseless_values(rule["query"]):
            found += 1
            q = kql.compile(f'process.name.caseless: "{value}"')
            assert q.matches({"process": {"name": value.upper()}}), (path.name, value)
            assert q.matches({"process.name": value.title()}), (path.name, value)
            assert not q.matches({"process": {"name": value + "x"}}), (path.name, value)
    assert found >= 20  # the new_terms rules name dozens of process names this way


# --- the engine: routing anchors and the fast scan -----------------------------------------

RULE = """
[rule]
name = "{name}"
rule_id = "{rule_id}"
description = "d"
risk_score = 21
severity = "low"
type = "{type}"
language = "{language}"
index = ["logs-endpoint.events.*"]
query = '''{query}'''
"""


def test_the_engine_finds_caseless_and_text_rules_plain_and_fast(tmp_path):
    from vigil.engine import Engine
    from vigil.engine.batch import scan_paths
    from vigil.rules.loaders import load_rules

    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    specs = [
        ("eql", "eql", 'process where process.name.caseless == "certutil.exe"'),
        ("query", "kuery", 'process.name.caseless: ("certutil.exe" or "bitsadmin.exe")'),
        ("query", "kuery", "process.command_line.text: urlcache"),
        ("eql", "eql", 'process where process.name.caseless : "bitsadmin*"'),
    ]
    for n, (typ, lang, query) in enumerate(specs):
        body = RULE.format(name=f"r{n}", rule_id=f"id-{n}", type=typ, language=lang, query=query)
        (rules_dir / f"r{n}.toml").write_text(body, encoding="utf-8")
    events = [
        {"process": {"name": "CertUtil.EXE", "command_line": "certutil -URLCache -f http://x"}},
        {"process.name": "BITSADMIN.exe", "process.command_line": "bitsadmin /transfer"},
        {"process": {"name": "notepad.exe", "command_line": "notepad"}},
        {"process": {"name": {"caseless": "certutil.exe"}}},
    ]
    src = tmp_path / "events.ndjson"
    lines = []
    for n, e in enumerate(events):
        doc = {"@timestamp": "2026-11-30T00:00:00Z", "event": {"category": ["process"], "id": str(n)}, **e}
        lines.append(orjson.dumps(doc))
    src.write_bytes(b"\n".join(lines) + b"\n")
    loaded = load_rules([rules_dir])
    assert not loaded.problems, loaded.problems
    rules = loaded.rules
    now = datetime(2026, 12, 1, tzinfo=UTC)
    got = {}
    for fast in (False, True):
        engine = Engine(rules, now=now)
        alerts = list(scan_paths(engine, [src], index="logs-endpoint.events.process-default", fast=fast))
        got[fast] = sorted((a["kibana.alert.rule.name"], a["event"]["id"]) for a in alerts)
    assert got[False] == got[True]
    assert got[True] == [("r0", "0"), ("r1", "0"), ("r1", "1"), ("r2", "0"), ("r3", "1")]
