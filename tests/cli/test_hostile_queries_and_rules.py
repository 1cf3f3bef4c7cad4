"""Hostile queries and rule files: bounded, located errors; a bad rule file costs that file.

KQL nesting is bounded (an error at the place, not Python's stack), parsing is linear
in the query's length, and a rule file nested past any reader's stack, or past what
an alert can hold, is one problem while the other rules run.
"""

from __future__ import annotations

import time
from importlib import resources

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.cli import main
from vigil.kql import KqlSyntaxError
from vigil.kql.parser import MAX_NESTING, parse
from vigil.rules.loaders import load_rules

SAMPLE = resources.files("vigil") / "data" / "samples" / "linux-endpoint-events.ndjson"
SEED = resources.files("vigil") / "data" / "rules" / "linux" / "persistence_dracut_module_creation.toml"


def test_query_kql_with_140_parentheses_is_a_located_error(capsys):
    for query in ("(" * 140 + "a:b" + ")" * 140, "a: " + "(" * 140 + "b" + ")" * 140):
        code = main(["query", "--kql", query, str(SAMPLE)])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and f"nested deeper than {MAX_NESTING}" in err
    assert parse("not (" * 60 + "a:b" + ")" * 60) is not None, "real nesting still parses"


def _seconds(text: str) -> float:
    start = time.perf_counter()
    parse(text)
    return time.perf_counter() - start


def test_kql_parsing_is_linear_in_the_query():
    # Each shape was quadratic: locations counted lines from the start, a run of spaces was
    # rescanned at each space, a literal grew by string concatenation.
    shapes = (
        lambda n: "\n".join(f"f{i}: v{i} or" for i in range(n)) + " z",
        lambda n: "a: x" + " " * (40 * n) + "y",
        lambda n: "a: " + "x" * (40 * n),
    )
    for shape in shapes:
        small, large = _seconds(shape(1000)), _seconds(shape(8000))
        assert large < 8 * small * 3 + 0.05, (small, large)


@given(st.text(alphabet='()ab: \n"*\\<>{}notrd', max_size=300))
def test_any_kql_text_parses_or_is_a_located_error(text):
    try:
        parse(text)
    except KqlSyntaxError as exc:
        assert exc.line >= 1 and exc.column >= 1


def _rules_folder(tmp_path, extra: dict[str, str]):
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "seed.toml").write_text(SEED.read_text())
    for name, text in extra.items():
        (folder / name).write_text(text)
    return folder


def test_a_deeply_nested_rule_file_costs_that_file_only(tmp_path, capsys):
    folder = _rules_folder(
        tmp_path,
        {
            "deep.toml": '[rule]\nname = "x"\nfoo = ' + "[" * 5000 + "]" * 5000 + "\n",
            "deeper.json": '{"a": ' + "[" * 5000 + "]" * 5000 + "}",
            "nested.toml": '[rule]\nname = "x"\nfoo = ' + "[" * 100 + "]" * 100 + "\n",
        },
    )
    code = main(["scan", "--format", "ndjson", "--rules", str(folder), str(SAMPLE)])
    out, err = capsys.readouterr()
    assert code == 0 and len(out.splitlines()) == 2, "the seed rule still alerts"
    assert "deep.toml" in err and "deeper.json" in err and "nested.toml" in err
    assert "Traceback" not in err


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet='[]{}=",\n abrule.', max_size=400), st.sampled_from(["x.toml", "x.json", "x.ndjson"]))
def test_any_rule_file_text_loads_or_is_a_problem_and_the_seed_still_loads(tmp_path_factory, text, name):
    folder = _rules_folder(tmp_path_factory.mktemp("r"), {name: text})
    ruleset = load_rules([folder])
    assert any(r.name == "Dracut Module Creation" for r in ruleset.rules)
    for problem in ruleset.problems:
        assert problem.file is not None and problem.file.endswith(name)
