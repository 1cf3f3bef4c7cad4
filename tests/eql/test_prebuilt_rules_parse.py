"""Every EQL rule of Elastic's detection-rules parses (and compiles, once the compiler exists)."""

from __future__ import annotations

import importlib.util
import tomllib

import pytest

from vigil import eql

EXPECTED_EQL_RULES = 1081


def _eql_rules(shared):
    root = shared / "detection-rules"
    found = []
    for folder in ("rules", "rules_building_block"):
        for path in sorted((root / folder).rglob("*.toml")):
            rule = tomllib.loads(path.read_text(encoding="utf-8")).get("rule", {})
            if rule.get("type") == "eql":
                found.append((path.relative_to(root), rule["query"]))
    return found


def test_every_prebuilt_eql_rule_parses(shared):
    rules = _eql_rules(shared)
    failures = []
    for path, query in rules:
        try:
            statement = eql.parse(query)
        except eql.EqlSyntaxError as exc:
            failures.append(f"{path}: {exc.render()}")
            continue
        assert statement.text == query
    print(f"parsed {len(rules) - len(failures)} of {len(rules)} prebuilt EQL rules")
    assert failures == []
    assert len(rules) == EXPECTED_EQL_RULES


@pytest.mark.skipif(
    importlib.util.find_spec("vigil.eql.query") is None, reason="vigil.eql.query not built yet"
)
def test_every_prebuilt_eql_rule_compiles(shared):
    rules = _eql_rules(shared)
    failures = []
    for path, query in rules:
        try:
            eql.compile(query)
        except eql.EqlError as exc:
            failures.append(f"{path}: {exc.render()}")
    print(f"compiled {len(rules) - len(failures)} of {len(rules)} prebuilt EQL rules")
    assert failures == []
    assert len(rules) == EXPECTED_EQL_RULES
