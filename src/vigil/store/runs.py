"""Rule runs and per-rule scheduler state, in the same store file.

Every execution is a row (what window, how much searched, how many alerts, cap,
gap, error), and each rule keeps where its last window ended so a restart
continues from there instead of forgetting what was covered.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from vigil.store.alerts import INSERT_ALERT
from vigil.store.db import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    window_from_ms INTEGER NOT NULL,
    window_to_ms INTEGER NOT NULL,
    catch_up INTEGER NOT NULL DEFAULT 0,
    events_searched INTEGER NOT NULL DEFAULT 0,
    events_failed INTEGER NOT NULL DEFAULT 0,
    matches INTEGER NOT NULL DEFAULT 0,
    alerts_written INTEGER NOT NULL DEFAULT 0,
    capped INTEGER NOT NULL DEFAULT 0,
    gap_from_ms INTEGER,
    gap_to_ms INTEGER,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_rule ON runs(rule_id, seq);
CREATE TABLE IF NOT EXISTS rule_state (
    rule_id TEXT PRIMARY KEY,
    enabled INTEGER,
    last_started_ms INTEGER,
    covered_to_ms INTEGER
);
CREATE TABLE IF NOT EXISTS rule_memory (
    rule_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (rule_id, kind)
);
"""


@dataclass(slots=True)
class Run:
    rule_id: str
    started_ms: int
    duration_ms: int
    window_from_ms: int
    window_to_ms: int
    catch_up: bool = False
    events_searched: int = 0
    matches: int = 0
    events_failed: int = 0  # events set aside because evaluating them raised
    alerts_written: int = 0
    capped: bool = False
    alerts_suppressed: int = 0  # alerts folded into a suppressed one (alert_suppression)
    gap_from_ms: int | None = None
    gap_to_ms: int | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gap_ms"] = (self.gap_to_ms - self.gap_from_ms) if self.gap_from_ms is not None else 0
        return d


@dataclass(slots=True)
class RuleState:
    rule_id: str
    enabled: bool | None = None  # None: as the rule file says
    last_started_ms: int | None = None
    covered_to_ms: int | None = None


@dataclass(slots=True)
class Finished:
    """A run to record (:meth:`RunStore.finish_many`) with the state it leaves."""

    run: Run
    started_ms: int | None = None  # the schedule moves on (the run's last window)
    covered_to_ms: int | None = None
    memory: dict[str, Any] | None = None
    alerts: list[tuple] | None = None  # alert rows to store with it (alerts_written set from them)


_RUN_COLS = [f for f in Run.__slots__]  # type: ignore[attr-defined]


class RunStore:
    def __init__(self, path: str | Path) -> None:
        self._conn = connect(path)
        self._lock = threading.Lock()
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(runs)")}
        if "events_failed" not in columns:  # a store written before the column existed
            self._conn.execute("ALTER TABLE runs ADD COLUMN events_failed INTEGER NOT NULL DEFAULT 0")
        if "alerts_suppressed" not in columns:
            self._conn.execute("ALTER TABLE runs ADD COLUMN alerts_suppressed INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        self._conn.close()

    def finish(
        self,
        run: Run,
        *,
        started_ms: int | None = None,
        covered_to_ms: int | None = None,
        memory: dict[str, Any] | None = None,
    ) -> None:
        """Record a run and advance the rule's state, in one transaction. ``memory`` is what
        the rule carries to its next run (kind -> JSON value: a threshold rule's signal
        history, suppression groups), kept in the same transaction as the schedule."""
        self.finish_many([Finished(run, started_ms, covered_to_ms, memory)])

    def finish_many(self, records: list[Finished]) -> None:
        """Record many runs (each as :meth:`finish`) and store their alerts, all in one
        transaction: a crash before it ends repeats every one of them, and alert ids make
        the repeat write each alert once. A record's ``alerts`` (rows of
        :func:`vigil.store.alerts.alert_rows`) sets its run's ``alerts_written`` to those
        not stored before, by it or by an earlier record."""
        if not records:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                rows = [row for f in records if f.alerts for row in f.alerts]
                if rows:
                    known = self._known([row[0] for row in rows])
                    for f in records:
                        if f.alerts is not None:
                            new = 0
                            for row in f.alerts:
                                if row[0] not in known:
                                    known.add(row[0])
                                    new += 1
                            f.run.alerts_written = new
                    self._conn.executemany(INSERT_ALERT, rows)
                self._conn.executemany(
                    f"INSERT INTO runs ({', '.join(_RUN_COLS)}) VALUES ({', '.join('?' * len(_RUN_COLS))})",
                    [[getattr(f.run, c) for c in _RUN_COLS] for f in records],
                )
                self._conn.executemany(
                    "INSERT INTO rule_state (rule_id, last_started_ms, covered_to_ms) VALUES (?,?,?)"
                    " ON CONFLICT(rule_id) DO UPDATE SET"
                    " last_started_ms = COALESCE(excluded.last_started_ms, last_started_ms),"
                    " covered_to_ms = MAX(COALESCE(excluded.covered_to_ms, 0), COALESCE(covered_to_ms, 0))",
                    [
                        (f.run.rule_id, f.started_ms, f.covered_to_ms)
                        for f in records
                        if f.started_ms is not None or f.covered_to_ms is not None
                    ],
                )
                self._conn.executemany(
                    "INSERT OR REPLACE INTO rule_memory (rule_id, kind, body) VALUES (?,?,?)",
                    [
                        (f.run.rule_id, kind, orjson.dumps(value).decode())
                        for f in records
                        for kind, value in (f.memory or {}).items()
                    ],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _known(self, uuids: list[str]) -> set[str]:
        out: set[str] = set()
        for i in range(0, len(uuids), 500):
            chunk = uuids[i : i + 500]
            sql = f"SELECT uuid FROM alerts WHERE uuid IN ({','.join('?' * len(chunk))})"
            out.update(r[0] for r in self._conn.execute(sql, chunk))
        return out

    def runs(self, rule_id: str | None = None, limit: int | None = 100) -> list[dict]:
        sql = f"SELECT {', '.join(_RUN_COLS)} FROM runs"
        params: list = []
        if rule_id:
            sql += " WHERE rule_id = ?"
            params.append(rule_id)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        out = []
        for row in rows:
            run = Run(**dict(zip(_RUN_COLS, row, strict=True)))
            run.catch_up, run.capped = bool(run.catch_up), bool(run.capped)
            out.append(run.to_dict())
        return out

    def state(self, rule_id: str) -> RuleState:
        with self._lock:
            row = self._conn.execute(
                "SELECT enabled, last_started_ms, covered_to_ms FROM rule_state WHERE rule_id = ?", (rule_id,)
            ).fetchone()
        if row is None:
            return RuleState(rule_id)
        enabled = None if row[0] is None else bool(row[0])
        return RuleState(rule_id, enabled, row[1], row[2])

    def states(self) -> dict[str, RuleState]:
        """Every rule's state, read at once (a rule with none recorded is absent)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT rule_id, enabled, last_started_ms, covered_to_ms FROM rule_state"
            ).fetchall()
        return {r[0]: RuleState(r[0], None if r[1] is None else bool(r[1]), r[2], r[3]) for r in rows}

    def memories(self, kinds: tuple[str, ...]) -> dict[tuple[str, str], Any]:
        """What every rule's last recorded run left it under ``kinds``, by (rule, kind)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT rule_id, kind, body FROM rule_memory WHERE kind IN ({','.join('?' * len(kinds))})",
                kinds,
            ).fetchall()
        return {(r[0], r[1]): orjson.loads(r[2]) for r in rows}

    def memory(self, rule_id: str, kind: str) -> Any:
        """What the rule's last recorded run left it under ``kind`` (None: nothing yet)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT body FROM rule_memory WHERE rule_id = ? AND kind = ?", (rule_id, kind)
            ).fetchone()
        return orjson.loads(row[0]) if row else None

    def set_enabled(self, rule_id: str, enabled: bool) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO rule_state (rule_id, enabled) VALUES (?, ?)"
                " ON CONFLICT(rule_id) DO UPDATE SET enabled = excluded.enabled",
                (rule_id, int(enabled)),
            )

    def totals(self) -> dict:
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*), MAX(started_ms), SUM(capped), SUM(error IS NOT NULL),"
                " SUM(gap_from_ms IS NOT NULL), COALESCE(SUM(gap_to_ms - gap_from_ms), 0),"
                " COALESCE(SUM(events_failed), 0) FROM runs"
            ).fetchone()
        return {
            "runs": row[0],
            "last_run_ms": row[1],
            "capped_runs": row[2] or 0,
            "failed_runs": row[3] or 0,
            "gaps": row[4] or 0,
            "gap_ms": row[5] or 0,
            "events_failed": row[6] or 0,
        }
