from vigil import eql
from vigil.eql.query import QueryOptions


def ev(cat, ts, host="a", **extra):
    return {"event": {"category": cat}, "@timestamp": ts, "host": {"id": host}, **extra}


def test_event_query_sorted_by_timestamp_and_pipes():
    evs = [ev("file", 3), ev("file", 1), ev("process", 2), ev("file", 2)]
    q = eql.compile("file where true")
    assert [m.events[0]["@timestamp"] for m in q.run(evs)] == [1, 2, 3]
    q = eql.compile("file where true | tail 2")
    assert [m.events[0]["@timestamp"] for m in q.run(evs)] == [2, 3]
    q = eql.compile("file where true", options=QueryOptions(size=1))
    assert [m.events[0]["@timestamp"] for m in q.run(evs)] == [1]


def test_run_with_doc_extractor():
    items = [("x", ev("file", 5)), ("y", ev("process", 1))]
    q = eql.compile("file where true")
    assert [m.events[0][0] for m in q.run(items, doc=lambda t: t[1])] == ["x"]


def test_sequence_by_key_and_maxspan():
    evs = [ev("process", 1000, "a"), ev("process", 1000, "b"), ev("file", 2000, "b"), ev("file", 9000, "a")]
    q = eql.compile("sequence by host.id with maxspan=5s [process where true] [file where true]")
    ms = list(q.run(evs))
    assert [m.join_keys for m in ms] == [["b"]]


def test_sequence_until_drops_pending():
    evs = [ev("process", 1), ev("network", 2), ev("file", 3)]
    q = eql.compile("sequence by host.id [process where true] [file where true] until [network where true]")
    assert list(q.run(evs)) == []


def test_stream_feeds_completed_sequences():
    q = eql.compile("sequence by host.id [process where true] [file where true]")
    s = q.stream()
    assert s.feed(ev("process", 1)) == []
    out = s.feed(ev("file", 2))
    assert len(out) == 1 and out[0].kind == "sequence"


def test_sample_by_key():
    evs = [ev("file", 1, "a"), ev("process", 2, "a"), ev("process", 3, "b")]
    q = eql.compile("sample by host.id [process where true] [file where true]")
    ms = list(q.run(evs))
    assert [m.join_keys for m in ms] == [["a"]]
