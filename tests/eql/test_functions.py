"""EQL functions against Elasticsearch's behaviour (the ``*FunctionProcessor``
classes of ``org.elasticsearch.xpack.eql.expression.function.scalar`` and the
spec queries in test_queries.toml / additional_test_queries.toml)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.eql import ast, interpreter
from vigil.eql.compiler import compile_value
from vigil.eql.functions import FUNCTIONS, call, lookup_function


def fn(name, *args, insensitive=False):
    return call(name, list(args), insensitive)


def test_function_names_are_not_case_sensitive():
    assert lookup_function("CONCAT") is lookup_function("concat")
    assert lookup_function("startswith").name == "startsWith"
    assert lookup_function("nope") is None
    # EQL's sixteen; names with a dot are KQL's internal text queries, which no EQL text can call.
    assert len([n for n in FUNCTIONS if "." not in n]) == 16


@pytest.mark.parametrize(
    ("args", "insensitive", "want"),
    [
        (("System Idle Process", "s", "e", False), False, "t"),
        (("System Idle Process", "S", "e", True), False, "ystem Idle Proc"),  # greedy: last "e"
        (("abc", "x", "c"), False, ""),  # left not found
        (("abc", "a", "x"), False, ""),  # right not found
        (("abc", "", "c"), False, "abc"),  # an empty bound gives the input back
        ((None, "a", "b"), False, None),
        (("C:\\dev\\TestLogs\\something.json", "dev", ".json", False), False, "\\TestLogs\\something"),
    ],
)
def test_between(args, insensitive, want):
    assert fn("between", *args, insensitive=insensitive) == want


def test_between_insensitive_finds_lowercase_bound():
    assert fn("between", "System Idle Process", "s", "E", insensitive=True) == "yst"


def test_cidr_match():
    assert fn("cidrMatch", "10.6.48.157", "10.6.48.157/8") is True
    assert fn("cidrMatch", "10.6.48.157", "192.168.0.0/16") is False
    assert fn("cidrMatch", "10.6.48.157", "192.168.0.0/16", "10.0.0.0/8") is True
    assert fn("cidrMatch", "10.6.48.157", "0.0.0.0/0") is True
    assert fn("cidrMatch", "fe80::1", "fe80::/10") is True
    assert fn("cidrMatch", "fe80::1", "0.0.0.0/0") is False
    assert fn("cidrMatch", None, "0.0.0.0/0") is None
    assert fn("cidrMatch", "not an ip", "0.0.0.0/0") is False


def test_concat():
    assert fn("concat", 5, "::", "wininit.exe", "::", 3) == "5::wininit.exe::3"
    assert fn("concat", 1) == "1"
    assert fn("concat", "a", None) is None
    assert fn("concat", True, 7.5) == "true7.5"


def test_starts_ends_contains():
    assert fn("startsWith", "explorer.exe", "explorer.") is True
    assert fn("startsWith", "Explorer.exe", "explorer.") is False
    assert fn("startsWith", "Explorer.exe", "expLORER.", insensitive=True) is True
    assert fn("endsWith", "explorer.exe", "lorer.exe") is True
    assert fn("endsWith", "explorer.EXE", "loREr.exe", insensitive=True) is True
    assert fn("stringContains", "ABCexplorer.exeD", "explorer.exe") is True
    assert fn("stringContains", "abc", "") is False  # ES: empty substring is never contained
    assert fn("stringContains", "", "") is False
    assert fn("stringContains", "aBc", "b", insensitive=True) is True
    assert fn("startsWith", None, "a") is None
    assert fn("endsWith", "a", None) is None


@pytest.mark.parametrize(
    ("args", "insensitive", "want"),
    [
        (("explorer.exe", "plore"), True, 2),
        (("explorer.exe", ".pf"), True, None),
        (("explorer.exe", "plore", 100), False, None),
        (("explorer.exe", "plorer.", 0), False, 2),
        (("explorer.exe", "plorer.", 2), False, 2),
        (("explorer.exe", "plorer.", 4), False, None),
        (("Explorer.exe", "explorer.", 0), False, None),
        (("Explorer.exe", "explorer.", 0), True, 0),
        (("abc", "b", -5), False, 1),  # Java indexOf treats a negative start as 0
        (("abc", "", 10), False, 3),  # "" is found where the search starts (clamped)
        ((None, "a"), False, None),
        (("abc", None), False, None),
    ],
)
def test_index_of(args, insensitive, want):
    assert fn("indexOf", *args, insensitive=insensitive) == want


def test_length_counts_utf16_units():
    assert fn("length", "abc") == 3
    assert fn("length", "") == 0
    assert fn("length", "a\U0001f600") == 3
    assert fn("length", None) is None


def test_string():
    assert fn("string", 1) == "1"
    assert fn("string", True) == "true"
    assert fn("string", None) is None
    assert fn("string", 2.5) == "2.5"


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (("explorer.exe", 0, 4), "expl"),
        (("explorer.exe", 1, 3), "xp"),
        (("explorer.exe", -4), ".exe"),
        (("explorer.exe", -4, -1), ".ex"),
        (("abc", 5), ""),
        (("abc", -10, 2), "ab"),
        (("abc", 2, 1), ""),
        ((None, 1), None),
    ],
)
def test_substring_slices_like_python(args, want):
    assert fn("substring", *args) == want


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (("5",), 5),
        (("17", None), 17),
        (("17", 10), 17),
        (("11", 16), 17),
        (("31", 13), 40),
        (("0x32", 16), 50),
        (("0x32",), 50),  # a 0x prefix alone selects base 16
        (("32", 16), 50),
        (("1.5",), 1.5),
        (("-7",), -7),
        (("zz", 10), None),
        (("12", 99), None),
        ((None,), None),
    ],
)
def test_number(args, want):
    got = fn("number", *args)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize(
    ("name", "a", "b", "want"),
    [
        ("add", 1, 0, 1),
        ("subtract", 1, -5, 6),
        ("multiply", 6, 5, 30),
        ("divide", 30, 4.0, 7.5),
        ("divide", 30, 4, 7),  # integer division for integers
        ("divide", -30, 4, -7),
        ("modulo", 11, 10, 1),
        ("modulo", -11, 10, -1),
        ("add", None, 1, None),
        ("divide", 1, 0, None),
    ],
)
def test_math(name, a, b, want):
    assert fn(name, a, b) == want


def test_functions_over_fields_compiled_and_interpreted_agree():
    doc = {"file_name": "explorer.exe", "n": "17", "tags": ["b", "a"]}
    cases = [
        ast.FunctionCall("substring", (ast.Field(("file_name",)), ast.Literal(-4))),
        ast.FunctionCall("length", (ast.Field(("file_name",)),)),
        ast.FunctionCall("number", (ast.Field(("n",)), ast.Literal(16))),
        ast.FunctionCall("concat", (ast.Field(("tags",)), ast.Literal("-"), ast.Field(("missing",)))),
        ast.FunctionCall("concat", (ast.Field(("tags",)), ast.Literal("-"))),
        ast.FunctionCall("indexOf", (ast.Field(("file_name",)), ast.Literal("EXE")), insensitive=True),
    ]
    want = [".exe", 12, 23, None, "a-", 9]
    for expr, w in zip(cases, want, strict=True):
        assert compile_value(expr)(doc) == w
        assert interpreter.value(expr, doc) == w


ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["0x1f", "10.0.0.1", "::1", "1.2.3", "-", "1e400", "/8"]),
)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(FUNCTIONS)), st.lists(ANY_VALUE, max_size=5), st.booleans())
def test_functions_never_raise_on_any_arguments(name, args, insensitive):
    spec = FUNCTIONS[name]
    n = max(spec.min_args, min(len(args), spec.max_args or len(args)))
    args = (args + [None] * n)[:n]
    call(name, args, insensitive)
