"""What the pages read from the store: alerts filtered, sorted, paged, counted.

A connection of its own on the store file (SQLite's write-ahead log lets it read
while the scheduler writes). Filters on the alert table's columns (time, severity,
rule, host, status) are SQL; a KQL search runs :mod:`vigil.kql` over each document
those filters leave, so it means what it means in a rule.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vigil.eql.fields import lookup
from vigil.store.db import connect

SEVERITIES = ("critical", "high", "medium", "low")
_SEVERITY_RANK = "CASE lower(severity) WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END"
SORTS = {
    "time": "ts_ms",
    "rule": "rule_name",
    "severity": _SEVERITY_RANK,
    "risk": "risk_score",
    "host": "host",
    "status": "status",
}
BUCKETS = 48


@dataclass
class Filters:
    since_ms: int | None = None
    until_ms: int | None = None
    severity: str | None = None
    rule: str | None = None
    host: str | None = None
    status: str | None = None
    kql: Any = None  # a compiled KQL query, or None
    kql_text: str = ""  # its text (what a cached search is known by)

    def where(self) -> tuple[str, list]:
        clauses, params = [], []
        if self.since_ms is not None:
            clauses.append("ts_ms >= ?")
            params.append(self.since_ms)
        if self.until_ms is not None:
            clauses.append("ts_ms <= ?")
            params.append(self.until_ms)
        if self.severity:
            clauses.append("lower(severity) = ?")
            params.append(self.severity.lower())
        if self.rule:
            clauses.append("(rule_id = ? OR rule_name = ?)")
            params += [self.rule, self.rule]
        if self.host:
            clauses.append("host = ?")
            params.append(self.host)
        if self.status:
            clauses.append("status = ?")
            params.append(self.status)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


@dataclass
class Row:
    uuid: str
    rule_id: str | None
    rule_name: str | None
    severity: str | None
    risk: float | None
    host: str | None
    status: str
    ts_ms: int | None
    doc: dict | None = None

    def field(self, *paths: str) -> Any:
        for path in paths:
            values = lookup(self.doc or {}, path)
            if values:
                return values[0]
        return None


@dataclass
class Result:
    rows: list[Row]
    total: int
    by_severity: Counter
    by_rule: list[tuple[str, int]]
    histogram: list[tuple[int, int]]  # (bucket start ms, count)
    bucket_ms: int
    groups: list[dict] = field(default_factory=list)
    searched: int | None = None  # a KQL search that stopped after this many documents


_COLS = "uuid, rule_id, rule_name, severity, risk_score, host, status, ts_ms"
# A Kibana-shaped alert is some 20 KB (the rule's parameters, its guide among them), so a
# scan of the table reads every document. The pages' counts, histogram, groups and sort
# read this covering index instead, and fetch the documents of one page only. The two
# expression indexes find the alerts of a process (process.entity_id) and of a sequence
# (kibana.alert.group.id), dotted or nested, without reading the others.
_ENTITY = """COALESCE(json_extract(doc, '$.process.entity_id'), json_extract(doc, '$."process.entity_id"'))"""
_GROUP = """COALESCE(json_extract(doc, '$."kibana.alert.group.id"'), json_extract(doc, '$.kibana.alert.group.id'))"""
_INDEXES = f"""
CREATE INDEX IF NOT EXISTS alerts_triage ON alerts(status, ts_ms, severity, rule_id, rule_name, host, risk_score, uuid);
CREATE INDEX IF NOT EXISTS alerts_host ON alerts(host, ts_ms);
CREATE INDEX IF NOT EXISTS alerts_entity ON alerts({_ENTITY}) WHERE {_ENTITY} IS NOT NULL;
CREATE INDEX IF NOT EXISTS alerts_group ON alerts({_GROUP}) WHERE {_GROUP} IS NOT NULL;
"""
# A KQL search reads documents; past this many (newest first) it stops and says so.
KQL_MAX_READ = 10_000


class AlertQueries:
    def __init__(self, path: str | Path) -> None:
        self._conn = connect(path)
        self._lock = threading.Lock()
        self._conn.executescript(_INDEXES)
        self._cache: dict[tuple, tuple[int, Any]] = {}

    def close(self) -> None:
        self._conn.close()

    def _all(self, sql: str, params: list | tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def search(
        self,
        filters: Filters,
        *,
        sort: str = "time",
        descending: bool = True,
        offset: int = 0,
        limit: int = 50,
        group: str | None = None,
    ) -> Result:
        where, params = filters.where()
        direction = "DESC" if descending else "ASC"
        order = f" ORDER BY {SORTS.get(sort, 'ts_ms')} {direction}, ts_ms DESC, uuid"
        if filters.kql is not None:
            return self._search_kql(filters, where + order, params, offset, limit, group)
        rows = self._fetch(
            [
                u
                for (u,) in self._all(
                    f"SELECT uuid FROM alerts{where}{order} LIMIT ? OFFSET ?", [*params, limit, offset]
                )
            ]
        )
        total, by_sev, by_rule, lo, bucket, hist = self._aggregates(where, params)
        result = Result(rows, total, by_sev, by_rule, hist, bucket)
        if group in ("rule", "host"):
            result.groups = self._cached(
                ("group", group, where, *params), lambda: self._groups(group, where, params)
            )
        return result

    def _cached(self, key: tuple, compute: Any) -> Any:
        """``compute()``, kept until another connection (the scheduler, a status change)
        commits to the store: a page reloaded or paged through costs one read."""
        version = self._all("PRAGMA data_version")[0][0]
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        value = compute()
        with self._lock:
            if len(self._cache) >= 64:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (version, value)
        return value

    def _aggregates(self, where: str, params: list) -> tuple:
        """Total, counts by severity and by rule, and the histogram, in one pass of the index."""

        def compute() -> tuple:
            lo, hi = self._all(
                f"SELECT (SELECT MIN(ts_ms) FROM alerts{where}), (SELECT MAX(ts_ms) FROM alerts{where})",
                params * 2,
            )[0]
            bucket = _bucket_ms(lo, hi)
            total = 0
            by_sev: Counter = Counter()
            by_rule: Counter = Counter()
            buckets: Counter = Counter()
            for sev, rule, b, n in self._all(
                f"SELECT severity, rule_name, (ts_ms - ?) / ?, COUNT(*) FROM alerts{where} GROUP BY 1, 2, 3",
                [lo or 0, bucket, *params],
            ):
                total += n
                by_sev[(sev or "").lower()] += n
                by_rule[rule or ""] += n
                if b is not None and lo is not None:
                    buckets[b] += n
            top = sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
            return total, by_sev, top, lo, bucket, _histogram(lo, bucket, sorted(buckets.items()))

        return self._cached(("aggregates", where, *params), compute)

    def _groups(self, group: str, where: str, params: list) -> list[dict]:
        column = "rule_name" if group == "rule" else "host"
        return [
            {"key": key, "count": n, "high": high, "last_ms": last}
            for key, n, high, last in self._all(
                f"SELECT {column}, COUNT(*), MAX({_SEVERITY_RANK}), MAX(ts_ms) FROM alerts{where}"
                " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 200",
                params,
            )
        ]

    def _search_kql(
        self, filters: Filters, tail: str, params: list, offset: int, limit: int, group: str | None
    ) -> Result:
        key = ("kql", filters.kql_text, tail, group, *params)
        matched, result = self._cached(key, lambda: self._kql_matches(filters, tail, params, group))
        rows = self._fetch(matched[offset : offset + limit])
        return Result(
            rows,
            result.total,
            result.by_severity,
            result.by_rule,
            result.histogram,
            result.bucket_ms,
            result.groups,
            result.searched,
        )

    def _kql_matches(self, filters: Filters, tail: str, params: list, group: str | None) -> tuple:
        """The uuids a KQL search matches, in the page's order, and its counts."""
        matched: list[str] = []
        by_sev: Counter = Counter()
        by_rule: Counter = Counter()
        times: list[int] = []
        groups: dict[str, list] = {}
        uuids = [
            u for (u,) in self._all(f"SELECT uuid FROM alerts{tail} LIMIT ?", [*params, KQL_MAX_READ + 1])
        ]
        partial = len(uuids) > KQL_MAX_READ
        for row in self._chunks(uuids[:KQL_MAX_READ]):
            if not filters.kql.matches(row.doc):
                continue
            matched.append(row.uuid)
            by_sev[(row.severity or "").lower()] += 1
            by_rule[row.rule_name or ""] += 1
            if row.ts_ms is not None:
                times.append(row.ts_ms)
            if group in ("rule", "host"):
                g = groups.setdefault((row.rule_name if group == "rule" else row.host) or "", [0, 0, None])
                g[0] += 1
                g[1] = max(g[1], _rank(row.severity))
                g[2] = max(g[2] or 0, row.ts_ms or 0)
        lo, hi = (min(times), max(times)) if times else (None, None)
        bucket = _bucket_ms(lo, hi)
        counts = Counter((ms - lo) // bucket for ms in times) if times else Counter()
        result = Result(
            [],
            len(matched),
            by_sev,
            sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))[:10],
            _histogram(lo, bucket, sorted(counts.items())),
            bucket,
        )
        result.groups = [
            {"key": k, "count": v[0], "high": v[1], "last_ms": v[2]}
            for k, v in sorted(groups.items(), key=lambda kv: (-kv[1][0], kv[0]))[:200]
        ]
        result.searched = KQL_MAX_READ if partial else None
        return matched, result

    def _fetch(self, uuids: list[str]) -> list[Row]:
        """The rows of these alerts, documents included, in the order given."""
        if not uuids:
            return []
        marks = ",".join("?" * len(uuids))
        found = {
            r[0]: self._row(r)
            for r in self._all(f"SELECT {_COLS}, doc FROM alerts WHERE uuid IN ({marks})", uuids)
        }
        return [found[u] for u in uuids if u in found]

    def _chunks(self, uuids: list[str], size: int = 500) -> Iterator[Row]:
        for i in range(0, len(uuids), size):
            yield from self._fetch(uuids[i : i + size])

    @staticmethod
    def _row(r: tuple) -> Row:
        return Row(*r[:8], doc=orjson.loads(r[8]) if len(r) > 8 else None)

    def hosts(self, limit: int = 500) -> list[str]:
        return self._cached(("hosts", limit), lambda: self._hosts(limit))

    def rules(self, limit: int = 2000) -> list[tuple[str, str]]:
        return self._cached(("rules", limit), lambda: self._rules(limit))

    def _hosts(self, limit: int) -> list[str]:
        return [
            h
            for (h,) in self._all(
                "SELECT DISTINCT host FROM alerts WHERE host IS NOT NULL ORDER BY 1 LIMIT ?", [limit]
            )
        ]

    def _rules(self, limit: int) -> list[tuple[str, str]]:
        return self._all(
            "SELECT rule_id, MAX(rule_name) FROM alerts INDEXED BY alerts_triage WHERE rule_id IS NOT NULL"
            " GROUP BY 1 ORDER BY 2 LIMIT ?",
            [limit],
        )

    def by_host(self, host: str, exclude: str, limit: int = 20) -> list[Row]:
        rows = self._all(
            "SELECT uuid FROM alerts WHERE host = ? AND uuid != ? ORDER BY ts_ms DESC LIMIT ?",
            [host, exclude, limit],
        )
        return self._fetch([u for (u,) in rows])

    def same_process(self, entity_id: str, exclude: str, limit: int = 20) -> list[Row]:
        """Alerts of the same ``process.entity_id``, newest first."""
        return self._indexed(_ENTITY, entity_id, exclude, limit)

    def same_group(self, group_id: str, limit: int = 1000) -> list[Row]:
        """The alerts of one sequence (``kibana.alert.group.id``)."""
        return self._indexed(_GROUP, group_id, "", limit)

    def _indexed(self, expression: str, value: str, exclude: str, limit: int) -> list[Row]:
        rows = self._all(
            f"SELECT uuid FROM alerts WHERE {expression} = ? AND uuid != ? ORDER BY ts_ms DESC LIMIT ?",
            [value, exclude, limit],
        )
        return self._fetch([u for (u,) in rows])

    def last_runs(self) -> dict[str, dict]:
        """Each rule's latest run."""
        cols = (
            "rule_id, started_ms, duration_ms, alerts_written, capped, gap_from_ms, gap_to_ms, error, matches"
        )
        try:
            rows = self._all(
                f"SELECT {cols} FROM runs WHERE seq IN (SELECT MAX(seq) FROM runs GROUP BY rule_id)"
            )
        except Exception:  # no runs table yet
            return {}
        names = [c.strip() for c in cols.split(",")]
        return {r[0]: dict(zip(names, r, strict=True)) for r in rows}

    def rule_alert_counts(self) -> dict[str, int]:
        return dict(self._all("SELECT rule_id, COUNT(*) FROM alerts GROUP BY 1"))

    def events_ingested_since(self, ms: int) -> int:
        try:
            return self._all("SELECT COUNT(*) FROM events WHERE ingested_ms >= ?", [ms])[0][0]
        except Exception:
            return 0

    def sensor_drops(self) -> tuple[int, int]:
        """Sensor-health records stored (kernel queue overflows) and the events they say were lost."""
        try:
            row = self._all(
                "SELECT COUNT(*), COALESCE(SUM(json_extract(doc, '$.vigil.sensor.lost')), 0) FROM events"
                " WHERE idx = 'logs-vigil.sensor.health-default'"
            )[0]
        except Exception:
            return 0, 0
        return int(row[0]), int(row[1] or 0)


def _rank(severity: str | None) -> int:
    s = (severity or "").lower()
    return SEVERITIES[::-1].index(s) + 1 if s in SEVERITIES else 0


def _bucket_ms(lo: int | None, hi: int | None) -> int:
    if lo is None or hi is None or hi <= lo:
        return 60_000
    raw = (hi - lo) // (BUCKETS - 1) + 1
    for step in (1_000, 60_000, 300_000, 900_000, 3_600_000, 10_800_000, 86_400_000, 604_800_000):
        if raw <= step:
            return step
    return raw


def _histogram(lo: int | None, bucket: int, counts: list) -> list[tuple[int, int]]:
    if lo is None:
        return []
    found = {int(b): int(n) for b, n in counts}
    last = max(found, default=0)
    return [(lo + b * bucket, found.get(b, 0)) for b in range(last + 1)]
