"""Field types and ``ignore_above`` as Elastic maps them, in EQL and KQL.

ECS (generated/ecs/ecs_flat.yml) maps keyword fields with ``ignore_above: 1024``;
Elasticsearch does not index a longer string (KeywordFieldMapper compares Java's
``String.length()``, UTF-16 code units), gives it no doc value, and the fields API
drops it (KeywordFieldType.valueFetcher): queries, scripts and sequence keys all
see the field missing. ``wildcard`` fields such as ``process.command_line`` have
no limit. Each value of an array is judged alone.
"""

from __future__ import annotations

import orjson
import pytest

from vigil import eql, kql
from vigil.eql import ecs
from vigil.eql import semantics as S
from vigil.eql.interpreter import evaluate
from vigil.eql.query import QueryOptions
from vigil.eql.schema import Schema

LONG = "a" + "x" * 1100
LONG_OPTIONS = QueryOptions(match_long_values=True)


def _event(**fields) -> dict:
    doc: dict = {"event": {"category": "process"}}
    for dotted, value in fields.items():
        node = doc
        *head, last = dotted.split("__")
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value
    return doc


# --- the table -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, mapping, read_as",
    [
        ("process.name", ("keyword", 1024), "keyword"),
        ("process.command_line", ("wildcard", None), "keyword"),  # ECS: wildcard, no limit
        ("process.command_line.text", ("match_only_text", None), "text"),
        ("file.path", ("keyword", 1024), "keyword"),
        ("message", ("match_only_text", None), "text"),
        ("error.message", ("match_only_text", None), "text"),
        ("event.original", ("keyword", None), "keyword"),  # ECS: index false, no ignore_above
        ("url.query", ("keyword", 2083), "keyword"),
        ("process.pid", ("long", None), "long"),
        ("source.ip", ("ip", None), "ip"),
        ("@timestamp", ("date", None), "date"),
        ("process.interactive", ("boolean", None), "boolean"),
        # Elastic packages: the windows package's PowerShell fields
        ("powershell.file.script_block_text", ("text", None), "text"),
        ("powershell.file.script_block_length", ("long", None), "long"),
        ("powershell.file.script_block_entropy_bits", ("float", None), "double"),
        # Elastic Defend's multi-field with a lowercase normalizer
        ("process.command_line.caseless", ("keyword", 1024), "keyword"),
    ],
)
def test_field_table(name, mapping, read_as):
    assert ecs.mapping(name) == mapping
    assert ecs.ecs_type(name) == read_as
    assert Schema.ecs().field_type(name) == read_as


def test_names_the_table_lacks_follow_ecs_mappings_dynamic_templates():
    # x-pack/plugin/core/template-resources/src/main/resources/ecs@mappings.json
    assert ecs.mapping("vendor.some_string") == (None, 1024)  # all_strings_to_keywords
    assert ecs.mapping("Target.process.command_line") == ("wildcard", None)  # *command_line
    assert ecs.mapping("Target.process.name") == ("keyword", None)  # *.name: keyword, no limit
    assert ecs.mapping("vendor.start") == ("date", None)
    assert ecs.mapping("vendor.message") == ("match_only_text", None)
    # a key below a flattened field (network_traffic's http.response.headers)
    assert ecs.mapping("http.response.headers.location") == ("keyword", None)


def test_schema_limits():
    assert Schema.ecs().ignore_above("process.name") == 1024
    assert Schema.ecs().ignore_above("process.command_line") is None
    assert Schema.ecs().matching_long_values().ignore_above("process.name") is None
    assert Schema.dynamic().ignore_above("process.name") is None  # nothing is known
    mapping = {"properties": {"a": {"type": "keyword", "ignore_above": 8}, "b": {"type": "keyword"}}}
    strict = Schema.from_mapping(mapping)
    assert strict.ignore_above("a") == 8 and strict.ignore_above("b") is None


# --- the length Elasticsearch compares -------------------------------------------------------


def test_length_is_counted_in_utf16_code_units():
    assert not S.too_long("a" * 1024, 1024)
    assert S.too_long("a" * 1025, 1024)
    assert not S.too_long("\U0001f600" * 512, 1024)  # 1,024 code units
    assert S.too_long("\U0001f600" * 513, 1024)  # 513 characters, 1,026 code units
    assert S.too_long("é" * 1025, 1024)  # one unit each, as many as characters
    assert not S.too_long("\ud800" * 10, 1024)  # a lone surrogate from JSON does not crash


# --- EQL -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, default, loose",
    [
        ('process where process.name == "' + LONG + '"', False, True),
        ('process where process.name : "a*"', False, True),
        ('process where process.name like~ "A*"', False, True),
        ('process where process.name regex "a.*"', False, True),
        ('process where process.name in ("' + LONG + '", "b")', False, True),
        ('process where startsWith(process.name, "a")', False, True),
        ('process where stringContains(process.name, "xx")', False, True),
        ('process where process.name > "a"', False, True),
        ("process where process.name != null", False, True),
        ("process where process.name == null", True, False),
        ('process where not process.name : "a*"', True, False),
        ('process where process.name != "b"', True, True),
        ('process where process.name != "' + LONG + '"', True, False),
        # scripts read doc values: the long value has none (ReplaceNullChecks: IsNull)
        ("process where length(process.name) > 5", False, True),
        ("process where length(process.name) == null", True, False),
        # a wildcard field has no limit
        ('process where process.command_line : "a*"', True, True),
        ('process where not process.command_line : "a*"', False, False),
    ],
)
def test_a_long_value_is_not_indexed(query, default, loose):
    doc = _event(process__name=LONG, process__command_line=LONG)
    q = eql.compile(query)
    assert q.matches(doc) is default
    assert (evaluate(q.statement.query.condition, doc, None) is True) is default  # the reference interpreter
    assert eql.compile(query, options=LONG_OPTIONS).matches(doc) is loose


def test_each_value_of_an_array_is_judged_alone():
    q = eql.compile('process where process.name : "a*"')
    assert q.matches(_event(process__name=[LONG, "ab"]))
    assert not q.matches(_event(process__name=[LONG, "b"]))
    assert eql.compile('process where not process.name : "a*"').matches(_event(process__name=[LONG, "b"]))
    # dotted keys and nested objects are the same field
    assert not q.matches({"event": {"category": "process"}, "process.name": LONG})
    assert q.matches({"event": {"category": "process"}, "process.name": [LONG, "a1"]})


def test_a_schema_from_a_mapping_uses_its_own_limit():
    schema = Schema.from_mapping({"properties": {"name": {"type": "keyword", "ignore_above": 4}}})
    q = eql.compile('any where name : "ab*"', schema=schema)
    assert q.matches({"name": "abcd"}) and not q.matches({"name": "abcde"})
    assert eql.compile('any where name : "ab*"', schema=schema, options=LONG_OPTIONS).matches(
        {"name": "abcde"}
    )


def test_sequence_keys_are_read_as_the_fields_api_reads_them():
    # the fields API drops a value past ignore_above: the join key is missing
    q = eql.compile("sequence by user.name [process where true] [process where true]")
    docs = [{"@timestamp": n, "event": {"category": "process"}, "user": {"name": LONG}} for n in range(1, 3)]
    loose = eql.compile(
        "sequence by user.name [process where true] [process where true]", options=LONG_OPTIONS
    )
    assert [m.join_keys for m in loose.run(docs)] == [[LONG]]
    assert [m.join_keys for m in q.run(docs)] != [[LONG]]


# --- KQL -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, long_matches",
    [
        ("process.name: a*", False),
        ('process.name: "' + LONG + '"', False),
        ("process.name: *", False),  # exists: the field has no indexed value
        ("not process.name: a*", True),
        ("process.command_line: a*", True),
    ],
)
def test_kql_follows_the_mapping(query, long_matches):
    doc = _event(process__name=LONG, process__command_line=LONG)
    assert kql.compile(query).matches(doc) is long_matches
    if "command_line" not in query:
        assert kql.compile(query, options=LONG_OPTIONS).matches(doc) is not long_matches


# --- the SQL path: long strings are "unknown", the compiled matcher decides ------------------


def test_sql_leaves_long_strings_to_the_compiled_matcher(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    from vigil.eql.sql import event_sql
    from vigil.events.parquet import ParquetFile, row_document

    docs = [
        {"process": {"name": LONG}},
        {"process": {"name": "ab"}},
        {"process": {"name": "\U0001f600" * 513}},
        {"process": {"name": "a" + "\U0001f600" * 400}},
    ]
    src = tmp_path / "docs.ndjson"
    src.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    out = tmp_path / "docs.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{src}')) TO '{out}' (FORMAT parquet)")
    table = ParquetFile.open(out)
    for text in (
        'any where process.name : "a*"',
        'any where not process.name : "a*"',
        "any where process.name != null",
    ):
        q = eql.compile(text)
        kept = {n for n, _ in table.rows(f"({event_sql(q.statement, table.columns)}) IS NOT FALSE")}
        want = {n for n, values in table.rows() if q.matches(row_document(table.names, values))}
        assert want <= kept, text
    assert want == {1, 3}  # process.name != null: the short values only
