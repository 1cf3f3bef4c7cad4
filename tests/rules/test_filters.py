"""Rule ``filters`` (Kibana's filter bar query DSL) with Elasticsearch's meaning.

Kibana ANDs a rule's filters with its query: ``getQueryFilter`` (security_solution
``rule_types/utils/get_query_filter.ts``) and the EQL request's ``filter``
(``eql/build_eql_search_request.ts``), through kbn-es-query ``es_query/from_filters.ts``
(disabled dropped, ``negate`` into ``must_not``), ``migrate_filter.ts`` and
``from_combined_filter.ts``. Each query DSL clause is checked against the meaning
Elasticsearch's query builders give it.
"""

from __future__ import annotations

import pytest

from vigil.rules.filters import FilterUnsupported, lucene_wildcard, query_condition
from vigil.rules.model import rule_from_dict


def _rule(query: str, filters, *, type_: str = "query", language: str = "kuery", **extra):
    data = {"rule_id": "r", "name": "r", "type": type_, "query": query, "filters": filters, **extra}
    if type_ != "eql":
        data["language"] = language
    return rule_from_dict(data)


def _flt(query: dict, **meta) -> dict:
    return {"meta": meta, "query": query, "$state": {"store": "appState"}}


def _matches(rule, doc: dict) -> bool:
    return rule.compiled().matches(doc)


def _q(query: dict, doc: dict) -> bool:
    """One query DSL clause as the only filter of a match-everything KQL rule."""
    return _matches(_rule("event.kind: *", [_flt(query)]), {"event": {"kind": "event"}, **doc})


WIN = "C:\\Program Files\\App\\tool.exe"


# --- wildcard: WildcardQuery (Lucene), case_insensitive via AutomatonQueries (ES) ---


def test_lucene_wildcard_syntax_escapes_and_wildcards():
    # WildcardQuery.toAutomaton: `*` any run, `?` one character, `\` escapes the next,
    # a trailing `\` stays itself.
    assert lucene_wildcard("a\\*b*c?d\\") == (["a*b", "c", "d\\"], "*?")
    assert lucene_wildcard("C:\\\\x") == (["C:\\x"], "")


@pytest.mark.parametrize(
    ("pattern", "value", "hit"),
    [
        ("?:\\\\Program Files\\\\*", WIN, True),
        ("?:\\\\program files\\\\*", WIN, False),  # case-sensitive without case_insensitive
        ("C:\\Program Files\\App\\tool.exe", WIN, False),  # `\P` is `P`: no backslash left
        ("C:\\Program Files\\App\\tool.exe", "C:Program FilesApptool.exe", True),
        ("a\\*b", "a*b", True),  # an escaped `*` is literal
        ("a\\*b", "axxb", False),
        ("a\\?b*", "a?bcd", True),
        ("a?b", "ab", False),  # `?` is exactly one character
    ],
)
def test_wildcard(pattern, value, hit):
    assert _q({"wildcard": {"file.path": {"value": pattern}}}, {"file": {"path": value}}) is hit


def test_wildcard_case_insensitive_folds_ascii_only():
    q = {"wildcard": {"file.path": {"value": "*PROGRAM*", "case_insensitive": True}}}
    assert _q(q, {"file": {"path": WIN}})
    # AutomatonQueries.toCaseInsensitiveChar folds code points below 128 only.
    q = {"wildcard": {"file.path": {"value": "*É*", "case_insensitive": True}}}
    assert not _q(q, {"file": {"path": "café"}})
    assert _q(q, {"file": {"path": "cafÉ"}})


def test_wildcard_key_short_form_and_arrays():
    # WildcardQueryBuilder reads `wildcard` as `value`, and `{field: "pattern"}`.
    assert _q({"wildcard": {"file.path": {"wildcard": "*.exe"}}}, {"file": {"path": WIN}})
    assert _q({"wildcard": {"file.path": "*.exe"}}, {"file": {"path": ["a.txt", WIN]}})
    assert not _q({"wildcard": {"file.path": "*.exe"}}, {"file": {"path": "a.txt"}})
    assert not _q({"wildcard": {"file.path": "*"}}, {})  # a missing field matches nothing


# --- term, terms, match, match_phrase, prefix, exists, range, bool ---


def test_term_is_exact_and_case_insensitive_folds():
    assert _q({"term": {"process.name": "cmd.exe"}}, {"process": {"name": "cmd.exe"}})
    assert not _q({"term": {"process.name": "cmd.exe"}}, {"process": {"name": "CMD.EXE"}})
    assert not _q({"term": {"process.name": "cmd*"}}, {"process": {"name": "cmd.exe"}})  # no wildcard
    q = {"term": {"process.name": {"value": "cmd.exe", "case_insensitive": True}}}
    assert _q(q, {"process": {"name": "CMD.EXE"}})


def test_term_on_long_and_ip_fields():
    assert _q({"term": {"process.pid": 4}}, {"process": {"pid": 4}})
    assert not _q({"term": {"process.pid": 4}}, {"process": {"pid": 5}})
    # IpFieldMapper.termQuery: a CIDR block, on 16 bytes (mapped IPv4 is IPv4).
    assert _q({"term": {"source.ip": "10.0.0.0/8"}}, {"source": {"ip": "::ffff:10.1.2.3"}})


def test_terms_is_any_value():
    q = {"terms": {"process.name": ["a.exe", "b.exe"], "boost": 1.0}}
    assert _q(q, {"process": {"name": "b.exe"}})
    assert not _q(q, {"process": {"name": "c.exe"}})
    assert not _q({"terms": {"process.name": []}}, {"process": {"name": "c.exe"}})


def test_match_and_match_phrase_on_keyword_are_exact_terms():
    # A keyword field's search analyzer is the keyword analyzer: the whole text, one term.
    for kind in ("match", "match_phrase"):
        assert _q({kind: {"process.name": "cmd.exe"}}, {"process": {"name": "cmd.exe"}})
        assert _q({kind: {"process.name": {"query": "cmd.exe"}}}, {"process": {"name": "cmd.exe"}})
        assert not _q({kind: {"process.name": "cmd"}}, {"process": {"name": "cmd.exe"}})


def test_match_and_match_phrase_on_text_fields_analyse():
    doc = {"message": "The quick brown fox"}
    assert _q({"match": {"message": "FOX jumps"}}, doc)  # any analysed token
    assert not _q({"match_phrase": {"message": "fox quick"}}, doc)  # tokens in a row
    assert _q({"match_phrase": {"message": "Quick Brown"}}, doc)


def test_deprecated_match_phrase_filter_is_migrated():
    # migrate_filter.ts: {"match": {f: {"query": v, "type": "phrase"}}} is match_phrase.
    flt = {"meta": {}, "query": {"match": {"process.name": {"query": "cmd.exe", "type": "phrase"}}}}
    rule = _rule("event.kind: *", [flt])
    assert _matches(rule, {"event": {"kind": "e"}, "process": {"name": "cmd.exe"}})
    assert not _matches(rule, {"event": {"kind": "e"}, "process": {"name": "x"}})


def test_prefix_is_literal():
    assert _q({"prefix": {"file.path": "C:\\Program"}}, {"file": {"path": WIN}})
    assert not _q({"prefix": {"file.path": "C:\\Prog*m"}}, {"file": {"path": WIN}})
    q = {"prefix": {"file.path": {"value": "c:\\program", "case_insensitive": True}}}
    assert _q(q, {"file": {"path": WIN}})


def test_exists():
    assert _q({"exists": {"field": "user.name"}}, {"user": {"name": "a"}})
    assert not _q({"exists": {"field": "user.name"}}, {"user": {"name": None}})
    assert not _q({"exists": {"field": "user.name"}}, {})


def test_range_on_long_and_ip():
    q = {"range": {"process.pid": {"gte": 10, "lt": 20}}}
    assert _q(q, {"process": {"pid": 10}})
    assert not _q(q, {"process": {"pid": 20}})
    # The old from/to form: both bounds included unless include_* says otherwise.
    q = {"range": {"process.pid": {"from": 10, "to": 20, "include_upper": False}}}
    assert _q(q, {"process": {"pid": 10}}) and not _q(q, {"process": {"pid": 20}})
    q = {"range": {"source.ip": {"gte": "10.0.0.0", "lte": "10.255.255.255"}}}
    assert _q(q, {"source": {"ip": "10.2.3.4"}}) and not _q(q, {"source": {"ip": "11.0.0.1"}})


def test_bool_clauses_and_minimum_should_match():
    a = {"term": {"process.name": "a"}}
    b = {"term": {"user.name": "b"}}
    c = {"term": {"host.name": "c"}}
    doc = {"process": {"name": "a"}, "user": {"name": "b"}}
    assert _q({"bool": {"must": [a], "filter": b}}, doc)
    assert not _q({"bool": {"must": [a], "must_not": [b]}}, doc)
    assert _q({"bool": {"should": [c, a]}}, doc)  # only should clauses: one must match
    assert not _q({"bool": {"should": [c]}}, doc)
    # Beside a required clause should clauses are optional (Lucene BooleanQuery).
    assert _q({"bool": {"filter": [a], "should": [c]}}, doc)
    assert not _q({"bool": {"filter": [a], "should": [c], "minimum_should_match": 1}}, doc)
    # Queries.calculateMinShouldMatch: counts, percentages, negatives.
    assert _q({"bool": {"should": [a, b, c], "minimum_should_match": 2}}, doc)
    assert not _q({"bool": {"should": [a, b, c], "minimum_should_match": "100%"}}, doc)
    assert _q({"bool": {"should": [a, b, c], "minimum_should_match": "-1"}}, doc)
    assert not _q({"bool": {"should": [a, b], "minimum_should_match": 3}}, doc)
    assert _q({"bool": {}}, doc)  # an empty bool matches everything
    assert _q({"match_all": {}}, doc) and not _q({"match_none": {}}, doc)


# --- Kibana's filter objects ---


def test_negate_disabled_and_old_exists_shape():
    doc = {"event": {"kind": "e"}, "file": {"path": WIN}}
    q = {"wildcard": {"file.path": {"value": "*.exe"}}}
    assert not _matches(_rule("event.kind: *", [_flt(q, negate=True)]), doc)
    assert _matches(_rule("event.kind: *", [_flt(q, negate=False)]), doc)
    assert _matches(_rule("event.kind: *", [_flt(q, negate=True, disabled=True)]), doc)
    # `negate === true` / `=== false` only: another value puts the filter in no clause.
    assert _matches(_rule("event.kind: *", [_flt(q, negate="true")]), doc)
    # The old shape, the query beside meta (migrate_filter.ts moves it under query).
    old = {"exists": {"field": "user_agent.original"}, "meta": {"negate": True, "index": "x"}}
    assert _matches(_rule("event.kind: *", [old]), doc)
    assert not _matches(_rule("event.kind: *", [old]), {**doc, "user_agent": {"original": "x"}})


def test_combined_filters():
    a = {"meta": {}, "query": {"term": {"process.name": "a"}}}
    b = {"meta": {}, "query": {"term": {"user.name": "b"}}}
    doc = {"event": {"kind": "e"}, "process": {"name": "a"}}
    either = {"meta": {"type": "combined", "relation": "OR", "params": [a, b]}}
    both = {"meta": {"type": "combined", "relation": "AND", "params": [a, b]}}
    assert _matches(_rule("event.kind: *", [either]), doc)
    assert not _matches(_rule("event.kind: *", [both]), doc)


def test_filters_and_the_query_are_both_required():
    rule = _rule("process.name: a", [_flt({"term": {"user.name": "b"}})])
    assert _matches(rule, {"process": {"name": "a"}, "user": {"name": "b"}})
    assert not _matches(rule, {"process": {"name": "a"}, "user": {"name": "c"}})
    assert not _matches(rule, {"process": {"name": "x"}, "user": {"name": "b"}})


def test_eql_rule_filters_every_stage():
    flt = [_flt({"term": {"user.name": "root"}}, negate=True)]
    rule = _rule('process where process.name == "a"', flt, type_="eql")
    assert _matches(rule, {"event": {"category": "process"}, "process": {"name": "a"}})
    assert not _matches(
        rule, {"event": {"category": "process"}, "process": {"name": "a"}, "user": {"name": "root"}}
    )
    seq = _rule(
        'sequence by host.id [process where process.name == "a"] [process where process.name == "b"]',
        flt,
        type_="eql",
    )
    stages = seq.compiled().statement.query.stages
    assert all("user" in repr(s.query.condition) for s in stages)


@pytest.mark.parametrize(
    "query",
    [
        {"query_string": {"query": "a"}},
        {"regexp": {"file.path": "a.*"}},
        {"wildcard": {"process.pid": "1*"}},
        {"term": {"message": "fox"}},  # a term on a text field meets raw tokens
        {"range": {"@timestamp": {"gte": "now-1d"}}},
        {"term": {"process.name": "a"}, "exists": {"field": "x"}},  # two query names
        {"match": {"process.name": {"query": "a", "operator": "and"}}},
        {},
    ],
)
def test_anything_else_makes_the_rule_not_runnable(query):
    with pytest.raises(FilterUnsupported):
        query_condition(query)
    rule = _rule("event.kind: *", [_flt(query)])
    assert not rule.runnable
    assert "unsupported filter" in rule.why_not_runnable
    assert rule.filter_problem()


def test_hostile_filters_never_crash():
    for filters in ("x", [1], [["a"]], [{"meta": "x"}], [{"meta": {"type": "combined"}}], {"a": 1}):
        rule = _rule("event.kind: *", filters)
        assert not rule.runnable
    # Dropped as Kibana drops them: null and false entries, disabled filters.
    assert _rule("event.kind: *", [None, False, {"meta": {"disabled": True}}]).runnable


def test_threshold_and_new_terms_rules_with_filters_run():
    flt = [_flt({"wildcard": {"file.path": "*.tmp"}}, negate=True)]
    nt = _rule(
        "event.kind: *",
        flt,
        type_="new_terms",
        new_terms={
            "field": "new_terms_fields",
            "value": ["host.name"],
            "history_window_start": [{"field": "history_window_start", "value": "now-7d"}],
        },
    )
    assert nt.runnable, nt.why_not_runnable
    assert not _matches(nt, {"event": {"kind": "e"}, "file": {"path": "a.tmp"}})
    assert nt.kibana_parameters()["filters"] == flt


def test_parquet_runs_a_filtered_rule_as_sql(tmp_path):
    """The filter is part of the compiled statement, so DuckDB's SQL filter holds it too."""
    duckdb = pytest.importorskip("duckdb")
    import orjson

    from vigil.engine import Engine
    from vigil.engine.columnar import ColumnarReport, scan_parquet
    from vigil.events.parquet import read_parquet

    flt = [
        _flt({"wildcard": {"file.path": {"value": "c:\\\\temp\\\\*", "case_insensitive": True}}}, negate=True)
    ]
    rule = _rule("event.kind: event", flt)
    paths = ["C:\\Temp\\a.ps1", "C:\\Windows\\b.ps1", "c:\\TEMP\\c", "D:\\x"]
    src = tmp_path / "e.ndjson"
    src.write_bytes(
        b"".join(orjson.dumps({"event": {"kind": "event"}, "file": {"path": p}}) + b"\n" for p in paths)
    )
    path = tmp_path / "e.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{src}')) TO '{path}' (FORMAT parquet)")
    report = ColumnarReport()
    sql = [a["file"]["path"] for a in scan_parquet(Engine([rule]), path, report=report)]
    assert report.sql_rules == ["r"] and report.unconfirmed == 0
    plain = [a["file"]["path"] for a in Engine([rule]).scan(read_parquet(path))]
    assert sorted(sql) == sorted(plain) == ["C:\\Windows\\b.ps1", "D:\\x"]
