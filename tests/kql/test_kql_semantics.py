"""What a KQL query matches, construct by construct, as Elasticsearch runs the query
DSL Kibana builds for it (kbn-es-query kuery/functions/{is,range,exists,nested}.ts;
security_solution get_query_filter.ts passes an index pattern with no fields, so
Kibana never chooses the query by field type: Elasticsearch's mapping decides)."""

from __future__ import annotations

import pytest

from vigil import kql
from vigil.eql import ast


def matches(query: str, doc: dict) -> bool:
    return kql.compile(query).matches(doc)


def unsupported(query: str) -> str:
    with pytest.raises(kql.KqlUnsupported) as info:
        kql.compile(query)
    return info.value.message


# is.ts: an unquoted value is `match`, a quoted one `match_phrase`; on a keyword field
# both analyse the value with the keyword analyzer into one exact term.
def test_keyword_terms_are_exact_and_case_sensitive():
    doc = {"process": {"name": "cmd.exe"}}
    assert matches("process.name: cmd.exe", doc)
    assert matches('process.name: "cmd.exe"', doc)
    assert not matches("process.name: CMD.EXE", doc)
    assert not matches("process.name: cmd", doc)
    assert not matches('process.name: "cmd.exe "', doc)


# wildcard.ts toQueryStringQuery: the parts around `*` are escaped, so `?` is literal;
# query_string wildcards on a keyword field (no normalizer in ECS) are case-sensitive,
# and Kibana's detection engine sets no case_insensitive option.
def test_wildcards_are_case_sensitive_and_question_mark_is_literal():
    doc = {"process": {"executable": "C:\\Windows\\System32\\cmd.exe"}}
    assert matches("process.executable: C\\:\\\\Windows\\\\*", doc)
    assert matches("process.executable: *cmd.exe", doc)
    assert not matches("process.executable: *CMD.EXE", doc)
    assert not matches("process.executable: *cmd?exe", doc)
    assert matches("process.executable: *cmd?exe", {"process": {"executable": "x\\cmd?exe"}})
    # An escaped star is a literal character next to a real wildcard.
    assert matches("file.name: a\\*b*", {"file": {"name": "a*bcd"}})
    assert not matches("file.name: a\\*b*", {"file": {"name": "axbcd"}})
    # A wildcard matches newlines too (Lucene's automaton has no line notion).
    assert matches("process.command_line: *-enc*", {"process": {"command_line": "a\n-enc x"}})


# Elastic Defend maps `*.caseless` as keyword with the lowercase normalizer, which
# match and query_string apply to the query value as well.
def test_caseless_fields_are_case_insensitive():
    # A multi-field: Elasticsearch indexes process.name's value under it (multifields.py).
    doc = {"process": {"name": "CMD.exe"}}
    assert matches("process.name.caseless: cmd.EXE", {"process": {"name": "CMD.exe"}})
    assert matches("process.name.caseless: (x or cmd.exe)", {"process.name": "CMD.exe"})
    assert matches("process.name.caseless: C*", {"process": {"name": ["x", "cmd.exe"]}})
    assert matches("process.name.caseless: *\\*?*", {"process.name": "A*?B"})
    assert not matches("process.name.caseless: *\\*?*", {"process.name": "A*xB"})
    assert not matches("process.name: cmd.exe", doc)
    # The lowercase normalizer is LowerCaseFilter on each code point: \u0130 is i.
    assert matches("process.name.caseless: \u0130x", {"process.name": "iX"})


# A quoted value is a literal node (grammar QuotedString): `*` in it is a plain character.
def test_star_inside_quotes_is_literal():
    assert matches('file.name: "a*"', {"file": {"name": "a*"}})
    assert not matches('file.name: "a*"', {"file": {"name": "abc"}})


# is.ts isExistsQuery: `f: *` is an `exists` query.
def test_exists():
    assert matches("user.name: *", {"user": {"name": "x"}})
    assert matches("user.name: *", {"user": {"name": ["", "y"]}})
    assert not matches("user.name: *", {"user": {"name": None}})
    assert not matches("user.name: *", {"user": {"name": []}})
    assert not matches("user.name: *", {"user": {}})
    assert matches("not user.name: *", {"host": {"name": "h"}})


# ES matches a document when any value of a multi-valued field matches; a missing field
# matches no term query and its must_not (`not`) matches.
def test_arrays_and_missing_fields():
    doc = {"process": {"args": ["-c", "whoami"]}}
    assert matches("process.args: whoami", doc)
    assert matches("process.args: -c and process.args: whoami", doc)  # two queries, not one value
    assert not matches("not process.args: whoami", doc)
    assert not matches("process.args: ls", doc)
    assert not matches("user.name: root", doc)
    assert matches("not user.name: root", doc)
    assert matches("process.args: (ls or whoami)", doc)
    assert matches("process.args: (-c and whoami)", doc)


def test_not_and_or_precedence():
    doc = {"a": "1", "b": "2"}
    assert matches("a: 1 or b: 3 and c: 4", doc)  # a:1 or (b:3 and c:4)
    assert not matches("(a: 1 or b: 3) and c: 4", doc)
    assert matches("not a: 2 and b: 2", doc)  # (not a:2) and b:2
    assert not matches("not (a: 1 and b: 2)", doc)


# range.ts: a `range` query; on a long field the bounds are numbers, any value may match,
# and `not` is must_not: true on a missing field and on [1, 10] only if no value matches.
def test_ranges_on_long_fields():
    assert matches("destination.port > 1024", {"destination": {"port": 8080}})
    assert matches("destination.port >= 1024", {"destination": {"port": "1024"}})
    assert not matches("destination.port < 1024", {"destination": {"port": 1024}})
    assert matches("destination.port <= 1024", {"destination": {"port": [80, 9000]}})
    assert matches("not destination.port > 1024", {"source": {"port": 1}})
    assert not matches("not destination.port > 1024", {"destination": {"port": [80, 9000]}})
    # Two ranges on one field are two queries: different values may meet them.
    assert matches(
        "destination.port > 8000 and destination.port < 100", {"destination": {"port": [80, 9000]}}
    )


def test_numeric_and_boolean_terms():
    # A term on a long field is a number: JSON 22 or "22" are the indexed long 22.
    assert matches("destination.port: 22", {"destination": {"port": 22}})
    assert matches("destination.port: 22", {"destination": {"port": "22"}})
    assert not matches("destination.port: 22", {"destination": {"port": 2222}})
    # A keyword field holds a number's text (ECS event.code is keyword).
    assert matches("event.code: 4624", {"event": {"code": 4624}})
    assert matches("event.code: 4624", {"event": {"code": "4624"}})
    assert not matches("event.code: 4624", {"event": {"code": "04624"}})
    # Boolean fields take true/false (BooleanFieldMapper term query).
    assert matches("process.interactive: true", {"process": {"interactive": True}})
    assert not matches("process.interactive: true", {"process": {"interactive": False}})
    assert matches("process.interactive: false", {"process": {"interactive": "false"}})


# IpFieldMapper.termQuery accepts an address or a CIDR block.
def test_ip_terms_and_cidr_blocks():
    assert matches("source.ip: 10.0.0.0/8", {"source": {"ip": "10.1.2.3"}})
    assert not matches("source.ip: 10.0.0.0/8", {"source": {"ip": "11.1.2.3"}})
    assert matches("source.ip: 10.1.2.3", {"source": {"ip": "10.1.2.3"}})
    assert matches('destination.ip: "::1"', {"destination": {"ip": "0:0:0:0:0:0:0:1"}})
    assert matches(
        "source.ip: (192.168.0.0/16 or 10.0.0.0/8)", {"source": {"ip": ["8.8.8.8", "192.168.1.1"]}}
    )
    assert matches("not source.ip: 10.0.0.0/8", {"host": {"name": "h"}})
    assert not matches("not source.ip: 10.0.0.0/8", {"source": {"ip": ["8.8.8.8", "10.0.0.1"]}})


def test_unsupported_constructs_are_reported_not_guessed():
    assert "whitespace on message" in unsupported("message: *a b*")
    assert "wildcard in the field name" in unsupported("process.*: x")
    assert "no field" in unsupported("powershell")
    assert "nested" in unsupported("a: { b: 1 }")
    assert "range on the keyword field" in unsupported("process.name > a")
    assert "range on the date field" in unsupported("@timestamp > now-1d")
    assert "date field" in unsupported("@timestamp: 2024-01-01")
    assert "long field" in unsupported("destination.port: abc")
    assert "wildcard on the long field" in unsupported("destination.port: 44*")
    assert "ip field" in unsupported("source.ip: 10.0.0.*")
    assert "whitespace" in unsupported("process.args: *a b*")
    assert "null" in unsupported("user.name: null")
    assert "double field" in unsupported("file.Ext.entropy: 1")
    err = kql.KqlUnsupported
    with pytest.raises(err) as info:
        kql.compile("a: 1 and\n  process.*: x")
    assert (info.value.line, info.value.column) == (2, 3)


# is.ts on an analysed field (text, match_only_text): `match` (any token), `match_phrase`
# (tokens in a row), `query_string` wildcards on one token; the standard analyzer on both
# sides (vigil.lucene.analysis).
def test_text_fields_are_analysed():
    doc = {"message": "kernel: sshd[42]: segfault at 0 ip 00007f error 4 in libc.so.6"}
    assert matches("message: segfault", doc)
    assert matches("message: SEGFAULT", doc)  # lower-cased on both sides
    assert matches("message: segfault-nothing", doc)  # match: any token of the value
    assert not matches('message: "segfault-nothing"', doc)  # match_phrase: all, in a row
    assert matches('message: "SEGFAULT at 0"', doc)
    assert not matches('message: "segfault 0"', doc)
    assert not matches("message: segfaul", doc)  # a token is whole
    assert matches("message: segf*", doc) and matches("message: *FAULT", doc)
    assert not matches("message: *fault*at*", doc)  # a wildcard matches one token
    # `libc.so.6` is `libc.so` and `6`: a full stop joins two letters or two digits only.
    assert matches("message: libc.so*", doc) and not matches("message: libc.so.*", doc)
    assert not matches("message: segfault", {"message": "segfaulted"})
    cmd = {"process.command_line": "C:\\x\\whoami.exe /all"}  # read by its multi-field .text
    assert not matches("process.command_line.text: WHOAMI", cmd)  # the token is `whoami.exe`
    assert matches("process.command_line.text: WhoAmI.exe", cmd)


def test_text_queries_hold_on_any_value_and_not_is_their_complement():
    assert matches('message: "a b"', {"message": ["x", "A, B"]})
    assert not matches('message: "a b"', {"message": ["x a", "b y"]})  # no phrase across values
    assert matches("not message: a", {"host": {"name": "h"}})
    assert not matches("not message: a", {"message": ["b", "a"]})
    assert matches("message: 42", {"message": 42})  # a number is indexed as its text


def test_exists_works_on_any_field_type():
    # `exists` does not look at the value, so it runs on text fields too.
    assert matches("message: *", {"message": "hello"})


def test_translation_uses_constructs_eql_does_not_rewrite():
    # Equality as a one-item `in` (not merged with other comparisons of the field), a range
    # as a one-term `or` (its `not` is not flipped into the opposite range).
    cond = kql.to_eql("a: 1 and not destination.port > 5").query.condition
    first, second = cond.terms
    assert isinstance(first, ast.In) and first.items == (ast.Literal("1"),)
    assert isinstance(second, ast.Not) and isinstance(second.expr, ast.Or)
    assert second.expr.terms == (ast.Comparison(">", ast.Field(("destination", "port")), ast.Literal(5)),)


def test_dotted_keys_and_nested_objects_are_the_same_field():
    assert matches("process.parent.name: bash", {"process.parent.name": "bash"})
    assert matches("process.parent.name: bash", {"process": {"parent.name": "bash"}})
