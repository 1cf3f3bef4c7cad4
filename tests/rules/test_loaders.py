import json

from vigil.rules import bundled_rules, load_rules
from vigil.rules.indices import matches_patterns

TOML = """
[metadata]
creation_date = "2025/01/01"

[rule]
author = ["Elastic"]
description = "d"
index = ["logs-*"]
language = "eql"
name = "Test rule"
risk_score = 47
rule_id = "abc"
severity = "medium"
type = "eql"
query = '''
process where true
'''
"""


def test_toml_rule_gets_kibana_defaults(tmp_path):
    (tmp_path / "r.toml").write_text(TOML)
    rs = load_rules([tmp_path])
    assert rs.problems == []
    (rule,) = rs.rules
    assert (rule.from_, rule.interval, rule.max_signals, rule.enabled) == ("now-6m", "5m", 100, True)
    assert rule.risk_score == 47 and rule.severity == "medium"
    assert rule.kibana_parameters()["from"] == "now-6m"


def test_broken_toml_reports_line_and_keeps_others(tmp_path):
    (tmp_path / "a.toml").write_text(TOML)
    (tmp_path / "b.toml").write_text('[rule]\nname = "x"\nrule_id = \n')
    rs = load_rules([tmp_path])
    assert len(rs.rules) == 1
    (problem,) = rs.problems
    assert problem.file.endswith("b.toml") and problem.line == 3


def test_missing_name_is_reported(tmp_path):
    (tmp_path / "a.toml").write_text('[rule]\nrule_id = "x"\ntype = "eql"\n')
    rs = load_rules([tmp_path])
    assert rs.rules == [] and "name" in rs.problems[0].message


def test_ndjson_export_skips_summary_and_reports_bad_lines(tmp_path):
    rule = {"rule_id": "r1", "name": "N", "type": "query", "language": "kuery", "query": "a:b"}
    lines = [json.dumps(rule), "{bad", json.dumps({"exported_count": 1, "missing_rules": []})]
    (tmp_path / "export.ndjson").write_text("\n".join(lines))
    rs = load_rules([tmp_path / "export.ndjson"])
    assert [r.rule_id for r in rs.rules] == ["r1"]
    assert rs.rules[0].type == "query" and rs.rules[0].runnable
    assert rs.problems[0].line == 2


def test_package_asset_json(tmp_path):
    asset = {
        "type": "security-rule",
        "id": "x_2",
        "attributes": {"rule_id": "x", "name": "X", "type": "eql", "query": "any where true", "version": 2},
    }
    (tmp_path / "x_2.json").write_text(json.dumps(asset))
    rs = load_rules([tmp_path])
    assert rs.rules[0].version == 2 and rs.rules[0].type == "eql"


def test_index_patterns():
    pats = ["logs-endpoint.events.file*", "endgame-*"]
    assert matches_patterns(pats, "logs-endpoint.events.file-default")
    assert matches_patterns(pats, "endgame-8.1")
    assert not matches_patterns(pats, "logs-endpoint.events.process-default")
    assert matches_patterns("logs-*,-logs-secret*", "logs-a")
    assert not matches_patterns("logs-*,-logs-secret*", "logs-secret-1")


def test_bundled_seed_rule_fields():
    rs = bundled_rules()
    assert rs.problems == []
    (r,) = rs.rules
    assert r.rule_id == "dc765fb2-0c99-4e57-8c11-dafdf1992b66"
    assert (r.type, r.language, r.version, r.severity, r.risk_score) == ("eql", "eql", 2, "low", 21)
    assert (r.from_, r.interval, r.max_signals) == ("now-9m", "5m", 100)
    assert r.timestamp_override == "event.ingested"
    assert r.index == ["logs-endpoint.events.file*", "logs-sentinel_one_cloud_funnel.*", "endgame-*"]
    assert r.related_integrations == [
        {"package": "endpoint", "version": "^8.2.0"},
        {"package": "sentinel_one_cloud_funnel", "version": "^1.0.0"},
    ]
    assert sorted(f["name"] for f in r.required_fields) == [
        "event.type",
        "file.extension",
        "file.name",
        "file.path",
        "host.os.type",
        "process.executable",
        "process.name",
    ]
    assert all(f["type"] == "keyword" and f["ecs"] for f in r.required_fields)
    tactics = [(t["tactic"]["id"], [x["id"] for x in t.get("technique", [])]) for t in r.threat]
    assert tactics == [("TA0003", ["T1542", "T1543", "T1574"]), ("TA0002", ["T1059"]), ("TA0005", [])]
    assert r.threat[1]["technique"][0]["subtechnique"][0]["id"] == "T1059.004"
    assert r.note.startswith("## Triage and analysis") and "generative AI" in r.note
    assert r.setup.startswith("## Setup")
    assert r.references == [] and r.author == ["Elastic"] and r.license == "Elastic License v2"
    assert '"/dev/fd/*",  "/usr/bin/pamac-daemon"' in r.query and "python*" not in r.query


def test_bundled_query_matches_seed_page(shared):
    page = (shared / "seed" / "dracut-module-creation.md").read_text()
    query = page.split("```js\n", 1)[1].split("```", 1)[0]
    assert bundled_rules().rules[0].query == query


def test_detection_rules_corpus_loads(shared):
    root = shared / "detection-rules"
    rs = load_rules([root / "rules", root / "rules_building_block"])
    counts = rs.counts_by_type()
    print("rules by type:", dict(counts), "problems:", len(rs.problems))
    assert counts["eql"] == 1081
