import gzip
import io
import sys

import orjson

from vigil.events.readers import ReadStats, read_inputs

DOC = {"@timestamp": "2024-01-01T00:00:00Z", "event": {"category": ["file"]}, "file": {"path": "/a"}}


def _write(path, lines):
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")


def test_ndjson_with_bad_line(tmp_path):
    f = tmp_path / "e.ndjson"
    f.write_bytes(orjson.dumps(DOC) + b"\n{oops\n\n" + orjson.dumps(DOC) + b"\n")
    stats = ReadStats()
    events = list(read_inputs([f], stats=stats))
    assert len(events) == 2 and stats.events == 2 and stats.skipped == 1
    problem = stats.problems[0]
    assert problem.file == str(f) and problem.line == 2 and problem.column is not None
    assert events[1].origin == f"{f}:4"


def test_array_and_search_response(tmp_path):
    (tmp_path / "a.json").write_bytes(orjson.dumps([DOC, DOC]))
    resp = {"hits": {"hits": [{"_index": ".ds-logs-x", "_id": "abc", "_source": DOC}]}}
    (tmp_path / "b.json").write_bytes(orjson.dumps(resp, option=orjson.OPT_INDENT_2))
    events = list(read_inputs([tmp_path]))
    assert len(events) == 3
    assert events[2].index == ".ds-logs-x" and events[2].id == "abc"
    assert events[2].doc == DOC


def test_export_lines_gz_and_index_order(tmp_path):
    hit = {"_index": "logs-endpoint.events.file-default", "_id": "1", "_source": DOC}
    ds = dict(DOC, data_stream={"type": "logs", "dataset": "endpoint.events.file", "namespace": "prod"})
    f = tmp_path / "x.ndjson.gz"
    f.write_bytes(gzip.compress(orjson.dumps(hit) + b"\n" + orjson.dumps(ds) + b"\n" + orjson.dumps(DOC)))
    events = list(read_inputs([f]))
    assert [e.index for e in events] == [
        "logs-endpoint.events.file-default",
        "logs-endpoint.events.file-prod",
        None,
    ]
    assert [e.index for e in read_inputs([f], index="forced")] == ["forced"] * 3


def test_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(orjson.dumps(DOC) + b"\n")))
    assert [e.doc for e in read_inputs(["-"])] == [DOC]


def test_unreadable_file_is_a_problem(tmp_path):
    stats = ReadStats()
    assert list(read_inputs([tmp_path / "missing.ndjson"], stats=stats)) == []
    assert stats.skipped == 1 and stats.problems[0].file.endswith("missing.ndjson")


def test_scalar_line_is_skipped(tmp_path):
    f = tmp_path / "e.ndjson"
    _write(f, [DOC, 5, DOC])
    stats = ReadStats()
    assert len(list(read_inputs([f], stats=stats))) == 2
    assert stats.problems[0].line == 2
