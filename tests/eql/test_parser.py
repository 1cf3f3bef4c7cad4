"""The EQL tokenizer and parser: each construct, and each error with its position.

Grammar facts come from Elasticsearch's EqlBase.g4 and LogicalPlanBuilder.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.eql import ast
from vigil.eql.errors import EqlSyntaxError
from vigil.eql.parser import parse, parse_expression
from vigil.eql.tokens import tokenize


def F(*path, optional=False):
    return ast.Field(tuple(path), optional=optional)


def L(value):
    return ast.Literal(value)


def cond(text: str) -> ast.Expr:
    return parse(f"any where {text}").query.condition


def err(text: str) -> EqlSyntaxError:
    with pytest.raises(EqlSyntaxError) as info:
        parse(text)
    return info.value


# --- event queries -----------------------------------------------------------


def test_event_query_with_category_and_text():
    text = 'process where process.name == "cmd.exe"'
    st = parse(text)
    assert st.text == text
    assert st.query == ast.EventQuery("process", ast.Comparison("==", F("process", "name"), L("cmd.exe")))
    assert st.query.loc == (1, 1)
    assert st.query.condition.loc == (1, 15)
    assert st.query.condition.right.loc == (1, 31)


def test_any_and_quoted_categories():
    assert parse("any where true").query.category is None
    assert parse('"my-cat" where true').query.category == "my-cat"
    assert parse("`my cat` where true").query.category == "my cat"


def test_keywords_are_case_sensitive():
    # EqlBase.g4 declares AND: 'and' with no case folding, so AND is an identifier.
    e = err("process where a == 1 AND b == 2")
    assert (e.line, e.column) == (1, 22)
    with pytest.raises(EqlSyntaxError):
        parse("process WHERE true")


# --- precedence ----------------------------------------------------------------


def test_and_binds_tighter_than_or_and_not_tighter_than_and():
    assert cond("a or b and not c") == ast.Or((F("a"), ast.And((F("b"), ast.Not(F("c"))))))
    assert cond("not a and b") == ast.And((ast.Not(F("a")), F("b")))
    assert cond("a and b and c") == ast.And((F("a"), F("b"), F("c")))
    assert cond("(a or b) and c") == ast.And((ast.Or((F("a"), F("b"))), F("c")))


def test_arithmetic_precedence_and_associativity():
    assert cond("a + b * c == 7") == ast.Comparison(
        "==", ast.Arithmetic("+", F("a"), ast.Arithmetic("*", F("b"), F("c"))), L(7)
    )
    assert cond("a - b - c > 0").left == ast.Arithmetic("-", ast.Arithmetic("-", F("a"), F("b")), F("c"))
    assert cond("a % 2 == 0").left == ast.Arithmetic("%", F("a"), L(2))
    assert cond("-a < 0").left == ast.Negate(F("a"))
    assert cond("x == -5").right == L(-5)
    assert cond("x == +5").right == L(5)


def test_comparisons_do_not_chain():
    e = err("any where a < b < c")
    assert (e.line, e.column) == (1, 17)
    assert "chained" in e.message


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_comparison_operators(op):
    assert cond(f"a {op} 1") == ast.Comparison(op, F("a"), L(1))


def test_single_equals_is_explained():
    e = err("any where a = 1")
    assert "'=='" in e.message and (e.line, e.column) == (1, 13)


# --- predicates ------------------------------------------------------------------


def test_in_variants():
    assert cond('a in ("x", "y")') == ast.In(F("a"), (L("x"), L("y")))
    assert cond('a in~ ("x")') == ast.In(F("a"), (L("x"),), insensitive=True)
    assert cond("a not in (1, 2)") == ast.In(F("a"), (L(1), L(2)), negated=True)
    assert cond("a in (b, c)") == ast.In(F("a"), (F("b"), F("c")))
    assert cond('a not in~ ("X")') == ast.In(F("a"), (L("X"),), insensitive=True, negated=True)


@pytest.mark.parametrize("op", [":", "like", "like~", "regex", "regex~"])
def test_pattern_operators_single_and_list(op):
    assert cond(f'a {op} "x*"') == ast.Pattern(op, F("a"), (L("x*"),))
    assert cond(f'a {op} ("x*", "y")') == ast.Pattern(op, F("a"), (L("x*"), L("y")))


def test_pattern_needs_constants():
    e = err("any where a : b")
    assert "constant" in e.message and (e.line, e.column) == (1, 15)


def test_predicate_applies_to_the_primary_before_it():
    # operatorExpression: primaryExpression predicate? -- so `a + b in (1)` is a + (b in (1)).
    assert cond("a + b in (1)") == ast.Arithmetic("+", F("a"), ast.In(F("b"), (L(1),)))


def test_unclosed_in_list_names_the_opener():
    e = err('any where a in ("x", "y"')
    assert e.message.startswith("expected ')' to close the list opened at line 1, column 16")
    assert (e.line, e.column) == (1, 25)


# --- fields -----------------------------------------------------------------------


def test_field_forms():
    assert cond("?a.b") == F("a", "b", optional=True)
    assert cond("@timestamp > 0").left == F("@timestamp")
    assert cond("`my field` == 1").left == F("my field")
    # ES's IdentifierBuilder.unquoteIdentifier keeps a doubled quote as written and
    # only turns a backslash and a quote into a quote.
    assert cond("`a``b` == 1").left == F("a``b")
    assert cond("`a\\``b` == 1").left == F("a``b")
    assert cond("a.`with-dash`.c == 1").left == F("a", "with-dash", "c")
    assert cond("`sequence` == 1").left == F("sequence")
    # The parts are joined into one name and split at every dot (visitQualifiedName).
    assert cond("`a.b` == 1").left == F("a", "b")
    assert cond("`a.b/c`.`d-e f` == 1").left == F("a", "b/c", "d-e f")


def test_keyword_field_must_be_backquoted():
    e = err("any where sequence == 1")
    assert "`sequence`" in e.message and (e.line, e.column) == (1, 11)
    e = err("any where a.by == 1")
    assert "`by`" in e.message and (e.line, e.column) == (1, 13)


def test_array_index_rejected():
    e = err("any where a[0] == 1")
    assert "array indexes" in e.message


# --- literals and strings --------------------------------------------------------------


def test_numbers():
    assert cond("a == 10").right == L(10)
    assert cond("a == 1.5").right == L(1.5)
    assert cond("a == .5").right == L(0.5)
    assert cond("a == 1.").right == L(1.0)
    assert cond("a == 1e3").right == L(1000.0)
    assert cond("a == 2.5E-1").right == L(0.25)
    assert cond("a == 1.e2").right == L(100.0)
    assert cond("a == .5e+1").right == L(5.0)
    assert type(cond("a == 1e3").right.value) is float


def test_booleans_and_null():
    assert cond("a == true").right == L(True)
    assert cond("a == false").right == L(False)
    assert cond("a == null").right == L(None)


def test_string_escapes():
    assert cond(r'a == "x\n\r\t\"\'\\\b\f"').right == L("x\n\r\t\"'\\\b\f")
    assert cond(r'a == "\u{41}\u{1F600}"').right == L("A\U0001f600")


def test_unknown_escape_passes_through():
    # AbstractBuilder.unquoteString: "unknown escape sequence, pass through as-is, e.g: \\w".
    assert cond(r'a regex "\d+\w"').patterns == (L(r"\d+\w"),)


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        (r"\u{1}", "unicode sequence should use [2-8] hex digits, [\\u{1}] has [1]"),
        (r"\u{000000041}", "unicode sequence should use [2-8] hex digits, [\\u{000000041}] has [9]"),
        (r"\u{D800}", "invalid unicode character code, [D800] is a surrogate code"),
        (r"\u{zz}", "invalid unicode character code [zz]"),
        (r"\u{110000}", "invalid unicode character code [110000]"),
    ],
)
def test_bad_unicode_escapes(literal, message):
    e = err(f'any where a == "ab{literal}"')
    assert e.message == message
    assert (e.line, e.column) == (1, 19)


def test_triple_quoted_raw_strings():
    assert cond(r'a == """C:\temp\x"""').right == L(r"C:\temp\x")
    assert cond('a == """say "hi" """').right == L('say "hi" ')
    # '"""' .*? '"""' '"'? '"'? : quotes right before the close stay in the value.
    assert cond('a == """x"""""').right == L('x""')


def test_single_quotes_rejected_with_advice():
    e = err("any where a == 'x'")
    assert e.message == "single quotes are not allowed for strings; use double quotes"
    assert (e.line, e.column) == (1, 16)


def test_unterminated_string():
    e = err('any where a == "abc')
    assert "unterminated" in e.message and (e.line, e.column) == (1, 16)
    assert "unterminated" in err('any where a == "ab\nc"').message


def test_comments_are_ignored_and_nest():
    st = parse("process where /* a /* nested */ comment */ true // trailing\n and false")
    assert st.query.condition == ast.And((L(True), L(False)))
    assert "unterminated comment" in err("any where true /* open").message


# --- functions ---------------------------------------------------------------------------


def test_function_calls():
    assert cond('startsWith(a, "x")') == ast.FunctionCall("startsWith", (F("a"), L("x")))
    assert cond('endsWith~(a, "X")') == ast.FunctionCall("endsWith", (F("a"), L("X")), insensitive=True)
    assert cond("length(a) > 3").left == ast.FunctionCall("length", (F("a"),))
    assert cond("anything() == 1").left == ast.FunctionCall("anything", ())
    assert cond('cidrMatch(ip, "10.0.0.0/8")').loc == (1, 11)


def test_unclosed_function_call():
    e = err('any where startsWith(a, "x"')
    assert "close the call of startsWith opened at line 1, column 21" in e.message


# --- sequences ----------------------------------------------------------------------------


def test_sequence_by_with_stages_and_until():
    st = parse(
        "sequence by host.id with maxspan=30s\n"
        "  [process where true] by process.pid\n"
        "  [file where true] by process.pid with runs=3\n"
        "until [process where false] by process.pid"
    )
    seq = st.query
    assert isinstance(seq, ast.Sequence)
    assert seq.maxspan_ms == 30_000
    assert seq.stages[0].keys == (F("host", "id"), F("process", "pid"))
    assert seq.stages[1].runs == 3
    assert seq.stages[0].loc == (2, 3)
    assert seq.until.keys == (F("host", "id"), F("process", "pid"))
    assert seq.until.query.category == "process"


@pytest.mark.parametrize(
    ("span", "ms"), [("5ms", 5), ("2s", 2000), ("3m", 180_000), ("1h", 3_600_000), ("2d", 172_800_000)]
)
def test_maxspan_units(span, ms):
    assert parse(f"sequence with maxspan={span} [a where true] [b where true]").query.maxspan_ms == ms


def test_maxspan_errors():
    assert (
        "no time unit specified, did you mean [s] as in [5s]?"
        in err("sequence with maxspan=5 [a where true] [b where true]").message
    )
    e = err("sequence with maxspan=5y [a where true] [b where true]")
    assert "unrecognized time unit [y] in [5y]" in e.message and (e.line, e.column) == (1, 24)
    assert "positive maxspan" in err("sequence with maxspan=0s [a where true] [b where true]").message
    assert "decimal" in err("sequence with maxspan=1.5s [a where true] [b where true]").message


def test_by_after_with_is_rejected_like_elasticsearch():
    e = err("sequence with maxspan=1s by a [x where true] [y where true]")
    assert e.message == "please specify sequence [by] before [with] not after"


def test_sequence_needs_two_queries_counting_runs():
    e = err("sequence [a where true]")
    assert "minimum of 2 queries, found [1]" in e.message
    assert parse("sequence [a where true] with runs=2").query.stages[0].runs == 2


def test_runs_bounds():
    assert "positive runs" in err("sequence [a where true] with runs=0 [b where true]").message
    assert "more than 100" in err("sequence [a where true] with runs=101 [b where true]").message
    assert "expecting [runs]" in err("sequence [a where true] with walks=2 [b where true]").message


def test_inconsistent_join_keys_point_at_the_keys():
    e = err("sequence [a where true] by x [b where true] by x, y")
    assert "expected [1] but found [2]" in e.message
    assert (e.line, e.column) == (1, 45)


def test_missing_event_stages():
    seq = parse("sequence with maxspan=1m [a where true] ![b where true] [c where true]").query
    assert [s.missing for s in seq.stages] == [False, True, False]
    assert seq.stages[1].loc == (1, 41)
    trailing = "sequence with maxspan=1m [a where true] ![b where true]"
    assert parse(trailing).query.stages[-1].missing
    assert "maxspan" in err("sequence [a where true] ![b where true]").message
    assert "positive event" in err("sequence with maxspan=1m ![a where true] ![b where true]").message
    assert "until" in err("sequence [a where true] [b where true] until ![c where true]").message


def test_unclosed_stage_names_the_opener():
    e = err("sequence\n  [process where true\n  [file where true]")
    assert e.message.startswith("expected ']' to close the sequence stage opened at line 2, column 3")
    assert (e.line, e.column) == (3, 3)


def test_join_and_process_relationships_are_unsupported():
    assert "join" in err("join [a where true] [b where true]").message
    assert "relationships" in err("process where descendant of [process where true]").message


# --- samples -------------------------------------------------------------------------------


def test_sample_keys():
    smp = parse("sample by host.id [a where true] by x [b where true] by y").query
    assert isinstance(smp, ast.Sample)
    assert smp.stages[0].keys == (F("host", "id"), F("x"))
    assert smp.stages[1].keys == (F("host", "id"), F("y"))
    assert "minimum of 2" in err("sample [a where true]").message
    assert "missing event" in err("sample [a where true] ![b where true]").message


# --- pipes -----------------------------------------------------------------------------------


def test_head_and_tail():
    st = parse("any where true | head 5 | tail 2")
    assert st.pipes == (ast.Pipe("head", 5), ast.Pipe("tail", 2))
    assert st.pipes[1].loc == (1, 25)


def test_pipe_errors():
    e = err("any where true | sort a")
    assert e.message == "pipe [sort] is not supported: supported pipes are head and tail"
    assert (e.line, e.column) == (1, 18)
    assert err("any where true | bogus 1").message.startswith("unknown pipe [bogus]")
    assert "positive integer" in err("any where true | head -1").message
    assert "positive integer" in err('any where true | head "x"').message
    assert "exactly one argument" in err("any where true | head").message


# --- general errors and rendering --------------------------------------------------------------


def test_trailing_garbage_and_empty_query():
    e = err("any where true )")
    assert (e.line, e.column) == (1, 16)
    e = err("any where a == 1 b == 2")
    assert e.message == "expected 'and', 'or', a pipe '|' or the end of the query but found 'b'"
    assert (e.line, e.column) == (1, 18)
    e = err('any where a not like "x"')
    assert "must be followed by 'in'" in e.message and (e.line, e.column) == (1, 13)
    assert "empty query" in err("   ").message
    assert "'where'" in err("process true").message


def test_render_shows_line_and_caret():
    e = err('process where\n  a == "x" and and b')
    out = e.render()
    assert "line 2, column 16" in out
    assert out.splitlines()[-2:] == ["  " + '  a == "x" and and b', "  " + " " * 15 + "^"]


def test_tokenizer_positions_across_lines():
    toks = tokenize('a\n  ==  "b"')
    assert [(t.kind, t.line, t.column) for t in toks] == [
        ("ident", 1, 1),
        ("op", 2, 3),
        ("string", 2, 7),
        ("eof", 2, 10),
    ]


def test_parse_expression():
    assert parse_expression("a == 1 or b") == ast.Or((ast.Comparison("==", F("a"), L(1)), F("b")))
    with pytest.raises(EqlSyntaxError):
        parse_expression("a ==")


def test_every_node_has_a_location():
    st = parse(
        'sequence by h [process where a : ("x", "y") and length(b) > -1 + c] '
        '[file where not ?d in (1) or e like~ "z"] | head 1'
    )
    for node in ast.walk(st):
        if hasattr(node, "loc") and not isinstance(node, ast.Statement):
            assert node.loc != ast.NO_LOC, node


def test_every_conformance_query_parses(shared):
    # Elasticsearch's own EQL spec queries (test_sampling.toml is an obsolete prototype syntax).
    import re
    import tomllib

    folder = shared / "conformance" / "elasticsearch-eql"
    queries = []
    for path in sorted(folder.glob("*.toml")):
        if path.name == "test_sampling.toml":
            continue
        text = path.read_text(encoding="utf-8")
        try:
            queries += [(path.name, q["query"]) for q in tomllib.loads(text).get("queries", [])]
        except tomllib.TOMLDecodeError:
            # test_extra.toml is not strict TOML (bare nulls in arrays): read each query key alone.
            for chunk in re.split(r"^(?=query\s*=)", text, flags=re.M)[1:]:
                end = re.compile(r"^(?:[A-Za-z_]+\s*=|\[\[)", re.M).search(chunk, 1)
                head = chunk if end is None else chunk[: end.start()]
                queries.append((path.name, tomllib.loads(head)["query"]))
    assert len(queries) > 250
    failures = []
    for name, query in queries:
        try:
            parse(query)
        except EqlSyntaxError as exc:
            failures.append(f"{name}: {exc.render()}")
    assert failures == []


_ALPHABET = "abz_@`\"'\\ .,:;!?=<>+-*/%()[]|~{}\n\t019eE"
_WORDS = [
    "any",
    "where",
    "sequence",
    "sample",
    "by",
    "with",
    "maxspan",
    "runs",
    "until",
    "and",
    "or",
    "not",
    "in",
    "in~",
    "like",
    "regex~",
    "true",
    "null",
    "head",
    "tail",
    '"""',
    "\\u{",
    "/*",
    "*/",
    "//",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_WORDS), st.text(_ALPHABET, max_size=3)), max_size=30))
def test_any_text_parses_or_raises_a_positioned_syntax_error(parts):
    text = " ".join(parts)
    try:
        parse(text)
    except EqlSyntaxError as exc:
        assert exc.line is not None and exc.column is not None
        assert 1 <= exc.line <= text.count("\n") + 1
        assert exc.column >= 1
        exc.render()


def test_deep_nesting_is_a_syntax_error_not_a_crash():
    e = err("any where " + "(" * 5000 + "a" + ")" * 5000)
    assert "nested too deeply" in e.message
    assert parse("any where " + "(" * 40 + "a" + ")" * 40).query.condition == F("a")


@pytest.mark.parametrize("prefix", ["not ", "-", "length("])
def test_deep_prefix_chains_are_bounded(prefix):
    closing = ")" * 500 if prefix.endswith("(") else ""
    e = err("any where " + prefix * 500 + "a" + closing)
    assert "nested too deeply" in e.message


def test_end_of_query_errors_point_after_the_last_token():
    e = err("process where\n  a ==\n\n  ")
    assert (e.line, e.column) == (2, 7)
    assert e.render().splitlines()[-1] == "  " + " " * 6 + "^"


# --- round trip: any syntax tree, written out fully parenthesized, parses back to itself ------------

_KEYWORDS = {
    "and",
    "any",
    "by",
    "false",
    "in",
    "join",
    "like",
    "maxspan",
    "not",
    "null",
    "of",
    "or",
    "regex",
    "sample",
    "sequence",
    "true",
    "until",
    "where",
    "with",
}
_names = st.from_regex(r"[a-z_@][a-z0-9_]{0,6}", fullmatch=True).filter(lambda n: n not in _KEYWORDS)
_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _write(e: ast.Expr) -> str:
    match e:
        case ast.Literal(value=v):
            if v is None or isinstance(v, bool):
                return {None: "null", True: "true", False: "false"}[v]
            if isinstance(v, str):
                return '"' + "".join(_ESC.get(c, c) for c in v) + '"'
            return repr(v)
        case ast.Field(path=p, optional=o):
            return ("?" if o else "") + ".".join("`" + x + "`" for x in p)
        case ast.Comparison(op=op, left=a, right=b) | ast.Arithmetic(op=op, left=a, right=b):
            return f"({_write(a)} {op} {_write(b)})"
        case ast.Pattern(op=op, value=v, patterns=ps):
            return f"(({_write(v)}) {op} (" + ", ".join(map(_write, ps)) + "))"
        case ast.In(value=v, items=items, insensitive=i, negated=n):
            op = ("not in" if n else "in") + ("~" if i else "")
            return f"(({_write(v)}) {op} (" + ", ".join(map(_write, items)) + "))"
        case ast.Not(expr=x):
            return f"(not {_write(x)})"
        case ast.Negate(expr=x):
            return f"(-({_write(x)}))"
        case ast.And(terms=ts):
            return "(" + " and ".join(map(_write, ts)) + ")"
        case ast.Or(terms=ts):
            return "(" + " or ".join(map(_write, ts)) + ")"
        case ast.FunctionCall(name=n, args=args, insensitive=i):
            return f"{n}{'~' if i else ''}(" + ", ".join(map(_write, args)) + ")"
    raise AssertionError(e)


_literals = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12).map(int),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from('\n\t\r"\\'), max_size=8),
).map(ast.Literal)
# A parsed name is split at every dot, and a back-quote in it cannot be written
# alone (ES keeps "``" as two), so the parts hold neither.
_fields = st.builds(
    lambda parts, opt: ast.Field(tuple(parts), optional=opt),
    st.lists(
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters=".`"), min_size=1, max_size=5
        ),
        min_size=1,
        max_size=3,
    ),
    st.booleans(),
)


def _compound(children):
    two_plus = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(
        st.builds(ast.Comparison, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), children, children),
        st.builds(ast.Arithmetic, st.sampled_from(["+", "-", "*", "/", "%"]), children, children),
        st.builds(
            ast.Pattern,
            st.sampled_from([":", "like", "like~", "regex", "regex~"]),
            children,
            st.lists(_literals, min_size=1, max_size=3).map(tuple),
        ),
        st.builds(
            ast.In,
            children,
            st.lists(children, min_size=1, max_size=3).map(tuple),
            st.booleans(),
            st.booleans(),
        ),
        st.builds(ast.Not, children),
        st.builds(ast.Negate, children),
        st.builds(ast.And, two_plus),
        st.builds(ast.Or, two_plus),
        st.builds(ast.FunctionCall, _names, st.lists(children, max_size=3).map(tuple), st.booleans()),
    )


_exprs = st.recursive(st.one_of(_literals, _fields), _compound, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_exprs)
def test_written_trees_parse_back_to_themselves(expr):
    text = _write(expr)
    assert parse_expression(text) == expr, text
