"""Elasticsearch's EQL semantics, rule by rule, through the compiler and the
reference interpreter (both must give the same answer)."""

from __future__ import annotations

import json

import pytest

from vigil.eql import ast, interpreter
from vigil.eql import semantics as S
from vigil.eql.compiler import compile_condition, compile_event_filter, compile_value
from vigil.eql.schema import Schema


def F(name: str, optional: bool = False) -> ast.Field:
    return ast.Field(tuple(name.split(".")), optional)


def L(v) -> ast.Literal:
    return ast.Literal(v)


def cmp(op, a, b):
    return ast.Comparison(op, a, b)


def both(expr, doc, schema=None) -> bool:
    """The compiled answer, checked against the interpreter's."""
    got = compile_condition(expr, schema)(doc)
    ref = interpreter.matches(expr, doc, schema)
    assert got == ref, f"compiler {got} != interpreter {ref} for {expr} on {doc}"
    return got


ECS = Schema.ecs()


# --- case sensitivity --------------------------------------------------------------


def test_equality_is_case_sensitive_and_colon_is_not():
    doc = {"process": {"name": "CMD.EXE"}}
    assert not both(cmp("==", F("process.name"), L("cmd.exe")), doc, ECS)
    assert both(ast.Pattern(":", F("process.name"), (L("cmd.exe"),)), doc, ECS)
    assert not both(ast.Pattern("like", F("process.name"), (L("cmd.*"),)), doc, ECS)
    assert both(ast.Pattern("like~", F("process.name"), (L("cmd.*"),)), doc, ECS)
    assert not both(ast.In(F("process.name"), (L("cmd.exe"),)), doc, ECS)
    assert both(ast.In(F("process.name"), (L("cmd.exe"),), insensitive=True), doc, ECS)


def test_wildcards_only_in_colon_and_like():
    doc = {"a": "x*y"}
    assert both(cmp("==", F("a"), L("x*y")), doc)
    assert not both(cmp("==", F("a"), L("x*")), doc)
    assert not both(ast.In(F("a"), (L("x*"),)), doc)
    assert both(ast.Pattern(":", F("a"), (L("x*"),)), doc)
    assert both(ast.Pattern("like", F("a"), (L("x?y"),)), doc)


def test_wildcard_matches_the_whole_value_with_newlines():
    doc = {"cmd": "bash -c 'a\nb'"}
    assert both(ast.Pattern(":", F("cmd"), (L("*a*b*"),)), doc)
    assert both(ast.Pattern(":", F("cmd"), (L("bash*"),)), doc)
    assert not both(ast.Pattern(":", F("cmd"), (L("a*"),)), doc)
    assert both(ast.Pattern(":", F("cmd"), (L("bash -c 'a?b'"),)), doc)


def test_backslash_is_no_wildcard_escape():
    # Windows paths: "\\*" is a backslash then a wildcard.
    doc = {"p": "C:\\Windows\\System32\\cmd.exe"}
    assert both(ast.Pattern(":", F("p"), (L("c:\\windows\\*\\cmd.exe"),)), doc)


def test_string_matcher_prefix_suffix_contains_regex():
    t = __import__("vigil.eql.compiler", fromlist=["x"]).string_matcher(
        ["/usr/*", "*.so", "*dracut*", "a?c", "exact", "x*y*z"], insensitive=True
    )
    assert t("/USR/bin") and t("lib.SO") and t("my-dracut-x") and t("abc") and t("EXACT") and t("xQyQz")
    assert not t("usr") and not t("ac") and not t("exactly") and not t("xz")


# --- regex -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        (".*?net1.*?", "c:\\net1.exe", True),
        ("net1", "xnet1", False),  # anchored to the whole value
        ("a.c", "a\nc", True),  # '.' matches newlines in Lucene
        ("^ab$", "^ab$", True),  # ^ and $ are plain characters
        ("ab", "^ab", False),
        ('"a.b"c', "a.bc", True),  # quoted text is literal
        ('"a.b"c', "axbc", False),
        ("@", "anything\nat all", True),  # @ is any string
        ("a#", "a", False),  # # is the empty language
        ("<1-12>", "7", True),
        ("<1-12>", "13", False),
        ("[a-c]+", "abcab", True),
        ("[^a-c]+", "xyz", True),
        ("[^a-c]+", "xaz", False),
        ("a{2,3}", "aaa", True),
        ("a{2,3}", "aaaa", False),
        ("\\d+", "123", True),
        ("a\\.b", "a.b", True),
        ("a\\.b", "axb", False),
    ],
)
def test_lucene_regex(pattern, value, expected):
    assert S.regex_match(value, pattern, False) is expected


def test_regex_insensitive():
    assert S.regex_match("NET1", "net[0-9]", True)
    assert not S.regex_match("NET1", "net[0-9]", False)


@pytest.mark.parametrize("bad", ["a~b", "a&b", "(ab", "[ab", "a\\"])
def test_regex_errors(bad):
    with pytest.raises(S.RegexSyntaxError):
        S.lucene_regex(bad, False)


# --- missing, null, arrays, not -----------------------------------------------------


def test_missing_field_comparisons_are_false():
    doc = {"other": 1}
    for op in ("==", "<", "<=", ">", ">="):
        assert not both(cmp(op, F("x"), L(1)), doc)
    # not of == is != (a must_not query): true on a missing field
    assert both(ast.Not(cmp("==", F("x"), L(1))), doc)


def test_not_of_a_range_is_its_complement():
    # ES's EQL optimizer does not negate comparisons: EqlBooleanSimplification
    # overrides maybeSimplifyNegatable to return null (Optimizer.java), so
    # `not (x > 1)` is a bool must_not of the range query (QL ExpressionTranslators.
    # Nots): true on a missing field, false when any value of an array is in range.
    for op in ("<", "<=", ">", ">="):
        assert both(ast.Not(cmp(op, F("x"), L(1))), {"other": 1})
        assert both(ast.Not(cmp(op, L(1), F("x"))), {})
    assert not both(ast.Not(cmp("<", F("n"), L(5))), {"n": [1, 10]})
    assert both(ast.Not(cmp("<", F("n"), L(5))), {"n": [5, 10]})
    assert not both(ast.Not(cmp(">", F("n"), L(1))), {"n": [0, 10]})
    # a double not cancels (QL BooleanSimplification.simplifyNot)
    assert both(ast.Not(ast.Not(cmp("<", F("n"), L(5)))), {"n": [1, 10]})
    assert not both(ast.Not(ast.Not(cmp("<", F("n"), L(5)))), {})
    assert both(ast.Not(ast.And((cmp(">", F("x"), L(1)), L(True)))), {})
    # a script stays three-valued: not (null > 1) is null
    assert not both(ast.Not(cmp(">", ast.FunctionCall("length", (F("x"),)), L(1))), {})


def test_not_of_a_comparison_with_an_absent_optional_field_is_null():
    # ES replaces ?absent with null and folds the condition (ConstantFolding):
    # not (null > 1) is null, and a filter keeps only true.
    schema = Schema.from_mapping({"properties": {"m": {"type": "long"}}})
    for op in ("<", "<=", ">", ">="):
        assert not both(ast.Not(cmp(op, F("nope", True), L(1))), {"nope": 5}, schema)
        assert not both(ast.Not(cmp(op, F("nope", True), L(1))), {}, schema)
    assert not both(ast.Not(ast.Pattern(":", F("nope", True), (L("a*"),))), {}, schema)
    assert not both(ast.Not(ast.In(F("nope", True), (L("a"),))), {}, schema)
    # ReplaceNullChecks: ?absent == 1 is `1 is null`, false, so its not is true
    assert both(ast.Not(cmp("==", F("nope", True), L(1))), {}, schema)
    # a known optional field is a field like any other
    assert both(ast.Not(cmp(">", F("m", True), L(1))), {}, schema)


def test_not_equal_is_not_equal_to():
    # ES translates `x != v` to a must_not term query (QL ExpressionTranslators.
    # BinaryComparisons: NotEquals -> NotQuery(TermQuery)): true on a missing
    # field, false when any value of an array equals v.
    assert both(cmp("!=", F("x"), L(1)), {"other": 1})
    assert both(cmp("!=", L(1), F("x")), {})
    assert not both(cmp("!=", F("tags"), L("a")), {"tags": ["a", "b"]})
    assert both(cmp("!=", F("tags"), L("c")), {"tags": ["a", "b"]})
    assert not both(ast.Not(cmp("!=", F("x"), L(1))), {})
    # a script comparison stays three-valued: null != 1 is null
    assert not both(cmp("!=", ast.FunctionCall("string", (F("x"),)), L("1")), {})


def test_missing_field_patterns_are_false_and_not_is_true():
    doc = {"other": 1}
    assert not both(ast.Pattern(":", F("x"), (L("*"),)), doc)
    assert both(ast.Not(ast.Pattern(":", F("x"), (L("*"),))), doc)
    assert both(ast.In(F("x"), (L(1),), negated=True), doc)


def test_null_checks_mean_exists():
    assert both(cmp("==", F("x"), L(None)), {"x": None})
    assert both(cmp("==", F("x"), L(None)), {})
    assert both(cmp("==", F("x"), L(None)), {"x": [None, None]})
    assert not both(cmp("==", F("x"), L(None)), {"x": 0})
    assert both(cmp("!=", F("x"), L(None)), {"x": ""})
    assert both(cmp("==", L(None), F("x")), {})


def test_script_null_stays_null_under_not():
    # ES runs functions as scripts: not(null) is null, which filters the event out.
    expr = ast.Not(cmp("==", ast.FunctionCall("length", (F("x"),)), L(3)))
    assert not both(expr, {})
    assert both(expr, {"x": "ab"})
    assert not both(expr, {"x": "abc"})
    # null == (comparison) selects events where the comparison is unknown
    null_cmp = cmp("==", L(None), cmp(">", F("exit_code"), L(-1)))
    assert both(null_cmp, {"pid": 1})
    assert not both(null_cmp, {"exit_code": 0})


def test_array_matches_when_any_value_matches():
    doc = {"tags": ["a", "b"], "n": [1, 5]}
    assert both(cmp("==", F("tags"), L("b")), doc)
    assert not both(cmp("!=", F("tags"), L("a")), doc)  # must_not: an "a" is there
    assert both(cmp(">", F("n"), L(4)), doc)
    assert both(cmp("<", F("n"), L(2)), doc)
    assert not both(cmp(">", F("n"), L(5)), doc)
    assert both(ast.In(F("tags"), (L("z"), L("a"))), doc)


def test_dotted_keys_and_objects_are_the_same_field():
    for doc in ({"file.path": "/a"}, {"file": {"path": "/a"}}, {"file": [{"path": "/a"}]}):
        assert both(cmp("==", F("file.path"), L("/a")), doc)


def test_functions_see_first_doc_value():
    # A script reads the smallest doc value of a multi-valued field.
    expr = cmp("==", ast.FunctionCall("string", (F("tags"),)), L("a"))
    assert both(expr, {"tags": ["b", "a"]})
    assert not both(cmp("==", ast.FunctionCall("string", (F("tags"),)), L("b")), {"tags": ["b", "a"]})


def test_query_functions_match_any_value():
    expr = ast.FunctionCall("startsWith", (F("args"), L("-e")))
    assert both(expr, {"args": ["bash", "-enc"]})
    assert both(ast.Not(expr), {})


# --- types -------------------------------------------------------------------------


def test_keyword_reads_numbers_as_strings():
    assert both(cmp("==", F("user.id"), L("0")), {"user": {"id": 0}}, ECS)
    assert both(ast.Pattern(":", F("user.id"), (L("0"),)), {"user": {"id": 0}}, ECS)
    assert both(ast.In(F("group.id"), (L("0"), L("4"))), {"group": {"id": 4}}, ECS)


def test_number_literal_on_keyword_field_is_its_text():
    # A term query on a keyword field searches the number's text: 0 finds "0", not "00".
    assert both(cmp("==", F("user.id"), L(0)), {"user": {"id": "0"}}, ECS)
    assert not both(cmp("==", F("user.id"), L(0)), {"user": {"id": "00"}}, ECS)


def test_long_reads_strings_as_numbers():
    assert both(cmp("==", F("process.pid"), L(10)), {"process": {"pid": "10"}}, ECS)
    assert both(cmp(">", F("process.parent.pid"), L(9)), {"process": {"parent": {"pid": "10"}}}, ECS)
    assert not both(cmp(">", F("process.pid"), L(9)), {"process": {"pid": "ten"}}, ECS)


def test_dates_compare_with_iso_strings_and_millis():
    doc = {"@timestamp": "2017-08-30T20:47:33Z"}
    assert both(cmp("==", F("@timestamp"), L("2017-08-30T20:47:33Z")), doc, ECS)
    assert both(cmp("==", F("@timestamp"), L(1504126053000)), doc, ECS)
    assert both(cmp("<", F("@timestamp"), L("2017-08-30T20:47:34.000Z")), doc, ECS)
    assert both(cmp(">", F("@timestamp"), L(1504126052999)), {"@timestamp": 1504126053000}, ECS)
    assert both(cmp("==", F("@timestamp"), L(1)), {"@timestamp": "1"}, ECS)


def test_ip_comparisons():
    doc = {"source": {"ip": "10.0.0.5"}}
    assert both(cmp("==", F("source.ip"), L("10.0.0.5")), doc, ECS)
    assert both(cmp(">", F("source.ip"), L("10.0.0.4")), doc, ECS)
    assert not both(cmp("==", F("source.ip"), L("10.0.0.05x")), doc, ECS)
    assert both(ast.FunctionCall("cidrMatch", (F("source.ip"), L("10.0.0.0/8"))), doc, ECS)


def test_versions_order_semantically_and_invalid_last():
    schema = Schema.from_mapping({"properties": {"v": {"type": "version"}}})
    assert both(cmp(">", F("v"), L("1.5.0")), {"v": "1.11.3"}, schema)
    assert not both(cmp(">", F("v"), L("1.5.0")), {"v": "1.2.4"}, schema)
    assert both(cmp("<", F("v"), L("1.0.0")), {"v": "1.0.0-alpha"}, schema)
    assert both(cmp(">", F("v"), L("99.0.0")), {"v": "bad"}, schema)
    assert both(cmp("==", F("v"), L("bad")), {"v": "bad"}, schema)
    assert S.VersionValue("1.0.0-alpha.1") < S.VersionValue("1.0.0-alpha.beta")
    assert S.VersionValue("1.0.0-2") < S.VersionValue("1.0.0-11")


def test_boolean_field():
    schema = Schema.from_mapping({"properties": {"b": {"type": "boolean"}}})
    assert both(F("b"), {"b": True}, schema)
    assert both(F("b"), {"b": "true"}, schema)
    assert not both(F("b"), {"b": False}, schema)
    assert both(cmp("==", F("b"), L(False)), {"b": "false"}, schema)


def test_null_value_and_optional_fields():
    schema = Schema.from_mapping(
        {"properties": {"d": {"type": "keyword", "null_value": "NULL"}, "m": {"type": "keyword"}}}
    )
    assert both(cmp("==", F("d", True), L("NULL")), {"d": None}, schema)
    assert not both(cmp("==", F("d", True), L(None)), {"d": None}, schema)
    assert both(cmp("==", F("d", True), L(None)), {}, schema)
    # ?unknown is null: equal to null, and to another unknown optional field
    assert both(cmp("==", F("nope", True), L(None)), {"nope": 1}, schema)
    assert both(cmp("==", F("nope", True), F("other", True)), {}, schema)
    assert not both(F("nope", True), {"nope": True}, schema)
    assert not both(cmp("==", F("m", True), L(123)), {}, schema)


def test_text_with_keyword_subfield_and_alias():
    mapping = {
        "properties": {
            "event_type": {"type": "keyword"},
            "event": {"properties": {"category": {"type": "alias", "path": "event_type"}}},
            "host": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
        }
    }
    schema = Schema.from_mapping(mapping)
    assert schema.resolve("event.category") == "event_type"
    assert schema.field_type("host") == "text"
    assert schema.field_type("host.keyword") == "keyword"
    q = ast.EventQuery("process", cmp("==", F("host"), L("Web")))
    f = compile_event_filter(q, schema)
    assert f({"event_type": "process", "host": "Web"})
    assert not f({"event_type": "file", "host": "Web"})
    assert not f({"event_type": "process", "host": "web"})


def test_category_matches_any_value():
    q = ast.EventQuery("file", L(True))
    f = compile_event_filter(q, ECS)
    assert f({"event": {"category": ["process", "file"]}})
    assert not f({"event": {"category": "process"}})
    assert compile_event_filter(ast.EventQuery(None, L(True)), ECS)({})


def test_mapping_files_parse(shared):
    data = shared / "conformance" / "elasticsearch-eql"
    eg = Schema.from_mapping(data / "data" / "endgame-140.mapping")
    assert eg.field_type("event.category") == "keyword"
    assert eg.field_type("serial_event_id") == "long"
    assert eg.field_type("source_address") == "ip"
    assert eg.field_type("unique_pid") is None and not eg.knows("unique_pid")
    old = Schema.from_mapping(json.loads((data / "mapping-default.json").read_text()))
    assert old.knows("process_name")
    extra = Schema.from_mapping(data / "data" / "extra.mapping")
    assert extra.null_value("optional_field_default_null") == "NULL"
    assert extra.field_type("version") == "version"


def test_compile_value_shapes():
    assert compile_value(F("a"))({"a": [1, 2]}) == [1, 2]
    assert compile_value(F("a"))({"a": 1}) == 1
    assert compile_value(F("a"))({}) is None
    assert compile_value(F("x", True), Schema.from_mapping({"properties": {}}))({"x": 1}) is None
    d = compile_value(F("@timestamp"), ECS)({"@timestamp": "1970-01-01T00:00:00Z"})
    assert d == 0 and str(d) == "1970-01-01T00:00:00.000Z"


# --- arithmetic and three-valued logic -----------------------------------------------


@pytest.mark.parametrize(
    ("op", "a", "b", "want"),
    [
        ("/", 83, 2, 41),
        ("/", -7, 2, -3),  # Java truncates toward zero
        ("%", -7, 3, -1),  # remainder takes the dividend's sign
        ("%", 7, -3, 1),
        ("/", 30, 4.0, 7.5),
        ("/", 1, 0, None),
        ("+", None, 1, None),
        ("*", 6, 5, 30),
        ("-", 1, "a", None),
    ],
)
def test_arithmetic(op, a, b, want):
    assert S.arithmetic(op, a, b) == want


def test_three_valued_logic():
    assert S.and3(None, False) is False and S.and3(None, True) is None
    assert S.or3(None, True) is True and S.or3(None, False) is None
    assert S.not3(None) is None and S.not3(True) is False


def test_string_conversion_like_java():
    assert S.to_string(5) == "5"
    assert S.to_string(7.5) == "7.5"
    assert S.to_string(1.0) == "1.0"
    assert S.to_string(1e20) == "1.0E20"
    assert S.to_string(True) == "true"
    assert S.convert(0, "keyword") == "0"
    assert S.convert("10", "long") == 10
    assert S.convert("x", "long") is S.INVALID


def test_ecs_table_types():
    assert ECS.field_type("process.parent.pid") == "long"
    assert ECS.field_type("destination.port") == "long"
    assert ECS.field_type("source.ip") == "ip"
    assert ECS.field_type("event.created") == "date"
    assert ECS.field_type("user.id") == "keyword"
    assert ECS.field_type("file.size") == "long"
    assert ECS.field_type("process.args_count") == "long"
    assert ECS.field_type("something.unknown") is None


def test_dynamic_mapping_from_documents():
    schema = Schema.from_mapping({"properties": {"a": {"type": "long"}}})
    schema.add_dynamic([{"a": "x", "b": {"c": [1, 2]}, "d.e": "s", "f": [{"g": True}], "h": 1.5, "n": None}])
    assert schema.field_type("a") == "long"  # the mapping wins
    assert schema.field_type("b.c") == "long"
    assert schema.field_type("d.e") == "keyword"
    assert schema.field_type("f.g") == "boolean"
    assert schema.field_type("h") == "double"
    assert not schema.knows("n")  # a null maps nothing


def test_generated_filter_reads_dotted_keys_and_objects_together():
    q = ast.EventQuery("file", ast.Pattern(":", F("process.args"), (L("-enc*"),)))
    f = compile_event_filter(q, ECS)
    # "event.category" as a dotted key and as an object: both values count
    assert f(
        {"event.category": "file", "event": {"category": "process"}, "process": {"args": ["ps", "-ENCx"]}}
    )
    assert f({"event": {"category": ["process", "file"]}, "process.args": "-enc"})
    assert f({"event": [{"category": "file"}], "process": {"args": ["a", 5, "-enc"]}})
    assert not f({"event": {"category": "file"}, "process": {"args": ["ps", 5]}})
    assert not f({"event": {"category": "process"}, "process": {"args": "-enc"}})
    assert not f({"event": {"category": "file"}})
    assert not f({"event": "file", "process": {"args": "-enc"}})


def test_functions_on_a_field_run_as_es_queries():
    # EQL's QueryTranslator: endsWith/stringContains on a field become wildcard
    # queries "*s" / "*s*" (Lucene wildcard syntax inside s), startsWith a prefix
    # query, cidrMatch a terms query on the ip field.
    sc = ast.FunctionCall("stringContains", (F("x"), L("")))
    assert both(sc, {"x": "abc"})  # "**" matches any value
    # as a value inside a script, the function itself says false
    assert both(cmp("==", ast.FunctionCall("string", (sc,)), L("false")), {"x": "abc"})
    ew = ast.FunctionCall("endsWith", (F("x"), L("a?c")))
    assert both(ew, {"x": "zzabc"})
    assert both(cmp("==", ast.FunctionCall("string", (ew,)), L("false")), {"x": "zzabc"})
    assert both(ast.FunctionCall("endsWith", (F("x"), L("\\\\cmd.exe"))), {"x": "C:\\cmd.exe"})
    sw = ast.FunctionCall("startsWith", (F("x"), L("a*")), insensitive=True)
    assert both(sw, {"x": "A*b"}) and not both(sw, {"x": "Ab"})
    assert both(ast.Not(sw), {})


def test_partial_date_literals_cover_their_span():
    # ES range queries round missing date components: gte/lt to the first
    # millisecond, gt/lte to the last, so == "2017-08-30" is the whole day.
    noon = {"@timestamp": "2017-08-30T12:00:00.250Z"}
    assert both(cmp("==", F("@timestamp"), L("2017-08-30")), noon, ECS)
    assert both(cmp("==", F("@timestamp"), L("2017-08")), noon, ECS)
    assert both(cmp("==", F("@timestamp"), L("2017-08-30T12:00:00Z")), noon, ECS)
    assert not both(cmp("==", F("@timestamp"), L("2017-08-30T12:00:00.000Z")), noon, ECS)
    assert not both(cmp(">", F("@timestamp"), L("2017-08-30")), noon, ECS)
    assert both(cmp("<=", F("@timestamp"), L("2017-08-30")), noon, ECS)
    assert not both(cmp("<", F("@timestamp"), L("2017-08-30")), noon, ECS)
    assert both(cmp(">=", F("@timestamp"), L("2017-08-30")), noon, ECS)
    assert both(cmp("<", L("2017-08-29"), F("@timestamp")), noon, ECS)
    assert both(cmp("==", F("@timestamp"), L("2017-08-30T14:00+02:00")), noon, ECS)
    assert both(cmp("!=", F("@timestamp"), L("2017-08-31")), noon, ECS)


@pytest.mark.parametrize(
    ("op", "a", "b"),
    [("%", float("inf"), 2.0), ("+", 2**1100, 1.0), ("*", 2**62, 4), ("-", -(2**63), 1), ("/", 2**1100, 3.0)],
)
def test_arithmetic_errors_are_null(op, a, b):
    assert S.arithmetic(op, a, b) is None


def test_date_fields_read_with_their_mapping_format(shared):
    # sample1 maps @timestamp_pretty as "dd-MM-yyyy", sample2 as "yyyy-MM-dd";
    # ES returns such join keys as epoch millis ("1671235200000" in test_sample.toml).
    data = shared / "conformance" / "elasticsearch-eql" / "data"
    s1 = Schema.from_mapping(data / "sample1.mapping")
    s2 = Schema.from_mapping(data / "sample2.mapping")
    assert s1.field_type("@timestamp_pretty") == "date"
    assert s1.date_format("@timestamp_pretty") == "dd-MM-yyyy"
    ts = F("@timestamp_pretty")
    assert int(compile_value(ts, s1)({"@timestamp_pretty": "17-12-2022"})) == 1671235200000
    assert int(compile_value(ts, s2)({"@timestamp_pretty": "2022-12-17"})) == 1671235200000
    assert both(cmp("==", ts, L("17-12-2022")), {"@timestamp_pretty": "17-12-2022"}, s1)
    assert both(cmp(">", ts, L("16-12-2022")), {"@timestamp_pretty": "17-12-2022"}, s1)
    assert not both(cmp("==", ts, L("x")), {"@timestamp_pretty": "17-12-2022"}, s1)


@pytest.mark.parametrize(
    ("value", "fmt", "want"),
    [
        ("12-12-2022", "dd-MM-yyyy", 1670803200000),
        ("5", "dd-MM-yyyy||epoch_millis", 5),
        (3, "epoch_second", 3000),
        ("2022-12-17T10:00:00Z", "strict_date_optional_time", 1671271200000),
        ("2022/12/17 10:00", "yyyy/MM/dd HH:mm", 1671271200000),
        ("2022-12-17'T'", "yyyy-MM-dd''", None),
        ("nonsense", "yyyy-MM-dd", None),
    ],
)
def test_parse_with_format(value, fmt, want):
    assert S.parse_with_format(value, fmt) == want


def test_constants_folding_to_null_are_null_checks():
    # EQL's ReplaceNullChecks: a side that folds to null makes == / != a null test.
    folds_null = ast.FunctionCall("concat", (L("a"), L(None)))
    assert both(cmp("==", F("x"), folds_null), {})
    assert not both(cmp("==", F("x"), folds_null), {"x": "a"})
    assert both(cmp("!=", folds_null, F("x")), {"x": "a"})
    assert both(cmp("==", ast.Arithmetic("+", L(1), L(None)), L(None)), {})


def test_function_equals_boolean_is_the_function():
    # ES's BooleanFunctionEqualsElimination: f() == true -> f(), f() == false -> not f()
    cm = ast.FunctionCall("cidrMatch", (F("ip"), L("10.0.0.0/8")))
    doc = {"ip": ["192.168.0.1", "10.1.2.3"]}  # the first doc value is not in range
    assert both(cmp("==", cm, L(True)), doc)
    assert both(cmp("==", L(True), cm), doc)
    assert not both(cmp("!=", cm, L(True)), doc)
    assert both(cmp("==", cm, L(False)), {})  # not of a query: true on a missing field
    assert not both(cmp("==", ast.FunctionCall("string", (F("ip"),)), L(True)), doc)


def test_condition_equals_boolean_is_the_condition():
    # QL's BooleanFunctionEqualsElimination takes any Function on the left, and every
    # operator is one (BinaryComparison, RegexMatch, In, Not, And, Or): (x == 1) == false
    # is not (x == 1), the must_not of a term query, true on a missing field.
    eq = cmp("==", F("x"), L(1))
    for expr in (cmp("==", eq, L(False)), cmp("!=", eq, L(True)), cmp("==", L(False), eq)):
        assert both(expr, {})
        assert not both(expr, {"x": [2, 1]})
        assert both(expr, {"x": [2, 3]})
    wild = ast.Pattern(":", F("x"), (L("a*"),))
    assert both(cmp("!=", wild, L(True)), {})
    assert both(cmp("==", ast.In(F("x"), (L("b"),)), L(True)), {"x": ["a", "b"]})
    assert both(ast.Not(cmp("==", eq, L(True))), {})
    # a boolean field is no Function: b == false stays a term query, false when missing
    assert not both(cmp("==", F("b"), L(False)), {})
    # a script stays three-valued: (length(x) > 1) == false is null on a missing x
    assert not both(cmp("==", cmp(">", ast.FunctionCall("length", (F("x"),)), L(1)), L(False)), {})


def test_same_field_comparisons_in_an_and_each_take_any_value():
    # ES's EQL optimizer runs neither PropagateEquals nor CombineBinaryComparisons
    # (Optimizer.java, "Operator Optimization" batch; removed with multi-value
    # support, elastic/elasticsearch#74567): each comparison is its own query,
    # and any value of an array may satisfy it.
    between = ast.And((cmp(">", F("n"), L(1)), cmp("<", F("n"), L(5))))
    assert both(between, {"n": [0, 10]})
    assert both(between, {"n": [0, 3]})
    assert not both(between, {"n": [0, 1]})
    assert not both(between, {})
    assert not both(ast.Not(between), {"n": [0, 10]})
    assert both(ast.And((cmp("==", F("n"), L(1)), cmp("==", F("n"), L(2)))), {"n": [1, 2]})
    assert not both(ast.And((cmp("==", F("n"), L(1)), cmp("==", F("n"), L(2)))), {"n": [1, 3]})
    # != is a must_not term: false when any value is equal
    assert not both(ast.And((cmp("==", F("n"), L(1)), cmp("!=", F("n"), L(2)))), {"n": [1, 2]})
    assert both(ast.And((cmp(">", F("n"), L(1)), cmp("!=", F("n"), L(10)))), {"n": [0, 5]})
    args = ast.And((cmp("==", F("process.args"), L("-r")), cmp("==", F("process.args"), L("/"))))
    assert both(args, {"process": {"args": ["rm", "-r", "/"]}}, ECS)
    assert not both(args, {"process": {"args": ["rm", "-r", "/tmp"]}}, ECS)
    # nested ands and literals on the left too
    nested = ast.And((cmp("<", L(1), F("n")), ast.And((L(True), cmp(">", L(5), F("n"))))))
    assert both(nested, {"n": [0, 10]})
    assert both(nested, {"n": 2})
    assert not both(nested, {"n": [0, 1]})
    # with the other query kinds on the same field
    mixed = ast.And(
        (
            ast.Pattern(":", F("process.args"), (L("-R*"),)),
            ast.In(F("process.args"), (L("/etc"), L("/"))),
            ast.Not(ast.Pattern(":", F("process.args"), (L("--help"),))),
        )
    )
    assert both(mixed, {"process": {"args": ["chmod", "-r", "/"]}}, ECS)
    assert not both(mixed, {"process": {"args": ["chmod", "-r", "/", "--HELP"]}}, ECS)


def test_cidr_literal_on_an_ip_field_matches_the_block():
    # A term(s) query on an ip field accepts CIDR notation.
    doc = {"destination": {"ip": ["192.168.1.7", "8.8.8.8"]}}
    assert both(cmp("==", F("destination.ip"), L("192.168.0.0/16")), doc, ECS)
    assert both(ast.In(F("destination.ip"), (L("10.0.0.0/8"), L("8.8.8.0/24"))), doc, ECS)
    assert not both(ast.In(F("destination.ip"), (L("10.0.0.0/8"), L("::1/128"))), doc, ECS)
    assert not both(cmp("!=", F("destination.ip"), L("8.8.0.0/16")), doc, ECS)
    assert both(
        cmp("==", F("destination.ip"), L("2001:db8::/32")), {"destination": {"ip": "2001:db8::5"}}, ECS
    )


def test_ignore_above_hides_long_strings(shared):
    # endgame-140.mapping: hostname is text with a keyword sub-field, ignore_above 256.
    schema = Schema.from_mapping(
        shared / "conformance" / "elasticsearch-eql" / "data" / "endgame-140.mapping"
    )
    assert schema.ignore_above("hostname") == 256
    long_name = "h" * 257
    assert not both(ast.Pattern(":", F("hostname"), (L("h*"),)), {"hostname": long_name}, schema)
    assert both(ast.Pattern(":", F("hostname"), (L("h*"),)), {"hostname": long_name[:256]}, schema)
    assert compile_value(F("hostname"), schema)({"hostname": [long_name, "a"]}) == "a"


@pytest.mark.parametrize(
    "wrapped",
    [
        {"properties": {"pid": {"type": "long"}}},
        {"mappings": {"properties": {"pid": {"type": "long"}}}},
        {"mappings": {"_doc": {"properties": {"pid": {"type": "long"}}}}},
        {"logs-x": {"mappings": {"properties": {"pid": {"type": "long"}}}}},
        {"template": {"mappings": {"properties": {"pid": {"type": "long"}}}}},
    ],
)
def test_mapping_shapes(wrapped):
    assert Schema.from_mapping(wrapped).field_type("pid") == "long"
    assert Schema.from_mapping(json.dumps(wrapped)).field_type("pid") == "long"


def test_bad_mappings_name_file_line_and_column(tmp_path):
    from vigil.eql.schema import SchemaError

    bad = tmp_path / "bad.mapping"
    bad.write_text('# comment\n{\n  "properties": {\n    "a": {"type": "long"},,\n  }\n}\n')
    with pytest.raises(SchemaError) as info:
        Schema.from_mapping(bad)
    assert (info.value.file, info.value.line) == (str(bad), 4)
    assert str(info.value).startswith(f"{bad}:4:")
    with pytest.raises(SchemaError):
        Schema.from_mapping(tmp_path / "missing.mapping")
    with pytest.raises(SchemaError):
        Schema.from_mapping("[1, 2]")


def test_generated_filter_nested_logic_and_fallbacks():
    cond = ast.And(
        (
            cmp("==", F("host.os.type"), L("linux")),
            ast.Not(
                ast.Or(
                    (
                        ast.In(F("process.name"), (L("a"), L("B")), insensitive=True),
                        ast.Pattern(":", F("file.path"), (L("*.TMP"),)),
                        ast.And((cmp("==", F("process.name"), L("sed")), cmp("!=", F("user.name"), L(None)))),
                    )
                )
            ),
        )
    )
    f = compile_event_filter(ast.EventQuery("file", cond), ECS)
    base = {"event": {"category": "file"}, "host": {"os": {"type": "linux"}}}
    cases = [
        ({}, True),
        ({"process": {"name": "b"}}, False),
        ({"process": {"name": ["x", 7, "A"]}}, False),  # a number in the array: the general path
        ({"process": {"name": ["x", 7]}}, True),
        ({"file": {"path": "/x/y.tmp"}}, False),
        ({"process": {"name": "sed"}}, True),
        ({"process": {"name": "sed"}, "user": {"name": "root"}}, False),
        ({"process.name": "a"}, False),  # dotted key: the general path
    ]
    for extra, want in cases:
        doc = {**base, **extra}
        assert f(doc) is want, extra
        assert interpreter.matches_event(ast.EventQuery("file", cond), doc, ECS) is want, extra


def test_dates_outside_python_years_print_as_elasticsearch_prints_them():
    # Elasticsearch's date printer (DateFormatters, SignStyle.EXCEEDS_PAD): a sign past 4 digits.
    d = S.convert(253402300800000, "date")  # year 10000
    assert int(d) == 253402300800000 and str(d) == "+10000-01-01T00:00:00.000Z"
    assert str(S.convert(-62135596800001, "date")) == "0000-12-31T23:59:59.999Z"
    assert S.convert(1e30, "date") is S.INVALID, "past a Java long: not a date"


@pytest.mark.parametrize("text", ["9999", "9999-12", "0000-01-01", "2017-02-30", "2017-13", "x"])
def test_odd_date_literals_do_not_raise(text):
    S.date_literal(text)
    S.literal_as(text, "date")
