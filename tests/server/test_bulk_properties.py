"""Properties of the ``_bulk`` reader over hostile bodies: it never raises anything but a
request error, each item's outcome is its own, and what it accepts can be stored."""

from __future__ import annotations

import json
import unicodedata

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.server.bulk import BulkRequestError, bulk_response, parse_bulk, parse_ndjson
from vigil.server.names import MAX_INDEX_NAME_BYTES, InvalidIndexName, validate_index_name
from vigil.store.events import WriteResult

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
timestamps = st.one_of(
    st.sampled_from(
        [-62135596800001, 253402300800000, 1e30, 1e300, "1234567890123456789012345", "x", [], {}]
    ),
    scalars,
)
names = st.one_of(
    st.sampled_from(["logs-a", "Logs", "../../etc", "a\x00b", "_x", ".", "..", "a" * 300, "é" * 200]),
    st.text(max_size=40),
)


def nested(levels: int) -> dict:
    doc: dict = {}
    for _ in range(levels):
        doc = {"n": doc}
    return doc


documents = st.one_of(
    st.dictionaries(st.text(max_size=10), json_values, max_size=6),
    st.builds(
        lambda ts, rest: dict(rest, **{"@timestamp": ts}),
        timestamps,
        st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    ),
    st.integers(min_value=1, max_value=400).map(nested),
    json_values,
)
actions = st.tuples(
    st.sampled_from(["index", "create", "update", "delete"]),
    st.one_of(names, st.integers(min_value=-(2**63), max_value=2**63 - 1), st.none()),
    st.one_of(st.none(), st.text(max_size=20), st.integers(min_value=0, max_value=2**63 - 1)),
)


def body_of(entries) -> bytes:
    lines = []
    for (action, index, doc_id), doc in entries:
        meta = {k: v for k, v in (("_index", index), ("_id", doc_id)) if v is not None}
        lines.append(_dumps({action: meta}))
        if action != "delete":
            lines.append(_dumps(doc))
    return b"\n".join(lines) + b"\n"


def _dumps(value) -> bytes:
    return json.dumps(value).encode()  # the standard library's writer: deeper than orjson's 254


def outcome(item) -> tuple:
    return (item.action, item.index, item.status, item.error, item.write is not None)


@SETTINGS
@given(st.binary(max_size=2000))
def test_any_bytes_are_a_request_error_or_items(body):
    try:
        items = parse_bulk(body, None)
    except BulkRequestError as exc:
        assert exc.body()["status"] == 400 and exc.type
        return
    for item in items:
        assert (item.write is None) == (item.error is not None)
        if item.error:
            assert item.status == 400 and isinstance(item.error["type"], str)


@SETTINGS
@given(st.lists(st.tuples(actions, documents), min_size=1, max_size=6))
def test_each_item_fares_as_it_would_alone_and_what_is_kept_can_be_stored(entries):
    items = parse_bulk(body_of(entries), "logs-default")
    alone = [parse_bulk(body_of([entry]), "logs-default")[0] for entry in entries]
    assert [outcome(i) for i in items] == [outcome(i) for i in alone]
    results = []
    for item in items:
        if item.write is not None:
            orjson.dumps(item.write.doc)  # the store's writer accepts it
            validate_index_name(item.write.index)
            results.append(WriteResult(item.write.index, "id", 201, "created"))
    response = orjson.loads(orjson.dumps(bulk_response(items, results, 1)))
    assert response["errors"] == any(i.error for i in items)
    assert len(response["items"]) == len(entries)


@SETTINGS
@given(st.lists(st.one_of(documents.map(_dumps), st.binary(max_size=50)), max_size=300))
def test_ndjson_errors_are_counted_and_bounded(lines):
    body = b"\n".join(line.replace(b"\n", b" ") for line in lines)
    writes, errors, bad = parse_ndjson(body, "logs-a")
    assert len(errors) == min(bad, 100)
    assert (writes == []) or bad == 0
    assert all(len(e["reason"]) <= 503 for e in errors)


@SETTINGS
@given(names)
def test_accepted_index_names_obey_elasticsearch_rules(name):
    try:
        validate_index_name(name)
    except InvalidIndexName as exc:
        assert exc.error()["type"] == "invalid_index_name_exception"
        return
    assert name and name == name.lower() and name not in (".", "..")
    assert len(name.encode()) <= MAX_INDEX_NAME_BYTES and name[0] not in "_-+"
    assert not set(name) & set('\\/*?"<>| ,#:')
    assert all(unicodedata.category(c) != "Cc" for c in name)
