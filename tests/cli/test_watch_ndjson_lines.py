"""``vigil watch --events-out`` writes each event and alert exactly as ``vigil.cli.output.dumps`` does."""

from __future__ import annotations

import datetime as dt
from pathlib import PurePosixPath

import pytest

from vigil.cli.output import dumps
from vigil.cli.watch import ndjson_lines


def _doc(value) -> dict:
    return {
        "@timestamp": "2026-12-07T14:00:00.1234567Z",
        "event": {"kind": "event", "category": ["process"], "action": "exec"},
        "process": {"pid": 42, "args": ["/bin/sh", "-c", value], "exit_code": None, "ok": True},
    }


@pytest.mark.parametrize(
    "value",
    [
        "plain ascii",
        "caf\u00e9 \u65e5\u672c",  # UTF-8 that json_line leaves alone
        "title\x1b]0;x\x07",  # C0: orjson escapes it
        "c1 \u009b2J",  # C1 control: json_line escapes it
        "bidi \u202eevil\u2066",  # bidirectional overrides and isolates
        "del \x7f",  # DEL is ASCII yet escaped
        "line \u2028 sep",
        "arabic mark \u061c",
    ],
)
def test_lines_are_byte_identical_to_dumps(value):
    docs = [_doc("first"), _doc(value), _doc("last \u00e9")]
    assert ndjson_lines(docs) == b"".join(dumps(d) + b"\n" for d in docs)


def test_keys_and_values_orjson_needs_options_for_fall_back_to_dumps():
    docs = [_doc("a"), {"n": {1: "int key"}, "when": dt.date(2026, 12, 7)}]
    assert ndjson_lines(docs) == b"".join(dumps(d) + b"\n" for d in docs)
    odd = [{"path": PurePosixPath("/var/log/x")}]  # written by default=str
    assert ndjson_lines(odd) == dumps(odd[0]) + b"\n"


def test_no_documents_no_bytes():
    assert ndjson_lines([]) == b""


def test_every_code_point_is_written_as_dumps_writes_it():
    # Every character json_line could escape, in every batch position: the byte search that
    # spares the scan must never skip one.
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    docs = [_doc("ascii"), {"all": everything}, {"one": "\u0085"}, {"bidi": "\u2067"}]
    assert ndjson_lines(docs) == b"".join(dumps(d) + b"\n" for d in docs)
    for doc in docs[2:]:
        assert ndjson_lines([doc]) == dumps(doc) + b"\n"
