"""Alerts kept in the store: each alert once, by its ``kibana.alert.uuid``.

Alert ids are deterministic (rule + matched events), so a rule that sees the
same events twice (overlapping windows, a re-scanned file) produces the same
uuid and ``INSERT OR IGNORE`` keeps the first copy: that is the whole de-dup.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from vigil.eql.dates import to_millis
from vigil.eql.fields import lookup
from vigil.errors import VigilError
from vigil.store.db import connect

__all__ = ["INSERT_ALERT", "STATUSES", "AlertStore", "alert_rows", "to_millis"]

STATUSES = ("open", "acknowledged", "closed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    uuid TEXT PRIMARY KEY,
    rule_id TEXT,
    rule_name TEXT,
    severity TEXT,
    risk_score REAL,
    host TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    ts_ms INTEGER,
    original_ms INTEGER,
    stored_ms INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts(ts_ms);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts(rule_id);
"""


def _first(doc: dict, *paths: str) -> Any:
    for path in paths:
        values = lookup(doc, path)
        if values:
            return values[0]
    return None


def _set_path(doc: dict, path: str, value: Any) -> None:
    """Set a dotted field where the document already keeps it (flat key or nested objects)."""
    if path in doc or "." not in path:
        doc[path] = value
        return
    parts = path.split(".")
    node = doc
    for i in range(len(parts) - 1):
        rest = ".".join(parts[i:])
        if rest in node:
            node[rest] = value
            return
        child = node.get(parts[i])
        if not isinstance(child, dict):
            # No nested object on the way: keep the dotted key, as Kibana alerts do.
            node[rest] = value
            return
        node = child
    node[parts[-1]] = value


INSERT_ALERT = (
    "INSERT OR IGNORE INTO alerts (uuid, rule_id, rule_name, severity, risk_score, host,"
    " status, ts_ms, original_ms, stored_ms, doc, instance_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)


def alert_rows(alerts: Any) -> list[tuple]:
    """The ``alerts`` rows of ``alerts`` for :data:`INSERT_ALERT` (the uuid first)."""
    rows = []
    now = int(datetime.now(UTC).timestamp() * 1000)
    for alert in alerts:
        uuid = _first(alert, "kibana.alert.uuid")
        if uuid is None:
            raise VigilError("alert has no kibana.alert.uuid")
        status = _first(alert, "kibana.alert.workflow_status") or "open"
        rows.append(
            (
                str(uuid),
                _first(alert, "kibana.alert.rule.rule_id", "kibana.alert.rule.parameters.rule_id"),
                _first(alert, "kibana.alert.rule.name"),
                _first(alert, "kibana.alert.severity", "kibana.alert.rule.parameters.severity"),
                _first(alert, "kibana.alert.risk_score", "kibana.alert.rule.parameters.risk_score"),
                _first(alert, "host.name", "host.hostname"),
                str(status),
                to_millis(_first(alert, "@timestamp")),
                to_millis(_first(alert, "kibana.alert.original_time")),
                now,
                orjson.dumps(alert, default=str).decode(),
                _first(alert, "kibana.alert.instance.id"),
            )
        )
    return rows


class AlertStore:
    """The ``alerts`` table of a store file. Safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._conn = connect(self.path)
            self._conn.executescript(_SCHEMA)
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(alerts)")}
            if "instance_id" not in columns:  # a store written before alert suppression
                self._conn.execute("ALTER TABLE alerts ADD COLUMN instance_id TEXT")
            self._conn.execute("CREATE INDEX IF NOT EXISTS alerts_instance ON alerts(instance_id, ts_ms)")
        except sqlite3.DatabaseError as exc:
            raise VigilError(f"not a Vigil store: {exc}", file=str(path)) from None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, alerts: list[dict] | Any) -> int:
        """Store alerts in one transaction; returns how many were new (a uuid is kept once)."""
        rows = alert_rows(alerts)
        if not rows:
            return 0
        with self._lock:
            before = self._conn.total_changes
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(INSERT_ALERT, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            return self._conn.total_changes - before

    def list(
        self,
        rule: str | None = None,
        severity: str | None = None,
        host: str | None = None,
        status: str | None = None,
        since: Any = None,
        until: Any = None,
        limit: int | None = None,
    ) -> list[dict]:
        """Alerts newest first. ``rule`` matches a rule id or name; ``since``/``until`` bound ``@timestamp``."""
        where, params = [], []
        if rule:
            where.append("(rule_id = ? OR rule_name = ?)")
            params += [rule, rule]
        if severity:
            where.append("lower(severity) = ?")
            params.append(severity.lower())
        if host:
            where.append("host = ?")
            params.append(host)
        if status:
            where.append("status = ?")
            params.append(status)
        for bound, op in ((since, ">="), (until, "<=")):
            if bound is not None:
                ms = to_millis(bound)
                if ms is None:
                    raise VigilError(f"not a time: {bound!r} (use ISO-8601, e.g. 2026-01-31T12:00:00Z)")
                where.append(f"ts_ms {op} ?")
                params.append(ms)
        sql = "SELECT doc FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts_ms DESC, uuid"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def get(self, uuid: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT doc FROM alerts WHERE uuid = ?", (uuid,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def set_status(self, uuid: str, status: str) -> dict:
        """Set ``kibana.alert.workflow_status``; returns the updated alert."""
        if status not in STATUSES:
            raise VigilError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT doc FROM alerts WHERE uuid = ?", (uuid,)).fetchone()
                if row is None:
                    raise VigilError(f"no alert with uuid {uuid!r}")
                doc = orjson.loads(row[0])
                _set_path(doc, "kibana.alert.workflow_status", status)
                _set_path(doc, "kibana.alert.workflow_status_updated_at", _iso_now())
                self._conn.execute(
                    "UPDATE alerts SET status = ?, doc = ? WHERE uuid = ?",
                    (status, orjson.dumps(doc, default=str).decode(), uuid),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return doc

    def known(self, uuids: list[str]) -> set[str]:
        """Which of ``uuids`` the store already holds."""
        out: set[str] = set()
        with self._lock:
            for i in range(0, len(uuids), 500):
                chunk = uuids[i : i + 500]
                sql = f"SELECT uuid FROM alerts WHERE uuid IN ({','.join('?' * len(chunk))})"
                out.update(r[0] for r in self._conn.execute(sql, chunk))
        return out

    def open_by_instance(self, instance_ids: list[str], since_ms: int) -> dict[str, dict]:
        """For each instance id, its latest alert not closed whose start (``@timestamp``, the
        run that wrote it) is at or after ``since_ms``: the alert a suppressed one updates."""
        out: dict[str, dict] = {}
        ids = sorted(set(instance_ids))
        with self._lock:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                sql = (
                    "SELECT instance_id, doc FROM alerts WHERE instance_id IN"
                    f" ({','.join('?' * len(chunk))}) AND ts_ms >= ? AND status != 'closed'"
                    " ORDER BY ts_ms DESC, rowid DESC"
                )
                for iid, body in self._conn.execute(sql, [*chunk, since_ms]):
                    if iid not in out:
                        out[iid] = orjson.loads(body)
        return out

    def replace(self, docs: list[dict]) -> None:
        """Write back alerts already stored (a suppressed alert's counts and end), one transaction."""
        rows = [(orjson.dumps(d, default=str).decode(), str(_first(d, "kibana.alert.uuid"))) for d in docs]
        if not rows:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("UPDATE alerts SET doc = ? WHERE uuid = ?", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def after(self, position: int, limit: int = 50_000) -> tuple[int, list[dict]]:
        """Alerts stored after ``position`` (storage order, at most ``limit``) and the last
        position read."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT rowid, doc FROM alerts WHERE rowid > ? ORDER BY rowid LIMIT ?", (position, limit)
            ).fetchall()
        if not rows:
            return position, []
        return rows[-1][0], [orjson.loads(r[1]) for r in rows]

    def between(self, start_ms: int, end_ms: int) -> list[dict]:
        """Alerts whose ``@timestamp`` falls in ``[start_ms, end_ms]``, oldest first: the
        ``.alerts-security.*`` documents rules over alerts search."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT doc FROM alerts WHERE ts_ms BETWEEN ? AND ? ORDER BY ts_ms, rowid", (start_ms, end_ms)
            ).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def count(self, **filters: Any) -> int:
        if filters:
            return len(self.list(**filters))
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
