"""The ES|QL parser: Elasticsearch's grammar (x-pack/plugin/esql/src/main/antlr,
EsqlBaseParser.g4 and parser/Expression.g4) over every prebuilt ES|QL rule, with
errors that point at a line and column."""

from __future__ import annotations

import pytest

from vigil.esql import tree as T
from vigil.esql.errors import EsqlSyntaxError
from vigil.esql.parser import parse

ESQL_RULES = 212


def test_every_prebuilt_esql_rule_parses(prebuilt_rules):
    rules = [r for r in prebuilt_rules if r.type == "esql"]
    assert len(rules) == ESQL_RULES
    failures = []
    for rule in rules:
        try:
            parse(rule.query)
        except EsqlSyntaxError as exc:
            failures.append(f"{rule.source}: {exc}")
    assert failures == []


def test_aggregating_as_kibana_counts_it(prebuilt_rules):
    # computeIsESQLQueryAggregating (kbn-securitysolution-utils/src/esql): a STATS command,
    # INLINE STATS not counted. Elastic's corpus: 164 aggregating, 48 not.
    queries = [parse(r.query) for r in prebuilt_rules if r.type == "esql"]
    assert sum(q.aggregating for q in queries) == 164


def test_precedence_not_binds_tighter_than_and_and_in_is_one_predicate():
    # Expression.g4: NOT booleanExpression is the first alternative; logicalIn a predicate.
    where = parse("FROM i | WHERE NOT a IN (1, 2) AND b OR c").commands[0]
    cond = where.condition
    assert isinstance(cond, T.Binary) and cond.op == "or"
    assert cond.left.op == "and"
    assert isinstance(cond.left.left, T.Unary) and isinstance(cond.left.left.operand, T.In)


def test_arithmetic_precedence_and_casts():
    expr = parse("FROM i | EVAL x = a + b * c::long").commands[0].fields[0].expr
    assert expr.op == "+" and expr.right.op == "*"
    assert isinstance(expr.right.right, T.Cast) and expr.right.right.type == "long"


def test_strings_escapes_and_triple_quotes():
    # lexer/Expression.g4 QUOTED_STRING: escapes \t \n \r \" \\ ; """...""" is raw.
    where = parse('FROM i | WHERE a LIKE "x\\\\y\\"" OR b RLIKE """\\d+"""').commands[0]
    assert where.condition.left.patterns == ('x\\y"',)
    assert where.condition.right.patterns == ("\\d+",)


def test_time_spans_and_keywords_are_case_insensitive():
    q = parse("from i | where @timestamp > NOW() - 5 MINUTES | Stats c = Count(*) By host.name")
    span = q.commands[0].condition.right.right
    assert span == T.Literal(T.Span(5, "minute"), "time_duration")
    assert q.commands[1].aggregates[0].expr.name == "count"


def test_unnamed_fields_are_named_by_their_text():
    stats = parse("FROM i | STATS count(*), MAX(a.b)  BY c").commands[0]
    assert [a.name for a in stats.aggregates] == ["count(*)", "MAX(a.b)"]


def test_from_patterns_and_metadata():
    q = parse('FROM logs-endpoint.events.process-*, ".alerts-security.*" METADATA _id, _index, _version')
    assert q.source.indices == ("logs-endpoint.events.process-*", ".alerts-security.*")
    assert q.source.metadata == ("_id", "_index", "_version")


def test_filtered_aggregations_inline_stats_and_rename():
    q = parse("FROM i | INLINE STATS n = COUNT(*) WHERE a > 1 BY b | RENAME b AS c, d = e")
    assert q.commands[0].inline and q.commands[0].aggregates[0].where is not None
    assert q.commands[1].pairs == (("b", "c"), ("e", "d"))


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("FROM i | WHERE a ==", 1, 20),
        ("FROM i\n| WHERE a = 1", 2, 11),
        ("FROM i | FROB x", 1, 10),
        ('FROM i | WHERE a == "\\d"', 1, 21),
        ('FROM i | WHERE a == "open', 1, 21),
        ("FROM i | EVAL x = 5 parsecs", 1, 21),
        ("FROM i | WHERE a == 1 b", 1, 23),
    ],
)
def test_errors_point_at_line_and_column(text, line, column):
    with pytest.raises(EsqlSyntaxError) as info:
        parse(text)
    assert (info.value.line, info.value.column) == (line, column)


def test_hostile_text_is_a_clear_error_never_a_crash():
    for text in ("", "|", "FROM", "FROM i | WHERE (((((", "FROM i | EVAL `", "FROM i /*", "\x00" * 50):
        with pytest.raises(EsqlSyntaxError):
            parse(text)
    deep = "FROM i | WHERE " + "(" * 5000 + "a" + ")" * 5000
    with pytest.raises(EsqlSyntaxError):
        parse(deep)
