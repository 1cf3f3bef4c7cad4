"""The verifier's errors: what ES rejects, with line and column of the culprit."""

from __future__ import annotations

import pytest

from vigil.eql import ast
from vigil.eql.checker import check, render
from vigil.eql.errors import EqlTypeError
from vigil.eql.schema import Schema

MAPPING = Schema.from_mapping(
    {
        "properties": {
            "pid": {"type": "long"},
            "name": {"type": "keyword"},
            "ip": {"type": "ip"},
            "event_type": {"type": "keyword"},
            "event": {"properties": {"category": {"type": "alias", "path": "event_type"}}},
        }
    }
)


def F(name, optional=False, loc=(1, 1)):
    return ast.Field(tuple(name.split(".")), optional, loc=loc)


def L(v, loc=(1, 1)):
    return ast.Literal(v, loc=loc)


def fn(name, *args, insensitive=False, loc=(1, 1)):
    return ast.FunctionCall(name, tuple(args), insensitive, loc=loc)


def error(expr, schema=None, text="q") -> EqlTypeError:
    with pytest.raises(EqlTypeError) as info:
        check(ast.EventQuery("process", expr), schema, text)
    return info.value


def test_unknown_function_suggests_a_name():
    e = error(fn("startWith", F("name"), L("a"), loc=(2, 7)))
    assert "Unknown function [startWith], did you mean [startsWith]?" in e.message
    assert (e.line, e.column) == (2, 7)
    e = error(fn("frobnicate", L(1)))
    assert e.message == "Unknown function [frobnicate]"


def test_argument_counts():
    assert "expects 2 arguments, found 1" in error(fn("startsWith", F("name"))).message
    assert "expects 3 to 4 arguments, found 2" in error(fn("between", F("name"), L("a"))).message
    assert "expects at least 1 arguments, found 0" in error(fn("concat")).message
    check(ast.EventQuery("process", fn("startsWith", F("name"), L("a"))), None)


def test_argument_types_of_literals_and_mapped_fields():
    e = error(cmp_(fn("length", L(1, loc=(1, 30))), L(2)))
    assert e.message == "first argument of [length(1)] must be [string], found value [1] type [integer]"
    assert e.column == 30
    e = error(cmp_(fn("length", F("pid")), L(2)), MAPPING)
    assert "found value [pid] type [long]" in e.message
    e = error(cmp_(fn("indexOf", F("name"), L("a"), L("x")), L(2)))
    assert e.message.startswith('third argument of [indexOf(name, "a", "x")] must be [number]')
    # unknown types (no mapping) are not judged before running
    check(ast.EventQuery("process", cmp_(fn("length", F("pid")), L(2))), None)


def test_case_insensitive_form_only_where_es_has_one():
    check(ast.EventQuery("any", fn("startsWith", F("name"), L("a"), insensitive=True)), None)
    assert "no case-insensitive form" in error(cmp_(fn("length", F("name"), insensitive=True), L(1))).message


def test_unknown_column_under_a_mapping():
    e = error(ast.Comparison("==", F("nope", loc=(1, 15)), L(1)), MAPPING, text="process where nope == 1")
    assert e.message == "Unknown column [nope]"
    assert (e.line, e.column) == (1, 15)
    assert "^" in e.render()
    # optional fields and alias targets are fine; without a mapping nothing is unknown
    check(ast.EventQuery("any", ast.Comparison("==", F("nope", True), L(None))), MAPPING)
    check(ast.EventQuery("any", ast.Comparison("==", F("event.category"), L("x"))), MAPPING)
    check(ast.EventQuery("any", ast.Comparison("==", F("nope"), L(1))), None)
    check(ast.EventQuery("any", ast.Comparison("==", F("nope"), L(1))), Schema.ecs())


def test_keyword_against_number_is_no_error():
    # ES spec query optionalNoDocsFieldNumericEquality: `?kw == 123` runs and finds nothing.
    check(ast.EventQuery("any", ast.Comparison("==", F("name"), L(123))), MAPPING)
    check(ast.EventQuery("any", ast.In(F("name"), (L("a"), L(5)))), MAPPING)
    check(ast.EventQuery("any", ast.Comparison("==", F("ip"), L("10.0.0.1"))), MAPPING)
    check(ast.EventQuery("any", ast.Comparison("==", F("pid"), L(None))), MAPPING)


def test_condition_must_be_boolean():
    e = error(ast.Arithmetic("+", F("pid"), L(1)), MAPPING)
    assert e.message == "Condition expression needs to be boolean, found [LONG]"
    assert "found [KEYWORD]" in error(F("name"), MAPPING).message
    assert "found [KEYWORD]" in error(ast.And((L(True), fn("concat", L("a")))), None).message


def test_arithmetic_needs_numbers():
    assert "must be [numeric]" in error(cmp_(ast.Arithmetic("+", L("a"), L(1)), L(2))).message


def test_bad_regex_and_cidr():
    assert "not supported" in error(ast.Pattern("regex", F("name"), (L("a~b"),))).message
    assert "unterminated" in error(ast.Pattern("regex", F("name"), (L("[ab"),))).message
    assert "not a valid CIDR" in error(fn("cidrMatch", F("ip"), L("10.0.0.0/99"))).message
    assert "must be a constant" in error(fn("cidrMatch", F("ip"), F("name"))).message


def test_patterns_and_in_need_constants():
    assert "Comparisons against fields" in error(ast.Pattern(":", F("name"), (F("other"),))).message
    assert "Comparisons against fields" in error(ast.In(F("name"), (F("other"),))).message


def test_checks_whole_statements():
    stmt = ast.Statement(
        ast.Sequence(
            (
                ast.SequenceStage(ast.EventQuery("process", L(True))),
                ast.SequenceStage(ast.EventQuery("file", fn("nope", loc=(3, 4)))),
            )
        ),
        text="sequence\n [process where true]\n [file where nope()]",
    )
    with pytest.raises(EqlTypeError) as info:
        check(stmt)
    assert (info.value.line, info.value.column) == (3, 4)
    assert "nope()" in info.value.render()


def test_render_round_trips_simple_expressions():
    expr = ast.And((ast.In(F("a"), (L("x"), L(1)), insensitive=True, negated=True), ast.Not(F("b", True))))
    assert render(expr) == 'a not in~ ("x", 1) and not ?b'


def cmp_(a, b):
    return ast.Comparison("==", a, b)
