"""``vigil scan`` and ``vigil demo`` end to end, through the command line's own entry point."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import orjson
import pytest

from vigil.cli import main

SAMPLE = resources.files("vigil") / "data" / "samples" / "linux-endpoint-events.ndjson"
SEED_RULE_ID = "dc765fb2-0c99-4e57-8c11-dafdf1992b66"


def scan(capsys, *argv) -> tuple[int, list[dict], str]:
    code = main(["scan", "--format", "ndjson", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, [orjson.loads(line) for line in out.splitlines() if line.strip()], err


def dracut_event(path: str, executable: str, **extra) -> dict:
    doc = {
        "@timestamp": "2026-11-27T09:15:20.000Z",
        "event": {"category": ["file"], "type": ["creation"], "action": "creation"},
        "host": {"name": "h1", "os": {"type": "linux"}},
        "process": {"executable": executable, "name": executable.rsplit("/", 1)[-1]},
        "file": {"path": path, "name": path.rsplit("/", 1)[-1]},
    }
    doc.update(extra)
    return doc


def write_ndjson(path: Path, docs: list) -> Path:
    path.write_text("".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs))
    return path


def test_bundled_sample_raises_the_two_planted_modules(capsys):
    code, alerts, err = scan(capsys, SAMPLE)
    assert code == 0
    found = sorted((a["process"]["executable"], a["file"]["path"]) for a in alerts)
    assert found == [
        ("/usr/bin/bash", "/usr/lib/dracut/modules.d/99netfix/netfix-hook.sh"),
        ("/usr/bin/cp", "/lib/dracut/modules.d/99netfix/module-setup.sh"),
    ]
    assert {a["kibana.alert.rule.rule_id"] for a in alerts} == {SEED_RULE_ID}
    assert "17 events read, 0 skipped, 1 rules run, 2 alerts" in err


def test_store_keeps_each_alert_once_across_rescans(capsys, tmp_path):
    store = tmp_path / "alerts.db"
    scan(capsys, SAMPLE, "--store", store)
    code, alerts, err = scan(capsys, SAMPLE, "--store", store)
    assert code == 0 and len(alerts) == 2
    assert "(0 new in" in err
    assert main(["alerts", "list", "--store", str(store), "--format", "ndjson"]) == 0
    listed = [orjson.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert len(listed) == 2


def test_output_file_gets_the_alerts(capsys, tmp_path):
    out = tmp_path / "alerts.ndjson"
    code, printed, _ = scan(capsys, SAMPLE, "--output", out)
    assert code == 0 and printed == []
    assert len(out.read_bytes().splitlines()) == 2


def test_malformed_lines_are_reported_counted_and_skipped(capsys, tmp_path):
    events = write_ndjson(
        tmp_path / "events.ndjson",
        [
            dracut_event("/usr/lib/dracut/modules.d/99x/a.sh", "/usr/bin/curl"),
            '{"broken": ',
            '"just text"',
            dracut_event("/usr/lib/dracut/modules.d/99x/b.sh", "/usr/bin/wget"),
        ],
    )
    code, alerts, err = scan(capsys, events)
    assert code == 1, "the exit status says an input was not fully read"
    assert len(alerts) == 2, "good lines around bad ones still alert"
    assert f"{events}:2" in err and f"{events}:3" in err
    assert "2 events read, 2 skipped" in err
    assert "Traceback" not in err


def test_strict_stops_at_the_first_bad_line(capsys, tmp_path):
    good = dracut_event("/usr/lib/dracut/modules.d/99x/a.sh", "/usr/bin/curl")
    events = write_ndjson(tmp_path / "e.ndjson", [good, '{"broken": ', good])
    code, _, err = scan(capsys, events, "--strict")
    assert code == 2
    assert f"{events}:2" in err and "Traceback" not in err


def test_unreadable_input_exits_2_after_reading_the_rest(capsys, tmp_path):
    code, alerts, err = scan(capsys, tmp_path / "missing.ndjson", SAMPLE)
    assert code == 2
    assert len(alerts) == 2
    assert "missing.ndjson" in err


def test_broken_rule_file_is_reported_and_the_others_run(capsys, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    seed = resources.files("vigil") / "data" / "rules" / "linux" / "persistence_dracut_module_creation.toml"
    (rules / "seed.toml").write_text(seed.read_text())
    (rules / "broken.toml").write_text('[rule\nname = "x"\n')
    code, alerts, err = scan(capsys, SAMPLE, "--rules", rules)
    assert code == 0 and len(alerts) == 2
    assert "broken.toml" in err
    code, _, err = scan(capsys, SAMPLE, "--rules", rules, "--strict")
    assert code == 2 and "broken.toml" in err


def test_index_option_routes_events_away_from_the_rule(capsys):
    code, alerts, _ = scan(capsys, SAMPLE, "--index", "logs-windows.sysmon_operational-default")
    assert code == 0 and alerts == []
    code, alerts, _ = scan(capsys, SAMPLE, "--index", "endgame-8.4.0")
    assert len(alerts) == 2
    assert {a["kibana.alert.ancestors"][0]["index"] for a in alerts} == {"endgame-8.4.0"}


def test_rules_over_max_signals_are_named(capsys, tmp_path):
    rule = tmp_path / "capped.toml"
    rule.write_text(
        '[metadata]\ncreation_date = "2026/01/01"\n\n[rule]\nrule_id = "capped-1"\nname = "Any file"\n'
        'description = "d"\nrisk_score = 10\nseverity = "low"\ntype = "eql"\nlanguage = "eql"\n'
        "max_signals = 3\nquery = 'file where true'\n"
    )
    events = write_ndjson(
        tmp_path / "e.ndjson", [dracut_event(f"/tmp/f{i}", "/usr/bin/touch") for i in range(5)]
    )
    code, alerts, err = scan(capsys, events, "--rules", rule)
    assert code == 0 and len(alerts) == 5, "a scan reports every alert"
    assert "over its max_signals of 3" in err


def _query_rule(folder, rule_id: str, language: str, query: str):
    path = folder / f"{rule_id}.toml"
    path.write_text(
        f'[metadata]\ncreation_date = "2026/01/01"\n\n[rule]\nrule_id = "{rule_id}"\nname = "{rule_id}"\n'
        f'description = "d"\nrisk_score = 10\nseverity = "low"\ntype = "query"\nlanguage = "{language}"\n'
        f"query = '{query}'\n"
    )
    return path


def test_other_rule_types_are_counted_not_dropped(capsys, tmp_path):
    kql = _query_rule(tmp_path, "kql-1", "kuery", "event.category:file")
    text_field = _query_rule(tmp_path, "kql-2", "kuery", "error")  # a search of every field: not run
    lucene = _query_rule(tmp_path, "lucene-1", "lucene", "event.category:file")
    seed = resources.files("vigil") / "data" / "rules"
    with resources.as_file(seed) as folder:
        code, alerts, err = scan(
            capsys, SAMPLE, "--rules", folder, "--rules", kql, "--rules", text_field, "--rules", lucene
        )
    by_rule = {}
    for a in alerts:
        by_rule.setdefault(a["kibana.alert.rule.rule_id"], []).append(a)
    assert code == 0 and len(by_rule["dc765fb2-0c99-4e57-8c11-dafdf1992b66"]) == 2
    # The KQL rule runs: one alert per file event of the sample.
    docs = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    file_events = sum(1 for d in docs if "file" in d["event"]["category"])
    assert len(by_rule["kql-1"]) == file_events > 2
    assert {a["kibana.alert.rule.type"] for a in by_rule["kql-1"]} == {"query"}
    assert set(by_rule) == {"dc765fb2-0c99-4e57-8c11-dafdf1992b66", "kql-1"}
    assert "1 query (KQL construct not supported) not runnable yet" in err
    assert "1 query (lucene) not runnable yet" in err


def test_table_format_groups_alerts_by_rule(capsys):
    code = main(["scan", "--format", "table", str(SAMPLE)])
    out, err = capsys.readouterr()
    assert code == 0
    assert "Dracut Module Creation" in out and "(2 alerts)" in out
    assert "/usr/bin/cp" in out


def test_stdin_is_read_when_no_input_is_named(capsys, monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(Path(str(SAMPLE)).read_bytes())))
    code, alerts, _ = scan(capsys)
    assert code == 0 and len(alerts) == 2


@pytest.mark.parametrize("fmt", ["table", "ndjson"])
def test_demo_runs_on_its_bundled_defaults(capsys, tmp_path, fmt):
    code = main(["demo", "--store", str(tmp_path / "demo.db"), "--format", fmt])
    out, _ = capsys.readouterr()
    assert code == 0
    if fmt == "table":
        assert "investigation guide" in out and "Possible investigation steps" in out
    else:
        assert len(out.splitlines()) == 2


def test_options_may_follow_the_inputs(capsys):
    code = main(["scan", str(SAMPLE), "--format", "ndjson"])
    out, _ = capsys.readouterr()
    assert code == 0 and len(out.splitlines()) == 2


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["scan", str(SAMPLE), "--bogus"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_workers_report_bad_lines_and_unreadable_files_too(capsys, tmp_path):
    good = [dracut_event(f"/usr/lib/dracut/modules.d/99x/{i}.sh", "/usr/bin/curl") for i in range(3)]
    events = write_ndjson(tmp_path / "events.ndjson", [good[0], '{"broken": ', good[1], "", good[2]])
    code, alerts, err = scan(capsys, events, tmp_path / "missing.ndjson", "--jobs", "2")
    assert code == 2
    assert len(alerts) == 3
    assert f"{events}:2" in err and "missing.ndjson" in err
    assert "3 events read, 2 skipped" in err


def test_parquet_input_gives_the_alerts_of_its_json(capsys, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    parquet = tmp_path / "events.parquet"
    duckdb.sql(
        f"COPY (SELECT * FROM read_json_auto('{SAMPLE}', format='newline_delimited')) "
        f"TO '{parquet}' (FORMAT parquet)"
    )
    _, from_json, _ = scan(capsys, SAMPLE)
    code, from_parquet, err = scan(capsys, parquet)
    assert code == 0
    # The same documents, so the same alert ids.
    assert sorted(a["kibana.alert.uuid"] for a in from_parquet) == sorted(
        a["kibana.alert.uuid"] for a in from_json
    )
    assert "17 events read" in err
    assert main(["query", 'file where file.path : "*/99netfix/*"', str(parquet), "--format", "ndjson"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
