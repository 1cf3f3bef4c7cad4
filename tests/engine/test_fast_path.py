"""The fast batch path gives exactly the alerts of the plain path (Engine.scan over read_inputs).

The data mixes generated Elastic Defend events with lines written to trip a raw-line
pre-filter: JSON escapes, case changes, dotted keys, arrays, missing fields,
non-ASCII text, events without an index, and events out of timestamp order (which
sequences need sorted).
"""

from __future__ import annotations

import copy
import gzip
import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shaped_events import dotted
from split_values import split_lines

from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.events.readers import ReadStats
from vigil.rules.loaders import bundled_rules

NOW = datetime(2026, 12, 1, tzinfo=UTC)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
gen_events = pytest.importorskip("gen_events")


def _traps(rng: random.Random, docs: list[dict]) -> list[bytes]:
    """Lines that a pre-filter could get wrong, built from matching-prone documents."""
    ts = datetime(2026, 11, 1, tzinfo=UTC)
    dracut = [gen_events._dracut_event(rng, ts, n) for n in range(8)]
    lines: list[bytes] = []
    for d in dracut[:6]:
        raw = orjson.dumps(d)
        lines.append(raw.replace(b"/", b"\\/"))  # escaped slashes
        lines.append(raw.replace(b"dracut", b"\\u0064racut", 1))  # escaped letter
        upper = copy.deepcopy(d)
        upper["file"]["path"] = upper["file"]["path"].upper()  # like~ is case-insensitive
        lines.append(orjson.dumps(upper))
        lines.append(orjson.dumps(dotted(d)))  # dotted keys instead of objects
        noidx = copy.deepcopy(d)
        noidx.pop("data_stream", None)  # no index: every rule may read it
        lines.append(orjson.dumps(noidx))
        missing = copy.deepcopy(d)
        missing["process"].pop("executable", None)
        lines.append(orjson.dumps(missing))
        accent = copy.deepcopy(d)
        accent["process"]["name"] = "cr\u00e9\u212a"  # non-ASCII, with the Kelvin sign
        lines.append(json.dumps(accent, ensure_ascii=False).encode())
        lines.append(json.dumps(accent).encode())  # the same as \\u escapes
    for d in rng.sample(docs, 30):
        e = copy.deepcopy(d)
        e["event"]["category"] = e["event"]["category"][0]  # a string, not an array
        lines.append(orjson.dumps(e))
        lines.append(orjson.dumps(d).replace(b"\\\\", b"\\\\\\/"))  # escapes after backslashes
    lines.append(b"not json at all")
    lines.append(b"")
    lines.append(b'[{"event": {"category": ["process"]}, "process": {"name": "bash"}}]')
    return lines


def _write(path: Path, count: int, seed: int, *, disorder: bool, extra: list[bytes] | None = None) -> Path:
    rng = random.Random(seed)
    docs = list(gen_events.generate(count, seed=seed))
    lines = [orjson.dumps(d) for d in docs]
    traps = _traps(rng, docs) + (extra or [])
    for t in traps:
        lines.insert(rng.randrange(len(lines)), t)
    if disorder:  # a stretch of late events written early
        lines[10:10] = lines[-40:]
        del lines[-40:]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _alerts(rules, paths, *, fast: bool, index=None, core=None) -> tuple[list[str], ReadStats]:
    engine = Engine(rules, now=NOW)
    stats = ReadStats()
    scan = scan_paths(engine, paths, index=index, stats=stats, fast=fast, core=core)
    ids = [a["kibana.alert.uuid"] for a in scan]
    return ids, stats


@pytest.fixture(scope="module")
def prebuilt(prebuilt_rules):
    assert sum(1 for r in prebuilt_rules if r.runnable) > 1000
    return prebuilt_rules


@pytest.mark.parametrize("disorder", [False, True], ids=["in-order", "out-of-order"])
def test_prebuilt_rules_same_alerts(prebuilt, tmp_path, disorder):
    # With events of the prebuilt rules that compare one field twice in an `and`, split across arrays.
    data = _write(tmp_path / "events.ndjson", 1200, seed=5, disorder=disorder, extra=split_lines(prebuilt))
    plain, pstats = _alerts(prebuilt, [data], fast=False)
    assert len(plain) > 50, "the data must raise alerts for the comparison to mean something"
    # The routed per-event path and the columnar core (vigil.engine.core).
    for core in (False, True):
        fast, fstats = _alerts(prebuilt, [data], fast=True, core=core)
        assert fast == plain, f"core={core}"
        assert [p.line for p in fstats.problems] == [p.line for p in pstats.problems]


def test_seed_rule_same_alerts_in_same_order(tmp_path):
    data = _write(tmp_path / "events.ndjson", 6000, seed=9, disorder=False)
    rules = bundled_rules().rules
    plain, _ = _alerts(rules, [data], fast=False)
    fast, _ = _alerts(rules, [data], fast=True)
    assert len(plain) >= 10
    assert fast == plain


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_lines_cut_by_small_reads_keep_their_alerts_and_numbers(tmp_path, monkeypatch, compress):
    from vigil.engine import batch

    monkeypatch.setattr(batch, "BLOCK", 700)  # most lines are longer than a read
    data = _write(tmp_path / "events.ndjson", 800, seed=21, disorder=False)
    lines = data.read_bytes().split(b"\n")
    for at, bad in (
        (5, b'{"file": {"path": "/lib/drac'),
        (300, b"not json"),
        (301, b""),
        (640, b'{"a": 1}}'),
    ):
        lines.insert(at, bad)
    data.write_bytes(b"\n".join(lines))
    if compress:
        gz = tmp_path / "events.ndjson.gz"
        gz.write_bytes(gzip.compress(data.read_bytes()))
        data = gz
    rules = bundled_rules().rules
    plain, pstats = _alerts(rules, [data], fast=False)
    fast, fstats = _alerts(rules, [data], fast=True)
    assert plain and fast == plain
    assert pstats.problems and [(p.line, p.column) for p in fstats.problems] == [
        (p.line, p.column) for p in pstats.problems
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([b"{}", b"x" * 9, b"\n", b"\n\n", b"ab\ncd"]), max_size=30), st.integers(1, 12)
)
def test_blocks_are_whole_lines_that_join_back_to_the_input(pieces, size):
    import io

    from vigil.engine.batch import blocks

    data = b"".join(pieces)
    got = [bytes(b) for b in blocks(io.BytesIO(data), size=size)]
    assert b"".join(got) == data
    assert all(b.endswith(b"\n") for b in got[:-1])
    assert all(b for b in got)


def test_index_option_and_gzip(prebuilt, tmp_path):
    data = _write(tmp_path / "events.ndjson", 600, seed=3, disorder=False)
    gz = tmp_path / "events.ndjson.gz"
    gz.write_bytes(gzip.compress(data.read_bytes()))
    for index in ("logs-endpoint.events.file-default", "winlogbeat-1"):
        plain, _ = _alerts(prebuilt, [gz], fast=False, index=index)
        fast, _ = _alerts(prebuilt, [gz], fast=True, index=index)
        assert sorted(fast) == sorted(plain)


def test_jobs_give_the_same_alerts_in_the_same_order(prebuilt, tmp_path, monkeypatch):
    from vigil.engine import batch

    monkeypatch.setattr(batch, "CHUNK", 64 << 10)  # many byte ranges from a small file
    data = _write(tmp_path / "events.ndjson", 1500, seed=13, disorder=True, extra=split_lines(prebuilt))
    assert data.stat().st_size > 8 * batch.CHUNK
    for rules in (bundled_rules().rules, prebuilt):
        one_stats, two_stats = ReadStats(), ReadStats()
        one = [a["kibana.alert.uuid"] for a in scan_paths(Engine(rules, now=NOW), [data], stats=one_stats)]
        two = [
            a["kibana.alert.uuid"]
            for a in scan_paths(Engine(rules, now=NOW), [data], stats=two_stats, jobs=2)
        ]
        assert one and two == one
        assert two_stats.events == one_stats.events
        assert [(p.line, p.message) for p in two_stats.problems] == [
            (p.line, p.message) for p in one_stats.problems
        ]


def test_route_candidates_hold_every_matching_rule(prebuilt):
    """Per event: every rule whose query matches is among the routed candidates, with
    documents also written with dotted keys and with odd values in anchor fields."""
    from vigil.events.model import Event

    engine = Engine(prebuilt, now=NOW)
    router = engine.router
    rng = random.Random(21)
    docs = list(gen_events.generate(2000, seed=21))
    odd = []
    for d in rng.sample(docs, 200):
        e = copy.deepcopy(d)
        e.setdefault("process", {})["name"] = rng.choice([7, True, ["x", 3], "\u212aworker", "CMD.EXE"])
        odd.append(e)
    matched = 0
    for doc in docs + [dotted(d) for d in docs[:500]] + odd:
        event = Event(doc, None)
        low = orjson.dumps(doc).lower() if orjson.dumps(doc).isascii() else None
        candidates = {id(p): stages for p, stages in router.group(event).candidates(doc, low)}
        for p in router.plans:
            if p.query.matches(doc):
                matched += 1
                assert id(p) in candidates, (p.rule.name, doc)
                # A sequence is tested on the stages whose anchors the event meets.
                assert p.takes(doc, candidates[id(p)]), (p.rule.name, doc)
    assert matched > 1000


def test_anchors_of_comparisons_regexes_and_or_branches():
    from vigil.events.model import Event
    from vigil.rules.model import rule_from_dict

    queries = {
        "ml": "process where (problemchild.prediction == 1 and problemchild.prediction_probability > 0.9) "
        "or blocklist_label == 1",
        "regex": 'process where process.command_line regex ".*a{3}.*"',
        "count": "any where foo.count > 3",
        "either": 'any where process.name : "bash" or file.name == "hosts"',
        "wild": 'file where file.path : "*/DrAcUt/*"',
    }
    rules = [
        rule_from_dict({"rule_id": k, "name": k, "type": "eql", "language": "eql", "query": q})
        for k, q in queries.items()
    ]
    router = Engine(rules, now=NOW).router
    cases = [
        (
            {
                "event": {"category": ["process"]},
                "problemchild": {"prediction": 1, "prediction_probability": 0.95},
            },
            "ml",
        ),
        ({"event.category": "process", "blocklist_label": 1}, "ml"),
        ({"event": {"category": "process"}, "process.command_line": "xaaay"}, "regex"),
        ({"foo": {"count": 4}}, "count"),
        ({"foo.count": "5"}, "count"),
        ({"process": {"name": "BASH"}}, "either"),
        ({"file": {"name": "hosts"}}, "either"),
        ({"event": {"category": "file"}, "file": {"path": "/usr/lib/dracut/x"}}, "wild"),
        ({"event": {"category": "file"}, "file": {"path": ["/a", "/lib/dracut/y"]}}, "wild"),
    ]
    for doc, rid in cases:
        plans = {p.rule.rule_id: p for p in router.plans}
        assert plans[rid].query.matches(doc), (rid, doc)
        names = [p.rule.rule_id for p, _ in router.group(Event(doc)).candidates(doc, None)]
        assert rid in names, (rid, doc)
    # And the anchors do narrow: an event with none of those fields reaches none of them.
    bare = {
        "event": {"category": ["process", "file"]},
        "process": {"name": "zsh"},
        "file": {"path": "/tmp/x"},
    }
    assert router.group(Event(bare)).candidates(bare, None) == []
