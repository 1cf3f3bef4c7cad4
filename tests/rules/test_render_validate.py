"""Kibana defaults, the Kibana rule shape (export NDJSON, package JSON), the rule page, validation."""

from __future__ import annotations

import dataclasses
import json

from vigil.rules import bundled_rules, load_rules
from vigil.rules.render import kibana_rule, look_back, render_markdown
from vigil.rules.validate import check_rule, validate

MINIMAL = """[rule]
name = "Minimal"
rule_id = "min-1"
description = "d"
type = "eql"
language = "eql"
severity = "medium"
risk_score = 47
query = '''
process where process.name == "sh"
'''
"""

# Fields that say where a rule came from, not what it is.
_PLACE = {"source", "line", "raw", "_compiled", "_compile_error"}


def facts(rule) -> dict:
    return {f.name: getattr(rule, f.name) for f in dataclasses.fields(rule) if f.name not in _PLACE}


def test_kibana_create_rule_api_defaults_when_omitted(tmp_path):
    """rules-api-create: enabled true, from now-6m, interval 5m; DEFAULT_MAX_SIGNALS 100; to now."""
    (tmp_path / "m.toml").write_text(MINIMAL)
    (rule,) = load_rules([tmp_path]).rules
    assert (rule.interval, rule.from_, rule.max_signals, rule.enabled) == ("5m", "now-6m", 100, True)
    assert (rule.references, rule.false_positives, rule.tags, rule.threat) == ([], [], [], [])
    exported = kibana_rule(rule)
    assert exported["to"] == "now" and exported["interval"] == "5m" and exported["enabled"] is True
    assert exported["max_signals"] == 100 and exported["from"] == "now-6m"
    assert exported["version"] == 1


def test_kibana_export_round_trip(tmp_path):
    """A rule written as Kibana's export NDJSON (summary line last) loads back as the same rule."""
    rule = bundled_rules().rules[0]
    disabled = dict(kibana_rule(rule), rule_id="copy-1", enabled=False)
    summary = {"exported_rules_count": 2, "missing_rules": [], "missing_rules_count": 0}
    lines = [json.dumps(kibana_rule(rule)), json.dumps(disabled), json.dumps(summary)]
    (tmp_path / "export.ndjson").write_text("\n".join(lines) + "\n")
    rs = load_rules([tmp_path / "export.ndjson"])
    assert rs.problems == []
    back, copy = rs.rules
    assert facts(back) == facts(rule)
    assert copy.enabled is False and copy.rule_id == "copy-1" and back.line == 1 and copy.line == 2
    assert back.runnable and back.compiled().matches is not None


def test_prebuilt_package_asset_round_trip(tmp_path):
    """The prebuilt-rules package's security-rule asset: {"id": "<rule_id>_<version>", "attributes": {...}}."""
    rule = bundled_rules().rules[0]
    asset = {
        "id": f"{rule.rule_id}_{rule.version}",
        "type": "security-rule",
        "attributes": kibana_rule(rule),
    }
    (tmp_path / "kibana" / "security_rule").mkdir(parents=True)
    path = tmp_path / "kibana" / "security_rule" / f"{rule.rule_id}_{rule.version}.json"
    path.write_text(json.dumps(asset, indent=2))
    (back,) = load_rules([tmp_path]).rules
    assert facts(back) == facts(rule)
    assert back.version == 2 and back.timestamp_override == "event.ingested"


def test_other_rule_types_keep_their_own_fields(tmp_path):
    rule = {
        "rule_id": "th-1",
        "name": "Many failed logons",
        "description": "d",
        "type": "threshold",
        "language": "kuery",
        "query": "event.outcome:failure",
        "threshold": {"field": ["user.name"], "value": 20},
        "severity": "high",
        "risk_score": 73,
        "index": ["logs-*"],
    }
    (tmp_path / "t.ndjson").write_text(json.dumps(rule) + "\n")
    (loaded,) = load_rules([tmp_path]).rules
    assert loaded.runnable
    assert kibana_rule(loaded)["threshold"] == {"field": ["user.name"], "value": 20}
    page = render_markdown(loaded)
    assert "**Threshold**: 20 (grouped by user.name)" in page and "**Rule type**: threshold" in page
    assert check_rule(loaded) == []


def test_page_layout_and_look_back():
    rule = bundled_rules().rules[0]
    page = render_markdown(rule)
    order = ["# Dracut Module Creation", "**Rule type**", "**Version**: 2", "## Investigation guide"]
    order += ["## Setup", "## Rule query", "**Framework**: MITRE ATT&CK"]
    places = [page.index(x) for x in order]
    assert places == sorted(places)
    # The guide's own headings sit under the page's section heading.
    assert "\n### Triage and analysis" in page and "\n## Triage" not in page
    assert look_back(rule) == "4m" and "additional look-back time 4m" in page
    assert "* Sub-technique:" in page and "* ID: T1059.004" in page


def _write(path, text):
    path.write_text(text)
    return path


def test_query_error_points_at_file_line_and_column(tmp_path):
    bad = MINIMAL.replace(
        'process where process.name == "sh"', 'process where\n  process.name == "sh" and nope(1)'
    )
    path = _write(tmp_path / "bad.toml", bad)
    (problem,) = validate([path]).problems
    line = path.read_text().splitlines()[problem.line - 1]
    assert line[problem.column - 1 :].startswith("nope(")
    assert problem.file == str(path) and "Unknown function" in problem.message
    assert problem.render().endswith("^") and "query line 2" in problem.message


def test_kql_syntax_errors_are_problems_and_unsupported_constructs_are_not(tmp_path):
    kql = MINIMAL.replace('type = "eql"', 'type = "query"').replace('language = "eql"', 'language = "kuery"')
    bad = kql.replace('process where process.name == "sh"', "process.name: sh and\n  user.name: (a or b")
    path = _write(tmp_path / "bad.toml", bad)
    (problem,) = validate([path]).problems
    assert problem.file == str(path) and "syntax error" in problem.message
    assert "expected ')' but found end of query" in problem.message
    # A value with no field: valid KQL that Vigil does not run (Kibana accepts it).
    unsupported = kql.replace('process where process.name == "sh"', "error")
    assert validate([_write(tmp_path / "text.toml", unsupported)]).problems == []
    (rule,) = load_rules([tmp_path / "text.toml"]).rules
    assert not rule.runnable


def test_query_error_in_export_ndjson_and_package_json(tmp_path):
    rule = {
        "rule_id": "n1",
        "name": "N",
        "description": "d",
        "type": "eql",
        "language": "eql",
        "severity": "low",
        "risk_score": 1,
        "query": 'process where process.name == "a\\\\b" and\n  bogus(2)',
    }
    good = dict(rule, rule_id="n0", query="any where true")
    ndjson = _write(tmp_path / "e.ndjson", json.dumps(good) + "\n" + json.dumps(rule) + "\n")
    (problem,) = validate([ndjson]).problems
    assert problem.line == 2
    assert ndjson.read_text().splitlines()[1][problem.column - 1 :].startswith("bogus(")
    pretty = _write(tmp_path / "p.json", json.dumps({"type": "security-rule", "attributes": rule}, indent=2))
    (problem,) = validate([pretty]).problems
    assert pretty.read_text().splitlines()[problem.line - 1][problem.column - 1 :].startswith("bogus(")


def test_schema_problems_have_lines_and_others_still_load(tmp_path):
    _write(tmp_path / "a_good.toml", MINIMAL)
    _write(tmp_path / "b_broken.toml", '[rule]\nname = "x"\nrule_id = \n')
    bad = MINIMAL.replace('severity = "medium"', 'severity = "urgent"').replace(
        "risk_score = 47", "risk_score = 470"
    )
    _write(tmp_path / "c_values.toml", bad.replace('rule_id = "min-1"', 'rule_id = "min-2"'))
    _write(tmp_path / "d_dup.toml", MINIMAL)
    report = validate([tmp_path])
    assert len(report.rules) == 3
    found = [(p.file.rsplit("/", 1)[1], p.line, p.message) for p in report.problems]
    assert found == [
        ("b_broken.toml", 3, "invalid TOML: Invalid value"),
        ("c_values.toml", 7, "Minimal: severity 'urgent' is not one of low, medium, high, critical"),
        ("c_values.toml", 8, "Minimal: risk_score 470 is outside 0-100"),
        ("d_dup.toml", 3, f"duplicate rule_id 'min-1' (first in {tmp_path / 'a_good.toml'}:1)"),
    ]


def test_clean_files_have_no_problems(tmp_path):
    _write(tmp_path / "m.toml", MINIMAL)
    report = validate([tmp_path])
    assert report.ok and len(report.rules) == 1
    assert validate([bundled_rules().rules[0].source]).ok
