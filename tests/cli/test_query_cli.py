"""``vigil query`` run through the real command line entry point."""

from __future__ import annotations

import gzip
import io
import json
import sys

import pytest

from vigil.cli import main

EVENTS = [
    {
        "@timestamp": "2024-01-01T00:00:00Z",
        "event": {"category": "process"},
        "process": {"name": "sh", "pid": 1},
    },
    {
        "@timestamp": "2024-01-01T00:00:01Z",
        "event": {"category": "file"},
        "file": {"path": "/etc/x"},
        "process": {"pid": 1},
    },
    {
        "@timestamp": "2024-01-01T00:00:02Z",
        "event": {"category": "process"},
        "process": {"name": "bash", "pid": 2},
    },
]


@pytest.fixture
def events_file(tmp_path):
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    return path


def run(capsys, *argv):
    code = main(["query", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def docs(out: str) -> list:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_event_query_prints_matching_documents(capsys, events_file):
    code, out, err = run(capsys, "--format", "ndjson", 'process where process.name : "SH"', events_file)
    assert code == 0
    assert docs(out) == [EVENTS[0]]
    assert err == ""


def test_head_tail_and_size(capsys, events_file):
    _, out, _ = run(capsys, "--format", "ndjson", "any where true | tail 2", events_file)
    assert docs(out) == EVENTS[1:]
    _, out, _ = run(capsys, "--format", "ndjson", "--size", "1", "any where true", events_file)
    assert docs(out) == EVENTS[:1]


def test_gzip_json_array_and_folder(capsys, tmp_path):
    (tmp_path / "a.json.gz").write_bytes(gzip.compress(json.dumps(EVENTS[:2]).encode()))
    (tmp_path / "b.ndjson").write_text(json.dumps(EVENTS[2]) + "\n")
    _, out, _ = run(capsys, "--format", "ndjson", "process where true", tmp_path)
    names = sorted(d["process"]["name"] for d in docs(out))
    assert names == ["bash", "sh"]


def test_stdin(capsys, monkeypatch):
    data = "".join(json.dumps(e) + "\n" for e in EVENTS).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    _, out, _ = run(capsys, "--format", "ndjson", "file where true", "-")
    assert docs(out) == [EVENTS[1]]


def test_malformed_lines_are_reported_skipped_and_counted(capsys, tmp_path):
    path = tmp_path / "bad.ndjson"
    path.write_text(json.dumps(EVENTS[0]) + "\n{not json\n" + json.dumps(EVENTS[2]) + "\n")
    code, out, err = run(capsys, "--format", "ndjson", "process where true", path)
    assert code == 1, "the exit status says an input was not fully read"
    assert len(docs(out)) == 2
    assert f"{path}:2" in err
    assert "1 skipped" in err


def test_syntax_error_shows_caret_and_exits_2(capsys, events_file):
    code, out, err = run(capsys, "process where process.name == 'sh'", events_file)
    assert code == 2
    assert out == ""
    assert "line 1, column 31" in err
    assert "single quotes" in err
    assert err.rstrip().endswith(" " * 32 + "^")
    assert "Traceback" not in err


def test_type_error_exits_2(capsys, events_file):
    code, _, err = run(capsys, "process where nosuchfunction(process.name)", events_file)
    assert code == 2
    assert "nosuchfunction" in err and "Traceback" not in err


def test_missing_file_is_a_clean_error(capsys, tmp_path):
    code, _, err = run(capsys, "any where true", tmp_path / "nope.ndjson")
    assert code == 2
    assert "nope.ndjson" in err


def test_custom_category_field(capsys, tmp_path):
    path = tmp_path / "e.ndjson"
    path.write_text(json.dumps({"@timestamp": "2024-01-01T00:00:00Z", "kind": "proc", "x": 1}) + "\n")
    _, out, _ = run(capsys, "--format", "ndjson", "--event-category-field", "kind", "proc where x == 1", path)
    assert len(docs(out)) == 1
    _, out, _ = run(capsys, "--format", "ndjson", "proc where x == 1", path)
    assert docs(out) == []


def test_mapping_types_the_fields(capsys, tmp_path):
    mapping = tmp_path / "mapping.json"
    mapping.write_text(
        json.dumps(
            {
                "properties": {
                    "n": {"type": "long"},
                    "event": {"properties": {"category": {"type": "keyword"}}},
                }
            }
        )
    )
    path = tmp_path / "e.ndjson"
    path.write_text(json.dumps({"event": {"category": "x"}, "n": "5"}) + "\n")
    code, out, _ = run(capsys, "--format", "ndjson", "--mapping", mapping, "x where n > 3", path)
    assert code == 0 and len(docs(out)) == 1
    code, _, err = run(capsys, "--mapping", mapping, "x where unknown_field == 1", path)
    assert code == 2 and "unknown_field" in err


def test_table_output(capsys, events_file):
    code, out, _ = run(capsys, "--format", "table", "process where true", events_file)
    assert code == 0
    assert "process.name=sh" in out and "process.name=bash" in out
    assert "file.path" not in out


def test_sequence_prints_join_keys_and_events(capsys, events_file):
    pytest.importorskip("vigil.eql.query")
    code, out, _ = run(
        capsys,
        "--format",
        "ndjson",
        "sequence by process.pid [process where true] [file where true]",
        events_file,
    )
    assert code == 0
    assert docs(out) == [{"join_keys": [1], "events": [EVENTS[0], EVENTS[1]]}]


def test_broken_mapping_names_file_line_and_column(capsys, tmp_path, events_file):
    mapping = tmp_path / "mapping.json"
    mapping.write_text('{"properties": {\n  "a": }')
    code, _, err = run(capsys, "--mapping", mapping, "any where true", events_file)
    assert code == 2
    assert f"{mapping}:2:" in err
    assert "Traceback" not in err


def test_json_array_items_that_are_not_objects_are_skipped(capsys, tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([1, EVENTS[0]]))
    code, out, err = run(capsys, "--format", "ndjson", "any where true", path)
    assert code == 1
    assert docs(out) == [EVENTS[0]]
    assert "1 skipped" in err


def test_bad_size_is_an_argument_error(capsys, events_file):
    with pytest.raises(SystemExit) as info:
        main(["query", "--size", "-3", "any where true", str(events_file)])
    assert info.value.code == 2
    assert "--size" in capsys.readouterr().err


def test_event_matches_come_in_timestamp_order(capsys, tmp_path):
    late, early = dict(EVENTS[0], **{"@timestamp": "2024-01-02T00:00:00Z"}), EVENTS[2]
    path = tmp_path / "e.ndjson"
    path.write_text(json.dumps(late) + "\n" + json.dumps(early) + "\n")
    _, out, _ = run(capsys, "--format", "ndjson", "process where true", path)
    assert docs(out) == [early, late]
    _, out, _ = run(capsys, "--format", "ndjson", "process where true | head 1", path)
    assert docs(out) == [early]


def test_real_command_reads_stdin_and_reports_errors(events_file):
    import subprocess

    data = events_file.read_bytes()
    cmd = [sys.executable, "-m", "vigil.cli", "query", "--format", "ndjson"]
    done = subprocess.run(
        [*cmd, 'process where process.name == "bash"', "-"], input=data, capture_output=True
    )
    assert done.returncode == 0
    assert docs(done.stdout.decode()) == [EVENTS[2]]
    done = subprocess.run([*cmd, "process where (a == 1", "-"], input=data, capture_output=True)
    assert done.returncode == 2
    assert b"expected ')' to close the parenthesis opened at line 1, column 15" in done.stderr
    assert b"Traceback" not in done.stderr


def test_kql_query_with_custom_query_rule_meaning(capsys, events_file):
    # Unlike EQL's `:`, a KQL term on a keyword field is case-sensitive.
    code, out, err = run(capsys, "--kql", "--format", "ndjson", "process.name: SH", events_file)
    assert code == 0 and docs(out) == []
    _, out, _ = run(capsys, "--kql", "--format", "ndjson", "process.name: (sh or bash)", events_file)
    assert docs(out) == [EVENTS[0], EVENTS[2]]
    _, out, _ = run(capsys, "--kql", "--format", "ndjson", "process.pid: 1 and not file.path: *", events_file)
    assert docs(out) == [EVENTS[0]]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["process.name: (sh or"], "line 1, column 21: expected ')'"),
        (["error"], "unsupported KQL"),
        (["--mapping", "m.json", "process.name: sh"], "--mapping applies to EQL queries"),
    ],
    ids=["syntax", "unsupported", "mapping"],
)
def test_kql_mistakes_exit_2_without_traceback(capsys, events_file, argv, message):
    code, out, err = run(capsys, "--kql", *argv, events_file)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err
