"""Wildcards matched in linear time agree with a plain regular-expression reference."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.lucene.wildcard import any_wildcard, ascii_lower, compile_wildcard


def reference(pattern: str, value: str, escapes: bool = False) -> bool:
    """fnmatch-like: the pattern as a backtracking regex, fine on short strings."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if escapes and ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(out), value, re.DOTALL) is not None


patterns = st.text(alphabet="ab*?\\\n", max_size=8)
values = st.text(alphabet="ab\\\n*?", max_size=10)


@settings(max_examples=800, deadline=None)
@given(patterns, values, st.booleans())
def test_agrees_with_the_reference(pattern, value, escapes):
    assert compile_wildcard(pattern, False, escapes)(value) is reference(pattern, value, escapes)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aBé*?", max_size=6), st.text(alphabet="AbÉé", max_size=8))
def test_case_insensitive_is_the_reference_on_ascii_folded_text(pattern, value):
    want = reference(ascii_lower(pattern), ascii_lower(value))
    assert compile_wildcard(pattern, True)(value) is want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab*?", max_size=5), min_size=1, max_size=5), values, st.booleans())
def test_any_wildcard_is_any_pattern(pats, value, fold):
    want = any(compile_wildcard(p, fold)(value) for p in pats)
    assert any_wildcard(pats, fold)(value) is want


def test_folding_is_ascii_only():
    # AutomatonQueries.toCaseInsensitiveChar: code points above 128 keep their case.
    assert compile_wildcard("*cmd.exe", True)("C:\\CMD.EXE")
    assert not compile_wildcard("é*", True)("É")
    assert not compile_wildcard("k", True)("\u212a")  # KELVIN SIGN lowers to k in Python
    assert compile_wildcard("?", True)("\u0130")  # one character, however it lowers


def test_lucene_escapes():
    assert compile_wildcard("a\\*b", escapes=True)("a*b")
    assert not compile_wildcard("a\\*b", escapes=True)("axb")
    assert compile_wildcard("a\\", escapes=True)("a\\")  # a trailing escape is itself
    assert compile_wildcard("a\\*b")("a\\xb")  # EQL: the backslash is plain


@pytest.mark.parametrize("n", [10_000, 200_000])
def test_adversarial_values_finish(n):
    # Quadratic and worse on a backtracking engine; one pass each here.
    value = "a" * n
    assert not compile_wildcard("*a*b")(value)
    assert not compile_wildcard("*a*a*b*")(value)
    assert not compile_wildcard("*a?a*a?b*")(value)
    assert compile_wildcard("*a*a*a*")(value)
