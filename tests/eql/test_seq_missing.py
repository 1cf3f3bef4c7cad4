"""Missing-event stages ``![...]``, until and result order in sequences.

The rules are Elasticsearch's (x-pack/plugin/eql TumblingWindow.doCheckMissingEvents,
SequenceMatcher.match, Ordinal.between); see vigil.eql.sequence.
"""

from __future__ import annotations

import json
import re

import pytest

from vigil import eql
from vigil.eql.query import QueryOptions
from vigil.eql.schema import Schema


def ev(n, ts, cat="t", tag="n", key="a", **extra):
    return {"n": n, "@timestamp": ts, "event": {"category": cat}, "tag": tag, "k": key, **extra}


def ids(matches):
    return [[None if e is None else e["n"] for e in m.events] for m in matches]


def run(query, events, **opts):
    return ids(eql.compile(query, options=QueryOptions(**opts)).run(events))


def stream(query, events):
    s = eql.compile(query).stream()
    fed = [ids(s.feed(e)) for e in events]
    return fed, ids(s.close())


MIDDLE = 'sequence by k [t where tag == "n"] ![t where tag == "m"] [t where tag == "n"]'


def test_middle_missing_event_discards_the_sequence():
    evs = [ev(1, 1), ev(2, 2, tag="m"), ev(3, 3), ev(4, 4)]
    assert run(MIDDLE, evs) == [[3, None, 4]]


def test_middle_missing_event_of_another_key_does_not_count():
    evs = [ev(1, 1), ev(2, 2, tag="m", key="b"), ev(3, 3)]
    assert run(MIDDLE, evs) == [[1, None, 3]]


def test_middle_missing_uses_its_own_by_field():
    q = 'sequence [t where tag == "n"] by k ![t where tag == "m"] by other [t where tag == "n"] by k'
    assert run(q, [ev(1, 1), ev(2, 2, tag="m", key="zzz", other="a"), ev(3, 3)]) == []
    assert run(q, [ev(1, 1), ev(2, 2, tag="m", other="b"), ev(3, 3)]) == [[1, None, 3]]


def test_middle_missing_needs_a_timestamp_strictly_between():
    # Same millisecond as a neighbour: ES's range query is gt/lt on the timestamp.
    evs = [ev(1, 1), ev(2, 1, tag="m"), ev(3, 5, tag="m"), ev(4, 5)]
    assert run(MIDDLE, evs, tiebreaker_field="n") == [[1, None, 4]]


TRAILING = 'sequence by k with maxspan=10ms [t where tag == "n"] ![t where tag == "m"]'


def test_trailing_missing_within_maxspan_discards():
    assert run(TRAILING, [ev(1, 100), ev(2, 105, tag="m")]) == []


def test_trailing_missing_beyond_maxspan_keeps():
    assert run(TRAILING, [ev(1, 100), ev(2, 111, tag="m")]) == [[1, None]]


def test_trailing_missing_stream_waits_then_releases_when_time_passes():
    fed, closed = stream(TRAILING, [ev(1, 100), ev(2, 105, cat="other"), ev(3, 111, cat="other")])
    # Nothing at 100 or 105: an "m" event could still come within maxspan.
    assert fed == [[], [], [[1, None]]]
    assert closed == []


def test_trailing_missing_stream_keeps_the_undecided_at_close():
    fed, closed = stream(TRAILING, [ev(1, 100), ev(2, 104)])
    assert fed == [[], []]
    assert closed == [[1, None], [2, None]]


def test_trailing_missing_at_the_same_millisecond_does_not_count():
    evs = [ev(1, 100), ev(2, 100, tag="m")]
    assert run(TRAILING, evs, tiebreaker_field="n") == [[1, None]]


def test_missing_stage_at_either_end_requires_maxspan():
    with pytest.raises(eql.EqlError):
        eql.compile('sequence by k [t where tag == "n"] ![t where tag == "m"]')


LEADING = 'sequence by k with maxspan=10ms ![t where tag == "m"] [t where tag == "n"]'


def test_leading_missing_within_maxspan_discards_beyond_keeps():
    assert run(LEADING, [ev(1, 100, tag="m"), ev(2, 105)]) == []
    assert run(LEADING, [ev(1, 100, tag="m"), ev(2, 111)]) == [[None, 2]]
    assert run(LEADING, [ev(1, 105, key="b", tag="m"), ev(2, 106)]) == [[None, 2]]


def test_results_in_order_of_the_last_positive_event():
    # a (last positive event at 108) is settled before b (at 104): a live stream
    # emits a first, but Elasticsearch returns b first.
    q = 'sequence by k with maxspan=10ms [t where tag == "n"] [t where tag == "x"] ![t where tag == "m"]'
    evs = [
        ev(1, 100, key="a"),
        ev(2, 102, key="b"),
        ev(3, 104, key="b", tag="x"),
        ev(4, 108, key="a", tag="x"),
        ev(5, 111, cat="other"),
        ev(6, 113, cat="other"),
    ]
    fed, closed = stream(q, evs)
    assert fed == [[], [], [], [], [[1, 4, None]], [[2, 3, None]]] and closed == []
    assert run(q, evs) == [[2, 3, None], [1, 4, None]]


def test_until_on_the_completing_event_keeps_the_sequence():
    q = 'sequence by k [t where tag == "n"] [t where tag == "x"] until [t where tag == "x"]'
    assert run(q, [ev(1, 1), ev(2, 2, tag="x")]) == [[1, 2]]
    q = 'sequence by k [t where tag == "n"] [t where tag == "x"] until [t where tag == "u"]'
    assert run(q, [ev(1, 1), ev(2, 2, tag="u"), ev(3, 3, tag="x")]) == []


# --- the spec data: streaming agrees with batch ------------------------------------------


def _spec_data(shared, name):
    base = shared / "conformance" / "elasticsearch-eql" / "data"
    text = (base / f"{name}.data").read_text()
    docs = json.loads("\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("//")))
    mapping = json.loads(
        (base / f"{name}.mapping").read_text().replace("[runtime_random_keyword_type]", "keyword")
    )
    return docs, Schema.from_mapping(mapping)


def _quote_bare_nulls(text):
    """Bare ``null`` in join_keys (not TOML 1.0) as "null", leaving query text alone."""
    out, in_query = [], False
    for ln in text.splitlines():
        if not in_query:
            ln = re.sub(r'(?<![\w"])null(?![\w"])', '"null"', ln)
        if ln.count("'''") % 2:
            in_query = not in_query
        out.append(ln)
    return "\n".join(out)


def test_stream_and_close_agree_with_run_on_spec_sequences(shared):
    import tomllib

    docs, schema = _spec_data(shared, "missing-events")
    text = (shared / "conformance" / "elasticsearch-eql" / "test_missing_events.toml").read_text()
    text = _quote_bare_nulls(text)
    checked = 0
    for spec in tomllib.loads(text)["queries"]:
        if not spec["query"].strip().startswith("sequence") or "|" in spec["query"]:
            continue
        opts = QueryOptions(tiebreaker_field="sequence")
        q = eql.compile(spec["query"], schema=schema, options=opts)
        batch = [
            (tuple(None if e is None else e["sequence"] for e in m.events), tuple(map(str, m.join_keys)))
            for m in q.run(docs)
        ]
        ordered = [d for _, d in sorted((q._sort_key(d, n), d) for n, d in enumerate(docs))]
        s = q.stream()
        live = [m for d in ordered for m in s.feed(d)] + s.close()
        got = [
            (tuple(None if e is None else e["sequence"] for e in m.events), tuple(map(str, m.join_keys)))
            for m in live
        ]
        assert sorted(got, key=repr) == sorted(batch, key=repr), spec["name"]
        checked += 1
    assert checked >= 20


def test_live_stream_forgets_what_maxspan_has_expired():
    from vigil.eql.sequence import PRUNE_EVERY

    q = eql.compile(
        'sequence by k with maxspan=10ms ![t where tag == "m"] [t where tag == "n"] [t where tag == "x"]'
    )
    s = q.stream()
    n = 3 * PRUNE_EVERY
    out = []
    for i in range(n):
        out += s.feed(ev(i, i, key=f"k{i}", tag="m"))
        out += s.feed(ev(i, i, key=f"k{i}", tag="n"))
    out += s.feed(ev(-1, n, key=f"k{n - 1}", tag="x"))
    matcher = s._seq
    assert sum(len(p) for p in matcher.pending.values()) < PRUNE_EVERY
    assert len(matcher.lead_seen) < PRUNE_EVERY
    # The leading "m" of the same key and millisecond does not count; the last key still completes.
    assert ids(out) == [[None, n - 1, -1]]
