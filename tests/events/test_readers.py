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


def test_missing_file_counts_as_failed_and_the_rest_is_read(tmp_path):
    good = tmp_path / "good.ndjson"
    _write(good, [DOC])
    stats = ReadStats()
    events = list(read_inputs([tmp_path / "nope.ndjson", good], stats=stats))
    assert len(events) == 1 and stats.files_failed == 1
    assert "nope.ndjson" in stats.problems[0].render()
    assert "No such file" in stats.problems[0].message


def test_unreadable_directory_entry_counts_as_failed(tmp_path):
    stats = ReadStats()
    assert list(read_inputs([tmp_path], stats=stats)) == [] and stats.files_failed == 0
    (tmp_path / "x.ndjson.gz").write_bytes(b"\x1f\x8b" + b"not really gzip")
    assert list(read_inputs([tmp_path], stats=stats)) == []
    assert stats.files_failed == 1 and stats.problems[0].file.endswith("x.ndjson.gz")


def test_truncated_gzip_keeps_events_read_before_the_break(tmp_path):
    f = tmp_path / "t.ndjson.gz"
    data = gzip.compress(b"".join(orjson.dumps(dict(DOC, n=i)) + b"\n" for i in range(2000)))
    f.write_bytes(data[: len(data) * 3 // 4])
    stats = ReadStats()
    events = list(read_inputs([f], stats=stats))
    assert 0 < len(events) < 2000 and stats.files_failed == 1


def test_text_file_is_reported_not_ignored(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("\n\n  hello, these are not events\n")
    stats = ReadStats()
    assert list(read_inputs([f], stats=stats)) == []
    assert stats.skipped == 1 and stats.files_failed == 0
    problem = stats.problems[0]
    assert (problem.file, problem.line, problem.column) == (str(f), 3, 3)
    assert "not JSON" in problem.message


def test_empty_file_is_no_events_and_no_problem(tmp_path):
    f = tmp_path / "empty.ndjson"
    f.write_bytes(b"\n  \n")
    stats = ReadStats()
    assert list(read_inputs([f], stats=stats)) == [] and stats.problems == []


def test_bad_first_line_does_not_lose_the_rest(tmp_path):
    f = tmp_path / "e.ndjson"
    f.write_bytes(b"{oops\n" + orjson.dumps(DOC) + b"\n" + orjson.dumps(DOC) + b"\n")
    stats = ReadStats()
    assert len(list(read_inputs([f], stats=stats))) == 2
    assert [(p.line, p.column) for p in stats.problems] == [(1, 2)]


def test_truncated_first_line_does_not_lose_the_rest(tmp_path):
    f = tmp_path / "e.ndjson"
    f.write_bytes(b'{"event": {"kind": \n' + orjson.dumps(DOC) + b"\n")
    stats = ReadStats()
    assert [e.origin for e in read_inputs([f], stats=stats)] == [f"{f}:2"]
    assert stats.problems[0].line == 1 and stats.skipped == 1


def test_broken_pretty_printed_document_is_one_problem(tmp_path):
    f = tmp_path / "resp.json"
    text = orjson.dumps(
        {"hits": {"hits": [{"_index": "i", "_id": "1", "_source": DOC}]}}, option=orjson.OPT_INDENT_2
    )
    f.write_bytes(text.replace(b'"_id"', b"_id"))
    stats = ReadStats()
    assert list(read_inputs([f], stats=stats)) == []
    assert len(stats.problems) == 1 and stats.problems[0].line > 1


def test_utf8_bom_and_leading_blank_lines(tmp_path):
    f = tmp_path / "bom.ndjson"
    f.write_bytes(b"\xef\xbb\xbf\n" + orjson.dumps(DOC) + b"\n{bad\n")
    stats = ReadStats()
    events = list(read_inputs([f], stats=stats))
    assert [e.origin for e in events] == [f"{f}:2"]
    assert stats.problems[0].line == 3


def test_hit_without_source_is_reported(tmp_path):
    f = tmp_path / "hits.ndjson"
    _write(
        f,
        [
            {"_index": "logs-a", "_id": "1", "fields": {"x": [1]}},
            {"_index": "logs-a", "_id": "2", "_source": DOC},
        ],
    )
    stats = ReadStats()
    events = list(read_inputs([f], stats=stats))
    assert [e.id for e in events] == ["2"]
    assert stats.problems[0].line == 1 and "_source" in stats.problems[0].message


def test_folders_recursive_sorted_hidden_skipped(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    _write(tmp_path / "b" / "c" / "2.ndjson", [dict(DOC, n=2)])
    _write(tmp_path / "a.ndjson", [dict(DOC, n=1)])
    (tmp_path / "b" / "3.json.gz").write_bytes(gzip.compress(orjson.dumps([dict(DOC, n=3)])))
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    stats = ReadStats()
    assert [e.doc["n"] for e in read_inputs([tmp_path], stats=stats)] == [1, 3, 2]
    assert stats.problems == []


def test_stdin_export_hits_keep_index_and_id(monkeypatch):
    hit = {"_index": "logs-endpoint.events.file-default", "_id": "h1", "_source": DOC}
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(orjson.dumps(hit) + b"\n")))
    [event] = read_inputs(["-"])
    assert (event.index, event.id, event.origin) == ("logs-endpoint.events.file-default", "h1", "<stdin>:1")


def test_elastic_defend_export_reads_as_hits(shared):
    stats = ReadStats()
    events = list(read_inputs([shared / "conformance" / "elastic-defend" / "events.ndjson"], stats=stats))
    assert len(events) == 10 and stats.problems == []
    assert {e.index for e in events} == {".ds-logs-endpoint.events.file-default-2024.09.16-000001"}
    assert all(e.doc["event"]["category"] == ["file"] for e in events)
