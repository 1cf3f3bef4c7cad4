"""The event store: stamping, windows on event.ingested or @timestamp, replace/create, retention."""

from __future__ import annotations

from vigil.store.events import EventStore, Write, iso_millis

T = 1_780_000_000_000


def test_stamps_event_ingested_whatever_the_shape(tmp_path):
    store = EventStore(tmp_path / "e.db")
    docs = [
        {"a": 1},
        {"event": {"action": "x"}},
        {"event.ingested": "old", "event.kind": "event"},
        {"event": "odd"},
    ]
    store.write([Write("logs", d) for d in docs], T)
    stamped = [doc for _, _, doc in store.search(T, T)]
    assert stamped[0]["event"]["ingested"] == iso_millis(T)
    assert stamped[1]["event"] == {"action": "x", "ingested": iso_millis(T)}
    assert stamped[2]["event.ingested"] == iso_millis(T)
    assert stamped[3]["event.ingested"] == iso_millis(T) and stamped[3]["event"] == "odd"


def test_window_on_ingested_or_timestamp_and_custom_override(tmp_path):
    store = EventStore(tmp_path / "e.db")
    store.write([Write("logs-a", {"@timestamp": iso_millis(T - 3_600_000), "n": 1})], T)  # late
    store.write([Write("logs-b", {"@timestamp": iso_millis(T), "n": 2, "seen": iso_millis(T - 10)})], T + 5)
    ns = lambda rows: [d["n"] for _, _, d in rows]  # noqa: E731
    assert ns(store.search(T, T + 5)) == [1, 2]
    assert ns(store.search(T, T + 5, timestamp_field="@timestamp")) == [2]
    assert ns(store.search(T - 3_600_000, T - 1, timestamp_field=None)) == [1]
    # A custom override: its value when present, @timestamp otherwise (Kibana's fallback).
    assert ns(store.search(T - 10, T - 10, timestamp_field="seen")) == [2]
    assert ns(store.search(T - 3_600_000, T - 3_600_000, timestamp_field="seen")) == [1]
    assert ns(store.search(T, T + 5, index_filter=lambda i: i == "logs-b")) == [2]


def test_create_conflicts_and_index_replaces(tmp_path):
    store = EventStore(tmp_path / "e.db")
    r = store.write([Write("l", {"v": 1}, "id1", "create"), Write("l", {"v": 2}, "id1", "create")], T)
    assert [x.status for x in r] == [201, 409]
    r = store.write([Write("l", {"v": 3}, "id1", "index"), Write("m", {"v": 4}, "id1", "create")], T + 1)
    assert [x.status for x in r] == [200, 201]
    assert store.count() == 2
    assert sorted(d["v"] for _, _, d in store.search(0, T + 1)) == [3, 4]
    assert store.counts_by_index() == {"l": 1, "m": 1}


def test_retention_drops_by_arrival_age(tmp_path):
    store = EventStore(tmp_path / "e.db")
    store.write([Write("l", {"n": 1})], T)
    store.write([Write("l", {"n": 2})], T + 1000)
    assert store.purge(T + 1000) == 1
    assert [d["n"] for _, _, d in store.search(0, T + 2000)] == [2]
    assert store.last_ingested_ms() == T + 1000


def test_a_span_cuts_every_window_inside_it_as_search_reads_it(tmp_path):
    import random

    store = EventStore(tmp_path / "e.db")
    rng = random.Random(7)
    for batch in range(6):
        ingested = T + batch * 60_000
        docs = []
        for n in range(40):
            doc = {"n": batch * 100 + n, "custom": {"time": iso_millis(T + rng.randrange(-600_000, 600_000))}}
            if rng.random() < 0.9:  # some events have no @timestamp
                doc["@timestamp"] = iso_millis(T + rng.choice([0, 1000, rng.randrange(-900_000, 900_000)]))
            docs.append(doc)
        store.write([Write(f"logs-{rng.choice('abc')}", d) for d in docs], ingested)
    span = store.span(T - 1_000_000, T + 1_000_000)
    for start, end in ((T - 1_000_000, T + 1_000_000), (T - 300_000, T + 120_000), (T + 60_000, T + 60_000)):
        for field in ("event.ingested", "@timestamp", None):
            for order in (None, "@timestamp", "custom.time", "event.ingested"):
                want = [d["n"] for _, _, d in store.search(start, end, timestamp_field=field, order_by=order)]
                got = [d["n"] for _, _, d in span.window(start, end, timestamp_field=field, order_by=order)]
                assert got == want, (start, end, field, order)
