"""KQL text into a tree, as Kibana's grammar (kbn-es-query kuery/grammar/grammar.peggy) reads it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil import kql
from vigil.eql import EqlError
from vigil.kql import tree as T


def V(*parts: str, quoted: bool = False, constant: object = ...) -> T.Value:
    return T.Value(tuple(parts), quoted=quoted, constant=constant)


def is_(field: str, *parts: str, quoted: bool = False, constant: object = ...) -> T.Is:
    return T.Is(V(field), V(*parts, quoted=quoted, constant=constant))


def test_field_value_and_quoted_phrase():
    assert kql.parse("process.name: cmd.exe") == is_("process.name", "cmd.exe")
    assert kql.parse('process.name : "cmd.exe"') == is_("process.name", "cmd.exe", quoted=True)
    assert kql.parse('"process.name": x') == T.Is(V("process.name", quoted=True), V("x"))


def test_or_binds_looser_than_and_and_not_is_a_prefix():
    # OrQuery = AndQuery (Or AndQuery)+; AndQuery = NotQuery (And NotQuery)+; NotQuery = Not SubQuery
    assert kql.parse("a: 1 or b: 2 and not c: 3") == T.Or(
        (is_("a", "1"), T.And((is_("b", "2"), T.Not(is_("c", "3")))))
    )
    assert kql.parse("(a: 1 or b: 2) and c: 3") == T.And(
        (T.Or((is_("a", "1"), is_("b", "2"))), is_("c", "3"))
    )


def test_keywords_are_case_insensitive_and_need_whitespace():
    assert kql.parse("a: 1 OR b: 2") == T.Or((is_("a", "1"), is_("b", "2")))
    assert kql.parse("NOT a: 1") == T.Not(is_("a", "1"))
    # Without whitespace around it, `or` is part of the value; inner spaces are kept, ends trimmed.
    assert kql.parse("a: x or") == is_("a", "x or")
    assert kql.parse("a: notepad.exe") == is_("a", "notepad.exe")
    assert kql.parse("a:  two words  ") == is_("a", "two words")


def test_value_lists_spread_over_the_field():
    assert kql.parse("a: (x or y and not z)") == T.Or(
        (is_("a", "x"), T.And((is_("a", "y"), T.Not(is_("a", "z")))))
    )
    assert kql.parse("a: ((x))") == is_("a", "x")


def test_wildcards_ranges_exists_nested_and_constants():
    assert kql.parse("a: *foo*") == is_("a", "", "foo", "")
    assert kql.parse("a: *") == is_("a", "", "")
    assert kql.parse("a >= 5") == T.Range(V("a"), ">=", V("5"))
    assert kql.parse("a<5") == T.Range(V("a"), "<", V("5"))
    assert kql.parse("a: { b: 1 }") == T.Nested(V("a"), is_("b", "1"))
    assert kql.parse("a: true") == is_("a", "true", constant=True)
    assert kql.parse("a: null") == is_("a", "null", constant=None)
    assert kql.parse('a: "true"') == is_("a", "true", quoted=True)
    assert kql.parse("value") == T.Is(None, V("value"))
    assert kql.parse("") == T.MatchAll()


def test_escapes_in_unquoted_values():
    # EscapedSpecialCharacter, EscapedWhitespace, EscapedUnicodeSequence, EscapedKeyword.
    assert kql.parse(r"a: C\:\\Windows\\*") == is_("a", "C:\\Windows\\", "")
    assert kql.parse(r"a: \*") == is_("a", "*")
    assert kql.parse(r"a: \(x\) \"q\" \{\} \<\>") == is_("a", '(x) "q" {} <>')
    assert kql.parse(r"a: x\ty\u0041") == is_("a", "x\tyA")
    assert kql.parse(r"a: \or") == is_("a", "or")
    assert kql.parse(r"a: b \and c") == is_("a", "b and c")


def test_escapes_in_quoted_values():
    # QuotedCharacter: \" and \\ are escapes, with \t \r \n \uXXXX; any other backslash stays.
    assert kql.parse(r'a: "C:\Windows\System32"') == is_("a", "C:\\Windows\\System32", quoted=True)
    assert kql.parse(r'a: "x\\y \"q\""') == is_("a", 'x\\y "q"', quoted=True)
    assert kql.parse(r'a: "*\n"') == is_("a", "*\n", quoted=True)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a: (x or y", 1, 11),  # missing ')'
        ('a: "open', 1, 4),  # unterminated string, at its quote
        ("a: 1 and\n  b: \\q", 2, 6),  # a backslash escaping nothing ends the literal
        ("a: 1 b: 2", 1, 7),  # the value is "1 b" (spaces belong to it): the second ":" is wrong
        ("a: cannot be", 1, 7),  # `not ` inside a value is the keyword (Kibana's grammar)
        ("(a: 1", 1, 6),
        ("a:", 1, 3),
        ("not not a: 1", 1, 5),  # Not SubQuery: no second `not`
    ],
)
def test_syntax_errors_carry_line_and_column(text, line, column):
    with pytest.raises(kql.KqlSyntaxError) as info:
        kql.parse(text)
    err = info.value
    assert (err.line, err.column) == (line, column)
    assert isinstance(err, EqlError) and err.kind == "syntax error"
    assert "^" in err.render()


def test_node_locations():
    node = kql.parse("a: 1 and\n  not b: 2")
    assert node.loc == (1, 1)
    assert node.terms[1].loc == (2, 3)


_PIECES = [*'ab:.*?"\\()<>=!{} \n\t1/-', " or ", " and ", "not ", "\u212a", "process.name", "true"]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=24).map("".join))
def test_any_text_compiles_or_is_a_located_error(text):
    """Bad input never crashes: a user's query either compiles or raises an EQL-family
    error with a line and column (syntax) or a reason (unsupported)."""
    try:
        kql.compile(text)
    except kql.KqlSyntaxError as exc:
        assert exc.line is not None and exc.column is not None
    except EqlError:
        pass
