"""Hostile dates: a value Elasticsearch's ``date`` type cannot hold costs its event at most.

Elasticsearch stores a date as a Java long of epoch milliseconds (``DateFieldMapper``)
and ``epoch_millis`` reads at most 19 digits (``EpochTime``): ``1e30`` or a 25-digit
string makes it reject the document. Dates it can hold print with a sign past year
9999 (``DateFormatters``, ``SignStyle.EXCEEDS_PAD``).
"""

from __future__ import annotations

import orjson
from hostile_events import GOOD
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.eql.dates import MAX_MILLIS, MIN_MILLIS, iso_from_millis, to_epoch_millis
from vigil.events.readers import ReadStats, read_inputs

HOSTILE = [
    b"-62135596800001",
    b"253402300800000",
    b"1e30",
    b"1e300",
    b'"1234567890123456789012345"',
    b"-1180591620717411303424",
    b"18446744073709551616",
]


def test_edges_of_a_java_long_print_as_java_prints_them():
    assert iso_from_millis(MAX_MILLIS) == "+292278994-08-17T07:12:55.807Z"
    assert iso_from_millis(MIN_MILLIS) == "-292275055-05-16T16:47:04.192Z"
    assert iso_from_millis(-62135596800001) == "0000-12-31T23:59:59.999Z"
    assert iso_from_millis(253402300800000) == "+10000-01-01T00:00:00.000Z"


def test_values_past_a_long_are_not_dates():
    for value in (1e30, 1e300, float("nan"), float("inf"), "1234567890123456789012345", 2**63, -(2**63) - 1):
        assert to_epoch_millis(value) is None, value


@given(st.integers(min_value=MIN_MILLIS, max_value=MAX_MILLIS))
def test_every_long_prints_and_reads_back(ms):
    text = iso_from_millis(ms)
    if not text.startswith(("+", "-")) and not text.startswith("0000"):
        assert to_epoch_millis(text) == ms


@given(st.one_of(st.integers(), st.floats(), st.text(max_size=40), st.none(), st.booleans()))
def test_any_value_is_a_date_or_none_and_never_raises(value):
    ms = to_epoch_millis(value)
    assert ms is None or MIN_MILLIS <= ms <= MAX_MILLIS
    if ms is not None:
        iso_from_millis(ms)


def _scan_one(tmp_path, timestamp):
    f = tmp_path / "e.ndjson"
    bad = {**GOOD, "@timestamp": timestamp}
    f.write_bytes(orjson.dumps(bad) + b"\n" + orjson.dumps(GOOD) + b"\n")
    stats = ReadStats()
    return list(read_inputs([f], stats=stats)), stats


def test_a_timestamp_elasticsearch_rejects_skips_that_event_with_its_place(tmp_path):
    for value in (1e30, 1e300, "1234567890123456789012345", {"a": 1}, "yesterday"):
        events, stats = _scan_one(tmp_path, value)
        assert len(events) == 1 and events[0].doc == GOOD, value
        assert stats.skipped == 1
        problem = stats.problems[0]
        assert problem.line == 1 and "[@timestamp]" in problem.message


def test_dates_elasticsearch_holds_are_kept(tmp_path):
    for value in (-62135596800001, 253402300800000, None, ["2024-01-01", 5]):
        events, stats = _scan_one(tmp_path, value)
        assert len(events) == 2 and stats.skipped == 0, value


@settings(max_examples=60, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=30),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children),
        max_leaves=6,
    )
)
def test_scan_survives_any_timestamp_and_alerts_on_the_next_event(tmp_path_factory, value):
    from vigil.engine.batch import scan_paths
    from vigil.engine.engine import Engine
    from vigil.rules.loaders import bundled_rules

    tmp = tmp_path_factory.mktemp("ts")
    f = tmp / "e.ndjson"
    bad = {**GOOD, "@timestamp": value, "file": {"path": "/lib/dracut/modules.d/99x/bad.sh"}}
    f.write_bytes(orjson.dumps(bad) + b"\n" + orjson.dumps(GOOD) + b"\n")
    for fast in (True, False):
        stats = ReadStats()
        alerts = list(scan_paths(Engine(bundled_rules().rules), [f], stats=stats, fast=fast))
        paths = [a["file"]["path"] for a in alerts]
        assert GOOD["file"]["path"] in paths, (value, fast)
        assert stats.events + stats.skipped == 2


def test_hostile_timestamps_end_to_end(tmp_path, capsys):
    from vigil.cli import main

    f = tmp_path / "e.ndjson"
    # Raw JSON numbers: integers past 64 bits are read as doubles, as Jackson reads them.
    lines = [orjson.dumps({**GOOD, "@timestamp": 0}).replace(b"0", v, 1) for v in HOSTILE]
    lines.append(orjson.dumps(GOOD))
    f.write_bytes(b"\n".join(lines) + b"\n")
    code = main(["scan", "--format", "ndjson", str(f)])
    out, err = capsys.readouterr()
    alerts = [orjson.loads(x) for x in out.splitlines()]
    assert "Traceback" not in err
    times = {a["kibana.alert.original_time"] for a in alerts}
    # Dates a long holds alert; the others are skipped, located and counted.
    assert {"0000-12-31T23:59:59.999Z", "+10000-01-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z"} == times
    assert all(f"{f}:{n}" in err for n in (3, 4, 5, 6, 7))
    assert "3 events read, 5 skipped" in err
    assert code == 1, "an input not fully read says so in the exit status"
