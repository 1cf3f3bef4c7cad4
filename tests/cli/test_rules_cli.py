"""``vigil rules list|show|validate`` through the real command line entry point."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.cli import main
from vigil.rules import bundled_rules
from vigil.rules.render import kibana_rule

REPO = Path(__file__).resolve().parents[2]
SEED_ID = "dc765fb2-0c99-4e57-8c11-dafdf1992b66"

EQL_RULE = """[rule]
name = "Shell from web server"
rule_id = "11111111-aaaa-4000-8000-000000000001"
description = "d"
type = "eql"
language = "eql"
severity = "high"
risk_score = 73
interval = "10m"
from = "now-15m"
query = '''
process where process.parent.name == "nginx" and process.name == "sh"
'''
"""

QUERY_RULE = {
    "rule_id": "22222222-bbbb-4000-8000-000000000002",
    "name": "Shell history cleared",
    "description": "d",
    "type": "query",
    "language": "lucene",  # Lucene query rules do not run (KQL ones do)
    "query": "process.args:history",
    "severity": "medium",
    "risk_score": 47,
    "enabled": False,
}


def run(capsys, *argv):
    code = main(["rules", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "web.toml").write_text(EQL_RULE)
    (tmp_path / "export.ndjson").write_text(json.dumps(QUERY_RULE) + "\n")
    (tmp_path / "broken.toml").write_text('[rule]\nname = "x"\nrule_id = \n')
    return tmp_path


def test_list_bundled_rules_as_ndjson(capsys):
    code, out, err = run(capsys, "list", "--format", "ndjson")
    assert code == 0
    (row,) = records(out)
    assert row["rule_id"] == SEED_ID and row["runnable"] is True and row["enabled"] is True
    assert (row["interval"], row["from"], row["max_signals"]) == ("5m", "now-9m", 100)
    assert "1 rule (eql 1); 1 runnable, 0 not yet runnable; 0 problems" in err


def test_list_counts_types_runnable_and_problems(capsys, folder, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # one table row per rule
    code, out, err = run(capsys, "list", "--rules", folder, "--format", "table")
    assert code == 0
    assert "2 rules (eql 1, query 1); 1 runnable, 1 not yet runnable (query 1); 1 problem" in out
    assert re.search(r"11111111\s+Shell from web server\s+eql\s+high\s+73\s+10m/now-15m\s+yes\s+yes", out)
    assert re.search(r"22222222\s+Shell history cleared\s+query\s+medium\s+47\s+5m/now-6m\s+no\s+no", out)
    # The broken file is named with its line, and the other rules are still listed.
    assert f"{folder / 'broken.toml'}:3:11: invalid TOML" in err


def test_list_ndjson_rows_carry_every_column(capsys, folder):
    code, out, err = run(capsys, "list", "--rules", folder / "web.toml", "--rules", folder / "export.ndjson")
    assert code == 0  # not a terminal: NDJSON by default
    rows = {r["type"]: r for r in records(out)}
    assert rows["query"]["runnable"] is False and rows["query"]["enabled"] is False
    assert rows["query"]["why_not_runnable"] == "lucene queries do not run yet (KQL and EQL do)"
    assert rows["eql"]["from"] == "now-15m" and rows["eql"]["risk_score"] == 73
    assert rows["eql"]["why_not_runnable"] is None
    assert err.strip().endswith("0 problems")


def test_show_renders_the_rule_page(capsys):
    code, out, err = run(capsys, "show", "dracut", "--format", "table")
    assert code == 0 and err == ""
    for text in (
        "Dracut Module Creation",
        "Rule type: eql",
        "Searches indices from: now-9m",
        "Maximum alerts per execution: 100",
        "Rule license: Elastic License v2",
        "Investigating Dracut Module Creation",
        "Elastic Defend Integration Setup",
        "Framework: MITRE ATT&CK",
        "ID: T1059.004",
        "https://attack.mitre.org/techniques/T1059/004/",
        'file where host.os.type == "linux"',
    ):
        assert text in out, text


def test_show_ndjson_is_the_kibana_rule(capsys):
    code, out, _ = run(capsys, "show", SEED_ID[:6], "--format", "ndjson")
    assert code == 0
    (rule,) = records(out)
    assert rule == json.loads(json.dumps(kibana_rule(bundled_rules().rules[0])))
    assert rule["type"] == "eql" and rule["interval"] == "5m" and rule["to"] == "now"
    assert rule["related_integrations"][1]["package"] == "sentinel_one_cloud_funnel"


def test_show_picks_by_id_prefix_or_name_and_refuses_ambiguity(capsys, folder):
    code, out, _ = run(capsys, "show", "2222", "--rules", folder, "--format", "ndjson")
    assert code == 0 and records(out)[0]["name"] == "Shell history cleared"
    code, out, _ = run(capsys, "show", "WEB SERVER", "--rules", folder, "--format", "ndjson")
    assert code == 0 and records(out)[0]["rule_id"].startswith("1111")
    code, out, err = run(capsys, "show", "shell", "--rules", folder)
    assert code == 2 and out == ""
    assert "'shell' names 2 rules" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "show", "no-such-rule", "--rules", folder)
    assert code == 2 and "no rule has the id" in err and "Traceback" not in err


def test_validate_good_and_bad(capsys, folder, tmp_path_factory):
    good = tmp_path_factory.mktemp("good")
    (good / "web.toml").write_text(EQL_RULE)
    code, out, err = run(capsys, "validate", good, "--format", "table")
    assert code == 0 and out == "" and "1 rule valid" in err

    (folder / "typo.toml").write_text(
        EQL_RULE.replace('rule_id = "1111', 'rule_id = "3333').replace('== "sh"', '== "sh" and lenght(x) > 1')
    )
    code, out, err = run(capsys, "validate", folder, "--format", "table")
    assert code == 1
    assert f"{folder / 'broken.toml'}:3:11: invalid TOML" in out
    typo = folder / "typo.toml"
    m = re.search(rf"{re.escape(str(typo))}:(\d+):(\d+): Shell from web server: type error", out)
    assert m, out
    line = typo.read_text().splitlines()[int(m.group(1)) - 1]
    assert line[int(m.group(2)) - 1 :].startswith("lenght(")
    assert "2 problems in 3 rules" in err

    code, out, _ = run(capsys, "validate", folder, "--format", "ndjson")
    assert code == 1
    assert [(p["file"].rsplit("/", 1)[1], p["line"]) for p in records(out)] == [
        ("broken.toml", 3),
        ("typo.toml", int(m.group(1))),
    ]


def test_validate_missing_path_is_a_problem_not_a_traceback(capsys, tmp_path):
    code, out, err = run(capsys, "validate", tmp_path / "nope")
    assert code == 1 and "no such rule file or folder" in out and "Traceback" not in err


@pytest.mark.parametrize("action", ["list", "show", "validate"])
def test_help(capsys, action):
    with pytest.raises(SystemExit) as exc:
        main(["rules", action, "--help"])
    assert exc.value.code == 0
    assert "--format" in capsys.readouterr().out


def test_list_from_a_running_server(tmp_path, capsys):
    """``--server`` reads GET /api/rules of a real ``vigil serve`` on the loopback."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    env.pop("VIGIL_CLOCK_FILE", None)
    cmd = [sys.executable, "-m", "vigil.cli", "serve", "--listen", "127.0.0.1:0", "--data", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://\S+", line)
        assert m, f"server did not start: {line!r}"
        code, out, err = run(capsys, "list", "--server", m.group(0), "--format", "ndjson")
        assert code == 0
        (row,) = records(out)
        assert row["rule_id"] == SEED_ID and row["runnable"] is True and row["from"] == "now-9m"
        assert "1 rule" in err and "1 runnable" in err
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    code, _, err = run(capsys, "list", "--server", m.group(0))
    assert code == 2 and "cannot reach" in err


def test_show_says_why_a_kql_rule_does_not_run(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    rule = dict(QUERY_RULE, language="kuery", query="cleared and process.name: bash")
    (tmp_path / "export.ndjson").write_text(json.dumps(rule) + "\n")
    code, out, _ = run(capsys, "show", "--rules", tmp_path, "--format", "table", "Shell history cleared")
    assert code == 0
    assert "not runnable yet: unsupported KQL: a value with no field" in out
