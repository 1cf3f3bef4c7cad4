"""Events shipped to ``vigil serve``: kept in arrival order, searched by time window.

Each row keeps the index, the ``_id``, when it arrived (``event.ingested``, ms)
and its ``@timestamp`` (ms), so a rule window can be cut on either, as Kibana
cuts it on ``timestamp_override`` with ``@timestamp`` as the fallback.
"""

from __future__ import annotations

import gc
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from vigil.eql.dates import to_millis
from vigil.eql.fields import lookup
from vigil.store.db import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    idx TEXT NOT NULL,
    id TEXT NOT NULL,
    ingested_ms INTEGER NOT NULL,
    ts_ms INTEGER,
    doc TEXT NOT NULL,
    UNIQUE(idx, id)
);
CREATE INDEX IF NOT EXISTS events_ingested ON events(ingested_ms);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts_ms);
"""

INGESTED = "event.ingested"


@dataclass(slots=True)
class Write:
    """One document to store. ``op`` is ``create`` (fails if the id exists) or ``index`` (replaces)."""

    index: str
    doc: dict
    id: str | None = None
    op: str = "index"


@dataclass(slots=True)
class WriteResult:
    index: str
    id: str
    status: int  # 201 created, 200 replaced, 409 conflict
    result: str | None = None
    error: dict | None = None


def new_id() -> str:
    """A 20-character url-safe id, the shape Elasticsearch gives auto-generated ids."""
    return secrets.token_urlsafe(15)


def iso_millis(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp_ingested(doc: dict, ms: int) -> None:
    """Set ``event.ingested`` as an ingest pipeline would, whatever shape ``event`` has."""
    if INGESTED in doc:
        doc[INGESTED] = iso_millis(ms)
        return
    event = doc.get("event")
    if not isinstance(event, dict):
        if event is not None:
            doc[INGESTED] = iso_millis(ms)
            return
        event = doc["event"] = {}
    event["ingested"] = iso_millis(ms)


class EventStore:
    """The ``events`` table. Every write is one transaction, committed before it returns."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)
        self._lock = threading.Lock()
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def write(self, writes: list[Write], ingested_ms: int) -> list[WriteResult]:
        """Stamp and store documents all at once; returns one result per write, in order."""
        results: list[WriteResult] = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for w in writes:
                    results.append(self._write_one(w, ingested_ms))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return results

    def _write_one(self, w: Write, ingested_ms: int) -> WriteResult:
        doc_id = w.id or new_id()
        exists = self._conn.execute(
            "SELECT 1 FROM events WHERE idx = ? AND id = ?", (w.index, doc_id)
        ).fetchone()
        if exists and w.op == "create":
            reason = f"[{doc_id}]: version conflict, document already exists"
            return WriteResult(
                w.index, doc_id, 409, error={"type": "version_conflict_engine_exception", "reason": reason}
            )
        stamp_ingested(w.doc, ingested_ms)
        ts = _timestamp_ms(w.doc)
        try:
            body = orjson.dumps(w.doc, default=str).decode()
        except (orjson.JSONEncodeError, TypeError, ValueError) as exc:
            # One document the store cannot keep fails alone; the transaction goes on.
            reason = f"cannot store the document: {str(exc)[:200]}"
            return WriteResult(
                w.index, doc_id, 400, error={"type": "document_parsing_exception", "reason": reason}
            )
        if exists:
            self._conn.execute(
                "UPDATE events SET ingested_ms = ?, ts_ms = ?, doc = ? WHERE idx = ? AND id = ?",
                (ingested_ms, ts, body, w.index, doc_id),
            )
            return WriteResult(w.index, doc_id, 200, "updated")
        self._conn.execute(
            "INSERT INTO events (idx, id, ingested_ms, ts_ms, doc) VALUES (?,?,?,?,?)",
            (w.index, doc_id, ingested_ms, ts, body),
        )
        return WriteResult(w.index, doc_id, 201, "created")

    def search(
        self,
        start_ms: int,
        end_ms: int,
        *,
        timestamp_field: str | None = INGESTED,
        index_filter: Callable[[str], bool] | None = None,
        order_by: str | None = None,
    ) -> Iterator[tuple[str, str, dict]]:
        """``(index, id, doc)`` of events whose time falls in ``[start_ms, end_ms]``.

        The time is ``timestamp_field`` when the event has it, else ``@timestamp``
        (Kibana's fallback for ``timestamp_override``). Events come oldest first
        on that time, or on ``order_by`` when given (the EQL ``timestamp_field``
        a rule's search sorts on); events without it come last, ties in arrival order.
        """
        by_ts = order_by == "@timestamp"
        order_sql = "ts_ms IS NULL, ts_ms, seq" if by_ts else None
        if timestamp_field in (None, "@timestamp"):
            sql = f"SELECT idx, id, doc FROM events WHERE ts_ms BETWEEN ? AND ? ORDER BY {order_sql or 'ts_ms, seq'}"
            rows = self._fetch(sql, (start_ms, end_ms))
            post = None
        elif timestamp_field == INGESTED:
            # Every stored event carries event.ingested: the column is the field.
            sql = (
                "SELECT idx, id, doc FROM events WHERE ingested_ms BETWEEN ? AND ?"
                f" ORDER BY {order_sql or 'ingested_ms, seq'}"
            )
            rows = self._fetch(sql, (start_ms, end_ms))
            post = None
        else:
            rows = self._fetch(f"SELECT idx, id, doc FROM events ORDER BY {order_sql or 'seq'}", ())
            post = timestamp_field
        out: list[tuple[str, str, dict]] = []
        for idx, doc_id, body in rows:
            if index_filter is not None and not index_filter(idx):
                continue
            doc = orjson.loads(body)
            if post is not None:
                values = lookup(doc, post) or lookup(doc, "@timestamp")
                ms = to_millis(values[0]) if values else None
                if ms is None or not start_ms <= ms <= end_ms:
                    continue
            out.append((idx, doc_id, doc))
        if order_by is not None and not by_ts:
            out = _sorted_on(out, order_by)
        elif post is not None and not by_ts:
            out = _sorted_on(out, post, fallback="@timestamp")
        yield from out

    def after(self, seq: int, limit: int = 50_000) -> tuple[int, list[tuple[str, str, dict]]]:
        """Events stored after position ``seq`` (arrival order, at most ``limit``): the last
        position read and ``(index, id, doc)`` of each. A document replaced in place keeps
        its position."""
        last, rows = self.after_rows(seq, limit)
        return last, [(idx, doc_id, orjson.loads(body)) for _, idx, doc_id, body in rows]

    def after_rows(self, seq: int, limit: int = 50_000) -> tuple[int, list[tuple[int, str, str, str]]]:
        """:meth:`after` undecoded: ``(position, index, id, JSON text)`` of each event, so a
        reader holding some of them decoded already decodes only the others."""
        rows = self._fetch(
            "SELECT seq, idx, id, doc FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        if not rows:
            return seq, []
        return rows[-1][0], rows

    def span(self, start_ms: int, end_ms: int, make: Callable[[str, str, dict], Any] | None = None) -> Span:
        """Every event whose arrival time or ``@timestamp`` falls in ``[start_ms, end_ms]``,
        read and decoded once, from which the windows inside that span are cut as
        :meth:`search` cuts them (:meth:`Span.window`). ``make(index, id, doc)`` builds
        the item a window holds for each event (default: the tuple :meth:`search` gives)."""
        rows = self._fetch(
            "SELECT seq, idx, id, ingested_ms, ts_ms, doc FROM events"
            " WHERE ingested_ms BETWEEN ? AND ? OR ts_ms BETWEEN ? AND ?",
            (start_ms, end_ms, start_ms, end_ms),
        )
        return Span(start_ms, end_ms, rows, make)

    def _fetch(self, sql: str, params: tuple) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def purge(self, before_ms: int) -> int:
        """Drop events ingested before ``before_ms`` (retention); returns how many."""
        with self._lock:
            cur = self._conn.execute("DELETE FROM events WHERE ingested_ms < ?", (before_ms,))
            return cur.rowcount

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def counts_by_index(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT idx, COUNT(*) FROM events GROUP BY idx ORDER BY idx").fetchall()
        return dict(rows)

    def last_ingested_ms(self) -> int | None:
        with self._lock:
            return self._conn.execute("SELECT MAX(ingested_ms) FROM events").fetchone()[0]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic collector off while a span's millions of long-lived objects are made
    and cut into windows: run every few hundred allocations, it would walk the growing heap
    again and again (3x the time of decoding 100,000 events). Reference counting still
    frees what is dropped."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class Span:
    """The events of a time span, decoded once (:meth:`EventStore.span`): the windows
    inside it come out with :meth:`EventStore.search`'s events, in its order, without
    reading the store again."""

    def __init__(
        self,
        start_ms: int,
        end_ms: int,
        rows: list[tuple[int, str, str, int, int | None, str]],
        make: Callable[[str, str, dict], Any] | None = None,
    ) -> None:
        self.start_ms, self.end_ms = start_ms, end_ms
        make = make or (lambda idx, doc_id, doc: (idx, doc_id, doc))
        with _collector_paused():
            # (seq, ingested_ms, ts_ms, item, doc) in arrival order
            self._rows = [
                (seq, ingested, ts, make(idx, doc_id, doc), doc)
                for seq, idx, doc_id, ingested, ts, body in sorted(rows)
                for doc in (orjson.loads(body),)
            ]
        self._by_seq = {row[0]: row[3] for row in self._rows}
        self._on_ts: list | None = None
        self._on_ingested: list | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def covers(self, start_ms: int, end_ms: int, timestamp_field: str | None) -> bool:
        """Whether the window can be cut from this span (its time field is a stored column)."""
        return (
            timestamp_field in (None, "@timestamp", INGESTED)
            and self.start_ms <= start_ms
            and end_ms <= self.end_ms
        )

    def item(self, seq: int) -> Any:
        """The item of the event at position ``seq`` (None: not in the span)."""
        return self._by_seq.get(seq)

    def window(
        self,
        start_ms: int,
        end_ms: int,
        *,
        timestamp_field: str | None = INGESTED,
        order_by: str | None = None,
    ) -> list[Any]:
        """The items of :meth:`EventStore.search` with the same arguments (the window must
        be one the span :meth:`covers`)."""
        if not self.covers(start_ms, end_ms, timestamp_field):
            raise ValueError("the window is not inside the span")
        with _collector_paused():
            return self._window(start_ms, end_ms, timestamp_field, order_by)

    def _window(
        self, start_ms: int, end_ms: int, timestamp_field: str | None, order_by: str | None
    ) -> list[Any]:
        by_ts = order_by == "@timestamp"
        if timestamp_field in (None, "@timestamp") or by_ts:
            if self._on_ts is None:
                # ORDER BY ts_ms IS NULL, ts_ms, seq
                self._on_ts = sorted(self._rows, key=lambda r: (r[2] is None, r[2] or 0, r[0]))
            ordered = self._on_ts
        else:
            if self._on_ingested is None:
                self._on_ingested = sorted(self._rows, key=lambda r: (r[1], r[0]))
            ordered = self._on_ingested
        col = 1 if timestamp_field == INGESTED else 2
        kept = [r for r in ordered if r[col] is not None and start_ms <= r[col] <= end_ms]
        if order_by is not None and not by_ts:
            kept = _sorted_on(kept, order_by, doc_at=4)
        return [r[3] for r in kept]


def _sorted_on(rows: list, field: str, fallback: str | None = None, doc_at: int = 2) -> list:
    def key(row: tuple) -> tuple[bool, int]:
        values = lookup(row[doc_at], field) or (lookup(row[doc_at], fallback) if fallback else [])
        ms = to_millis(values[0]) if values else None
        return (ms is None, ms or 0)

    return sorted(rows, key=key)  # stable: ties keep arrival order


def _timestamp_ms(doc: dict) -> int | None:
    values = lookup(doc, "@timestamp")
    return to_millis(values[0]) if values else None
