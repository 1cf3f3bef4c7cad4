"""Case-insensitive comparisons fold as Elasticsearch runs each one.

- On a field against constants (``:``, ``in~``, ``like~``, ``regex~``, ``fn~()`` as a
  query), EQL's QueryTranslator builds term, wildcard, prefix or regexp queries with
  ``case_insensitive``: automata from AutomatonQueries.toCaseInsensitiveChar, which
  folds ASCII letters only (server/.../common/lucene/search/AutomatonQueries.java,
  ES 7.10 to 9.x). Elasticsearch's main branch replaced it with Lucene's Unicode case
  folding (elastic/elasticsearch#153513, unreleased); Vigil follows the released ones.
- On a computed value (a script), ``:`` and ``in~`` are StringComparisons.
  insensitiveEquals (Java ``compareToIgnoreCase``) and the ``~`` functions lower-case
  with ``toLowerCase(Locale.ROOT)`` (EndsWithFunctionProcessor, StartsWithFunction-
  Processor, IndexOfFunctionProcessor): full Unicode.

Each case runs on the compiled matcher, the reference interpreter and the SQL path.
"""

from __future__ import annotations

import orjson
import pytest

from vigil import eql, kql
from vigil.eql import interpreter
from vigil.eql import semantics as S


def both(query: str, doc: dict) -> bool:
    q = eql.compile(query)
    got = q.matches(doc)
    assert got == interpreter.matches_event(q.statement.query, doc), (query, doc)
    return got


def name(value) -> dict:
    return {"process": {"name": value}}


# (value, other): same letters, different case, outside ASCII.
PAIRS = [("É", "é"), ("İ", "i"), ("\u212a", "k"), ("ẞ", "ß"), ("Ω", "ω")]


@pytest.mark.parametrize(("value", "other"), PAIRS)
def test_queries_on_a_field_fold_ascii_only(value, other):
    doc = name(value + "X")
    for q in (
        'any where process.name : "{L}x"',
        'any where process.name in~ ("{L}x", "zz")',
        'any where process.name like~ "{L}x"',
        'any where process.name like~ "{L}*"',
        'any where process.name regex~ "{L}x"',
        'any where startsWith~(process.name, "{L}")',
        'any where endsWith~(process.name, "{L}x")',
        'any where stringContains~(process.name, "{L}x")',
    ):
        assert not both(q.replace("{L}", other), doc), q
        assert both(q.replace("{L}", value), doc), q  # the same letter matches, X folds
    # The compiled top level (inline reads) takes the same road.
    assert not both(f'any where process.name in~ ("{other}x") and true', doc)
    assert both(f'any where not process.name : "{other}x"', doc)  # must_not of a miss


# compareToIgnoreCase: equal when the upper cases, or their lower cases, are.
@pytest.mark.parametrize(
    ("value", "literal", "hit"),
    [
        ("É", "é", True),
        ("İ", "i", True),  # Character.toLowerCase('İ') is 'i'
        ("ı", "I", True),  # Character.toUpperCase('ı') is 'I'
        ("\u212a", "k", True),
        ("ẞ", "ß", True),
        ("ß", "SS", False),  # no one-to-many mappings
        ("ſ", "S", True),
    ],
)
def test_scripts_compare_with_compare_to_ignore_case(value, literal, hit):
    doc = name(value)
    assert both(f'any where concat(process.name, "") : "{literal}"', doc) is hit
    assert both(f'any where concat(process.name, "") in~ ("{literal}", "zz")', doc) is hit
    assert S.script_equals_insensitive(value, literal) is hit


def test_script_functions_lower_case_all_of_unicode():
    # toLowerCase(Locale.ROOT): É is é, the Kelvin sign is k, İ is i + U+0307.
    doc = name("ÉTÉ \u212aernel")
    assert both('any where startsWith~(concat(process.name, ""), "été")', doc)
    assert both('any where endsWith~(concat(process.name, ""), "KERNEL")', doc)
    assert both('any where stringContains~(concat(process.name, ""), "é k")', doc)
    assert not both('any where startsWith~(process.name, "été")', doc)  # a query: ASCII only


def test_kql_on_keyword_fields_stays_case_sensitive_and_caseless_normalizes():
    doc = {"process": {"name": "ÉTÉ.exe"}}
    assert not kql.compile("process.name: été.exe").matches(doc)
    assert kql.compile("process.name.caseless: été.exe").matches(doc)  # LowerCaseFilter


duckdb = pytest.importorskip("duckdb")

DOCS = [
    {"process": {"name": "ÉTÉ.exe", "command_line": "X"}},
    {"process": {"name": "été.EXE"}},
    {"process": {"name": "CMD.exe"}},
    {"process": {"name": "cmd.EXE", "command_line": "Y"}},
    {"process": {"name": "\u212aernel"}},
    {"process": {"name": "kernel"}},
    {"process.name": "İx"},
    {"process": {"name": "ix"}},
    {},
]

QUERIES = [
    'any where process.name : "été.exe"',
    'any where process.name : "cmd.exe"',
    'any where process.name in~ ("kernel", "ix")',
    'any where not process.name : "cmd.exe"',
    'any where process.name.caseless == "cmd.exe"',
    'any where process.name.caseless == "CMD.EXE"',
    'any where process.name.caseless == "été.exe"',
    'any where process.name.caseless == "kernel"',
    'any where process.name.caseless == "İX"',
    'any where process.name.caseless != "cmd.exe"',
    'any where process.name.caseless in ("kernel", "été.exe")',
    'any where process.name.caseless like "cmd*"',
    'any where process.name.caseless : "*EXE"',
    'any where not process.name.caseless like "*.exe"',
]


def test_the_sql_path_keeps_what_python_keeps(tmp_path):
    from vigil.eql.sql import Unsupported, event_sql
    from vigil.events.parquet import ParquetFile, row_document

    (tmp_path / "d.ndjson").write_bytes(b"\n".join(map(orjson.dumps, DOCS)))
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{tmp_path}/d.ndjson')) TO '{tmp_path}/d.parquet'")
    pq = ParquetFile.open(tmp_path / "d.parquet")
    translated = 0
    for text in QUERIES:
        query = eql.compile(text)
        try:
            cond = event_sql(query.statement, pq.columns)
        except Unsupported:
            continue  # runs in Python
        translated += 1
        kept = {n for n, _ in pq.rows(f"({cond}) IS NOT FALSE")}
        want = {n for n, row in pq.rows() if query.matches(row_document(pq.names, row))}
        # Never a row dropped; an extra one only where text outside ASCII made it "unknown".
        assert want <= kept and all(not orjson.dumps(DOCS[n]).isascii() for n in kept - want), text
    assert translated >= len(QUERIES) - 2


def test_the_answers_the_sql_path_is_checked_against():
    def rows(text):
        return [n for n, d in enumerate(DOCS) if eql.compile(text).matches(d)]

    assert rows('any where process.name : "été.exe"') == [1]
    assert rows('any where process.name.caseless == "été.exe"') == [0, 1]
    assert rows('any where process.name.caseless == "kernel"') == [4, 5]
    assert rows('any where process.name.caseless == "İX"') == [6, 7]
    assert rows('any where process.name.caseless != "cmd.exe"') == [0, 1, 4, 5, 6, 7, 8]
