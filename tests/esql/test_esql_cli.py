"""``vigil query --esql``: the result table or NDJSON rows, errors with line and column."""

from __future__ import annotations

import json

from vigil.cli import main


def _events(tmp_path):
    path = tmp_path / "events.ndjson"
    docs = [
        {"@timestamp": "2026-01-01T00:00:00Z", "host": {"name": "a"}, "process": {"name": "sh"}},
        {"@timestamp": "2026-01-01T00:01:00Z", "host": {"name": "b"}, "process": {"name": "sh"}},
        {"@timestamp": "2026-01-01T00:02:00Z", "host": {"name": "a"}, "process": {"name": "[red]x\u001b[2J"}},
    ]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return str(path)


def test_ndjson_rows(tmp_path, capsys):
    query = "FROM logs-* | STATS n = COUNT(*) BY host.name | SORT n DESC"
    assert main(["query", "--esql", query, _events(tmp_path), "--format", "ndjson"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{"n": 2, "host.name": "a"}, {"n": 1, "host.name": "b"}]


def test_table_escapes_values(tmp_path, capsys):
    query = 'FROM logs-* | WHERE host.name == "a" | KEEP process.name'
    assert main(["query", "--esql", query, _events(tmp_path), "--format", "table"]) == 0
    out = capsys.readouterr().out
    assert "[red]x\\x1b[2J" in out and "\x1b" not in out


def test_errors_name_line_and_column(tmp_path, capsys):
    assert main(["query", "--esql", "FROM logs-*\n| WHERE nope(", _events(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "line 2, column 14" in err and "Traceback" not in err
