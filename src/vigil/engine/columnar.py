"""Columnar scans: event rules run as SQL inside DuckDB over a Parquet file.

:func:`scan_parquet` gives the alerts an :class:`~vigil.engine.Engine` raises over
:func:`vigil.events.parquet.read_parquet`'s events, faster: each event rule whose
query :mod:`vigil.eql.sql` translates runs as a SQL filter inside DuckDB, so only
matching rows reach Python, where the rule's compiled matcher confirms each of them
before the engine builds the alert (exceptions, ids, ``max_signals`` all as usual).
Sequences, samples and queries without a SQL form read every row, as the plain
path does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.eql import ast
from vigil.eql import sql as eqlsql
from vigil.errors import VigilError
from vigil.events.parquet import _DS_KEYS, BATCH, ParquetFile, _source, read_parquet
from vigil.events.readers import Reader, ReadStats


@dataclass
class ColumnarReport:
    """What the columnar scan did: rules filtered in DuckDB, rules run over every row
    (and why), rows DuckDB matched that the Python matcher did not confirm (always 0
    unless the SQL and the compiler disagree)."""

    sql_rules: list[str] = field(default_factory=list)
    plain_rules: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    sql_matches: int = 0
    unconfirmed: int = 0
    plain_reason: str | None = None


def rule_sql(rule, columns: dict[str, eqlsql.SqlType], json_fields: set[str] = frozenset()) -> str:
    """The SQL filter of a runnable event rule; raises :class:`vigil.eql.sql.Unsupported`,
    also when the rule reads a JSON-typed column (``json_fields``), whose text SQL
    would test in place of its values."""
    query = rule.compiled()
    if query.kind != "event":
        raise eqlsql.Unsupported(f"{query.kind} query")
    if json_fields:
        read = {query.options.event_category_field}
        read.update(n.name for n in ast.walk(query.statement) if isinstance(n, ast.Field))
        for name in read:
            for j in json_fields:
                if name == j or name.startswith(j + ".") or j.startswith(name + "."):
                    raise eqlsql.Unsupported(f"{name} is read from a JSON column ({j})")
    return eqlsql.event_sql(query.statement, columns, category_field=query.options.event_category_field)


def _index_groups(pf: ParquetFile, index: str | None) -> list[tuple[str | None, str, int]] | None:
    """The distinct event indices of the file: (index, SQL condition selecting its
    rows, row count). None when the index cannot be settled column by column."""
    gen = eqlsql.Generator({})
    if index is not None:
        (count,) = pf.con.execute(f"SELECT count(*) FROM {_source(pf.path)}").fetchone()
        return [(index, "TRUE", count)]
    exprs: list[str] = []
    keys: list[tuple[str, str]] = []  # (flat or nested, key)
    ds = pf.columns.get("data_stream")
    for key in _DS_KEYS:
        flat = pf.columns.get(f"data_stream.{key}")
        if flat is not None:
            if flat.kind != "string":
                return None
            exprs.append(gen.quote(f"data_stream.{key}"))
            keys.append(("flat", key))
        if ds is not None and ds.kind == "struct" and key in ds.fields:
            if ds.fields[key].kind != "string":
                return None
            exprs.append(f"{gen.quote('data_stream')}.{gen.quote(key)}")
            keys.append(("nested", key))
    if ds is not None and ds.kind != "struct":
        return None
    if not exprs:
        (count,) = pf.con.execute(f"SELECT count(*) FROM {_source(pf.path)}").fetchone()
        return [(None, "TRUE", count)]
    cols = ", ".join(exprs)
    found = pf.con.execute(f"SELECT {cols}, count(*) FROM {_source(pf.path)} GROUP BY ALL").fetchall()
    from vigil.events.readers import _event_index

    out = []
    for *values, count in found:
        doc: dict = {}
        for (where, key), value in zip(keys, values, strict=True):
            if value is None:
                continue
            if where == "flat":
                doc[f"data_stream.{key}"] = value
            else:
                doc.setdefault("data_stream", {})[key] = value
        cond = " AND ".join(
            f"{e} IS NOT DISTINCT FROM {'NULL' if v is None else gen.string(v)}"
            for e, v in zip(exprs, values, strict=True)
        )
        out.append((_event_index(doc), cond, count))
    return out


def scan_parquet(
    engine,
    path: str | Path,
    *,
    index: str | None = None,
    source: str | None = None,
    stats: ReadStats | None = None,
    report: ColumnarReport | None = None,
) -> Iterator[dict]:
    """The alerts ``engine.scan(read_parquet(path, ...))`` gives, with event rules
    filtered inside DuckDB (see the module docstring).

    Alerts of the rules filtered in DuckDB come first, in row order (rules in
    engine order within a row); then those of the other rules, as
    :meth:`Engine.scan` gives them.
    """
    stats = stats if stats is not None else ReadStats()
    report = report if report is not None else ColumnarReport()
    try:
        pf = ParquetFile.open(path)
    except VigilError as exc:
        stats.file_failed(exc.message, str(path))
        return
    reason = pf.plain_shape() if source in (None, "ecs") else f"--source {source}"
    groups = None if reason else _index_groups(pf, index)
    if groups is None and reason is None:
        reason = "data_stream columns that are not text"
    report.plain_reason = reason
    sql_rules: list[tuple[Any, str]] = []
    plain_rules = []
    for rule in engine.rules:
        if reason is not None:
            plain_rules.append(rule)
            report.plain_rules[rule.rule_id] = reason
            continue
        try:
            cond = rule_sql(rule, pf.columns, pf.json_fields)
        except eqlsql.Unsupported as exc:
            plain_rules.append(rule)
            report.plain_rules[rule.rule_id] = str(exc)
            continue
        admitted = [(cnd, count) for idx, cnd, count in groups if rule.matches_index(idx)]
        if not admitted:
            continue
        engine.stats[rule.rule_id]["events"] += sum(c for _, c in admitted)
        if len(admitted) < len(groups):
            gate = " OR ".join(f"({c})" for c, _ in admitted)
            cond = f"({gate}) AND ({cond})" if cond != "TRUE" else gate
        if cond == "FALSE":
            continue
        sql_rules.append((rule, cond))
        report.sql_rules.append(rule.rule_id)
    total = sum(c for _, _, c in groups) if groups else None
    yield from _sql_alerts(engine, pf, sql_rules, index, source, report)
    if plain_rules:
        from vigil.engine import Engine

        sub = Engine(
            plain_rules, exceptions=engine.exceptions, exceptions_all=engine.exceptions_all, now=engine.now
        )
        sub_stats = ReadStats()
        for alert in sub.scan(read_parquet(pf.path, index=index, source=source, stats=sub_stats)):
            if alert["kibana.alert.uuid"] not in engine._seen:
                engine._seen.add(alert["kibana.alert.uuid"])
                yield alert
        for rid, counter in sub.stats.items():
            engine.stats[rid].update(counter)
        stats.events += sub_stats.events
        stats.skipped += sub_stats.skipped
        stats.problems.extend(sub_stats.problems)
        report.rows = sub_stats.events
    elif total is not None:
        stats.events += total
        report.rows = total


def _sql_alerts(engine, pf: ParquetFile, sql_rules, index, source, report: ColumnarReport) -> Iterator[dict]:
    if not sql_rules:
        return
    reader = Reader(index, source, ReadStats())
    if len(sql_rules) == 1:
        ((rule, cond),) = sql_rules
        rows = ((n, values, (rule,)) for n, values in pf.rows(f"({cond}) IS NOT FALSE"))
    else:
        # NULL is "unknown" (see vigil.eql.sql): such a row goes to the Python matcher.
        flags = ", ".join(f"(({c}) IS NOT FALSE) AS _m{k}" for k, (_, c) in enumerate(sql_rules))
        where = " OR ".join(f"_m{k}" for k in range(len(sql_rules)))
        rows = _flagged(pf, flags, where, [r for r, _ in sql_rules])
    for n, values, rules in rows:
        report.sql_matches += 1
        doc = pf.document(values)
        for event in reader.make(doc, pf.path, n + 1):
            for rule in rules:
                # The compiled matcher has the last word: SQL only narrows the rows.
                if not rule.compiled().matches(event.doc):
                    report.unconfirmed += 1
                    continue
                yield from engine._alerts(rule, [event])


def _flagged(pf: ParquetFile, flags: str, where: str, rules: list):
    gen = eqlsql.Generator({})
    names = pf.select_list
    sql = (
        f"SELECT * FROM (SELECT file_row_number, {names}, {flags} FROM {_source(pf.path)}) "
        f"WHERE {where} ORDER BY file_row_number"
    )
    del gen
    cur = pf.con.execute(sql)
    width = len(pf.names)
    while True:
        chunk = cur.fetchmany(BATCH)
        if not chunk:
            return
        for row in chunk:
            hits = tuple(r for r, m in zip(rules, row[1 + width :], strict=True) if m)
            yield row[0], row[1 : 1 + width], hits
