"""Hostile event files: a bad input costs what it holds, never the scan, and is reported.

Nesting past Elasticsearch's ``index.mapping.depth.limit`` (20) or past 128 levels
(orjson writes 254), corrupt and truncated gzip, unreadable and linked folders, overlong lines,
malformed lines the fast path does not parse: each is read as far as it goes, located,
counted, and said in the exit status; the plain and fast paths agree.
"""

from __future__ import annotations

import gzip
import os
import zlib

import orjson
import pytest
from hostile_events import GOOD
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.cli import main
from vigil.engine import batch
from vigil.engine.batch import blocks, scan_paths
from vigil.engine.engine import Engine
from vigil.events import readers
from vigil.events.readers import ReadStats, read_inputs
from vigil.rules.loaders import bundled_rules

QUIET = {"@timestamp": "2024-01-01T00:00:00Z", "event": {"category": ["process"]}, "process": {"name": "ls"}}
RULES = bundled_rules().rules


def good(n: int) -> bytes:
    return orjson.dumps({**GOOD, "file": {"path": f"/lib/dracut/modules.d/99x/{n}.sh"}})


def alerts(paths, *, fast: bool, stats: ReadStats | None = None) -> list[str]:
    stats = stats if stats is not None else ReadStats()
    return [a["file"]["path"] for a in scan_paths(Engine(RULES), paths, stats=stats, fast=fast)]


def scan(capsys, *argv) -> tuple[int, list[dict], str]:
    code = main(["scan", "--format", "ndjson", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, [orjson.loads(x) for x in out.splitlines()], err


def deep(levels: int) -> bytes:
    return b'{"x":' * levels + b"1" + b"}" * levels


def test_a_matching_event_nested_past_the_limits_is_skipped_not_a_crash(tmp_path, capsys):
    f = tmp_path / "e.ndjson"
    for levels in (19, 300):
        nested = good(0)[:-1] + b',"deep":' + deep(levels) + b"}"
        f.write_bytes(nested + b"\n" + good(1) + b"\n")
        code, found, err = scan(capsys, f)
        assert "Traceback" not in err
        if levels == 19:
            assert code == 0 and len(found) == 2
        else:
            assert code == 1 and [a["file"]["path"] for a in found] == ["/lib/dracut/modules.d/99x/1.sh"]
            assert f"{f}:1" in err and "Limit of mapping depth [20]" in err
    arrays = good(0)[:-1] + b',"deep":' + b"[" * 300 + b"]" * 300 + b"}"
    f.write_bytes(arrays + b"\n" + good(1) + b"\n")
    code, found, err = scan(capsys, f)
    assert code == 1 and len(found) == 1 and "128 levels" in err
    code = main(["query", "--format", "ndjson", "file where true", str(f)])
    out, err = capsys.readouterr()
    assert code == 1 and len(out.splitlines()) == 1 and "Traceback" not in err


def test_a_corrupt_gzip_is_reported_and_the_files_after_it_are_scanned(tmp_path):
    data = gzip.compress(good(0) + b"\n" + good(1) + b"\n")
    (tmp_path / "a.ndjson.gz").write_bytes(data[:12] + b"\xff" * 40 + data[52:])
    (tmp_path / "b.ndjson").write_bytes(good(2) + b"\n")
    for fast in (True, False):
        stats = ReadStats()
        assert alerts([tmp_path], fast=fast, stats=stats) == ["/lib/dracut/modules.d/99x/2.sh"]
        assert stats.files_failed == 1 and stats.problems[0].file.endswith("a.ndjson.gz")


def _complete_lines(data: bytes) -> list[bytes]:
    """What zcat gives of a damaged gzip, cut to its whole lines."""
    d = zlib.decompressobj(31)
    out = b""
    try:
        for i in range(0, len(data), 64):
            out += d.decompress(data[i : i + 64])
    except zlib.error:
        pass
    return out.split(b"\n")[:-1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=11, max_value=4000))
def test_a_truncated_gzip_keeps_every_complete_line_on_both_paths(tmp_path, cut):
    lines = [good(n) for n in range(150)]
    data = gzip.compress(b"\n".join(lines) + b"\n")
    f = tmp_path / "t.ndjson.gz"
    f.write_bytes(data[: min(cut, len(data) - 1)])
    want = len(_complete_lines(f.read_bytes()))
    for fast in (True, False):
        stats = ReadStats()
        found = alerts([f], fast=fast, stats=stats)
        assert len(found) >= want, (fast, len(found), want)
        assert stats.files_failed == 1


def test_a_bad_crc_gives_the_same_alerts_on_both_paths_and_is_reported(tmp_path):
    data = bytearray(gzip.compress(b"\n".join(good(n) for n in range(50)) + b"\n"))
    data[-8] ^= 0xFF  # the CRC of the data
    f = tmp_path / "crc.ndjson.gz"
    f.write_bytes(bytes(data))
    results = []
    for fast in (True, False):
        stats = ReadStats()
        results.append(alerts([f], fast=fast, stats=stats))
        assert "CRC" in stats.problems[0].message and stats.files_failed == 1
    assert results[0] == results[1] and len(results[0]) == 50


def test_concatenated_gzip_members_are_all_read(tmp_path):
    f = tmp_path / "two.ndjson.gz"
    f.write_bytes(gzip.compress(good(0) + b"\n") + gzip.compress(good(1) + b"\n") + b"\0" * 16)
    for fast in (True, False):
        stats = ReadStats()
        assert len(alerts([f], fast=fast, stats=stats)) == 2 and stats.problems == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_folder_is_a_failed_input(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "e.ndjson").write_bytes(good(0) + b"\n")
    (tmp_path / "b.ndjson").write_bytes(good(1) + b"\n")
    locked.chmod(0)
    try:
        code, found, err = scan(capsys, tmp_path)
        assert code == 2 and len(found) == 1 and "locked" in err
        code, found, err = scan(capsys, locked)
        assert code == 2 and "cannot read folder" in err
    finally:
        locked.chmod(0o755)


def test_an_unreadable_folder_is_reported_by_the_walk(tmp_path, monkeypatch):
    # Whoever runs the tests (root reads everything): the walk's error is reported.
    real = os.walk

    def walk(top, onerror=None, followlinks=False):
        onerror(PermissionError(13, "Permission denied", str(top)))
        return real(top, onerror=onerror, followlinks=followlinks)

    monkeypatch.setattr(readers.os, "walk", walk)
    stats = ReadStats()
    list(read_inputs([tmp_path], stats=stats))
    assert stats.files_failed == 1 and "Permission denied" in stats.problems[0].message


def test_linked_folders_are_followed_once_and_loops_end(tmp_path):
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "sub" / "e.ndjson").write_bytes(good(0) + b"\n")
    top = tmp_path / "top"
    top.mkdir()
    (top / "link").symlink_to(real, target_is_directory=True)
    (real / "sub" / "loop").symlink_to(real, target_is_directory=True)
    for fast in (True, False):
        assert alerts([top], fast=fast) == ["/lib/dracut/modules.d/99x/0.sh"]


def test_fast_path_says_what_it_did_not_parse_and_strict_parses_it(tmp_path, capsys):
    f = tmp_path / "e.ndjson"
    f.write_bytes(good(0) + b"\n" + b"{oops, not json}\n" + orjson.dumps(QUIET) + b"\n")
    code, found, err = scan(capsys, f)
    assert code == 0 and len(found) == 1
    assert "2 of 3 events not parsed: no rule could match them" in err
    code, found, err = scan(capsys, f, "--strict")
    assert code == 2 and f"{f}:2" in err


def test_a_truncated_json_array_is_reported(tmp_path, capsys):
    f = tmp_path / "a.json"
    f.write_bytes(b"[" + good(0) + b"," + good(1)[:40])
    code, _, err = scan(capsys, f)
    assert code == 1 and f"{f}:1:" in err


def test_an_overlong_line_is_skipped_with_its_place_on_both_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 4096)
    monkeypatch.setattr(batch, "BLOCK", 1024)  # a line inside one read is never held
    long = good(1)[:-1] + b',"pad":"' + b"a" * 10_000 + b'"}'
    for name, opener in (("e.ndjson", lambda b: b), ("e.ndjson.gz", gzip.compress)):
        f = tmp_path / name
        f.write_bytes(opener(good(0) + b"\n" + long + b"\n" + good(2) + b"\n"))
        for fast in (True, False):
            stats = ReadStats()
            assert alerts([f], fast=fast, stats=stats) == [
                "/lib/dracut/modules.d/99x/0.sh",
                "/lib/dracut/modules.d/99x/2.sh",
            ], (name, fast)
            assert [(p.line, "longer than 4096" in p.message) for p in stats.problems] == [(2, True)]


def test_blocks_never_hold_a_line_past_the_limit():
    import io

    data = b"short\n" + b"x" * 5000 + b"\n" + b"y" * 5000 + b"\nend\n" + b"z" * 9000
    out = list(blocks(io.BytesIO(data), size=1000, limit=3000))
    assert sum(1 for b in out if b is not None and len(b) == 1 and bytes(b) == b"\n") == 3
    joined = b"".join(bytes(b) for b in out)
    assert joined == b"short\n\n\nend\n\n"


LINE = st.one_of(
    st.sampled_from([good(7), orjson.dumps(QUIET), b"{oops}", b"[1,2", b"", b"{}", b'{"@timestamp": 1e999}']),
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(LINE, max_size=12), st.booleans())
def test_any_bytes_give_the_same_alerts_on_both_paths_and_never_raise(tmp_path, lines, zipped):
    data = b"\n".join(lines) + b"\n" + good(9) + b"\n"
    f = tmp_path / ("any.ndjson.gz" if zipped else "any.ndjson")
    f.write_bytes(gzip.compress(data) if zipped else data)
    fast_stats, plain_stats = ReadStats(), ReadStats()
    fast = alerts([f], fast=True, stats=fast_stats)
    plain = alerts([f], fast=False, stats=plain_stats)
    assert fast == plain
    assert "/lib/dracut/modules.d/99x/9.sh" in fast or plain_stats.skipped, "a bad line costs that line"
