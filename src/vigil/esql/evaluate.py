"""Running an ES|QL query over a table of events, with Elasticsearch's semantics.

:class:`Program` checks a parsed query (names, functions, argument counts: the
verifier's errors, with line and column) and runs it over events. A row reads its
source document's fields lazily, typed by the mapping (:mod:`vigil.esql.values`);
the commands then run in order, as Elasticsearch's compute engine would:

- WHERE keeps the rows whose condition is true (null and false drop the row;
  "layout/where.md"); a comparison, LIKE, RLIKE or IN on a multi-valued value is
  null, so such rows are dropped ("esql-multivalued-fields.md");
- STATS ... BY puts a row in every group of a multi-valued key (every combination
  of several) and a null key in a group of its own ("layout/stats-by.md"); aggregates
  skip nulls and read every value of a multi-valued cell; ``agg(...) WHERE cond``
  feeds only the rows where ``cond`` is true; a STATS without BY gives one row even
  over no rows;
- INLINE STATS keeps every row and appends the aggregates of its group;
- EVAL, KEEP, DROP, RENAME, SORT (nulls last ascending, first descending; a
  multi-valued cell sorts by its smallest value ascending, largest descending),
  LIMIT, DISSECT, GROK and MV_EXPAND as documented in "_snippets/commands/layout".

Arithmetic on integers truncates toward zero on division and gives null (with a
warning) on overflow or division by zero; a double result that is not finite is null.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vigil.eql.semantics import DateValue, IpValue, VersionValue, to_epoch_millis
from vigil.esql import dates
from vigil.esql import functions as F
from vigil.esql import tree as T
from vigil.esql.errors import EsqlUnsupported, EsqlVerificationError
from vigil.esql.values import (
    INT_MAX,
    INT_MIN,
    LONG_MAX,
    LONG_MIN,
    NUMERIC,
    TEMPORAL,
    WHOLE,
    cell,
    coerce,
    field_type,
    read,
    to_json,
    values_of,
)
from vigil.lucene.regexp import RegexpError, compile_regexp
from vigil.lucene.wildcard import compile_wildcard

# Elasticsearch's default and largest result sizes (esql.query.result_truncation_default_size
# and _max_size: "limitations.md").
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
METADATA_FIELDS = {"_id": "keyword", "_index": "keyword", "_version": "long", "_source": "_source"}
METADATA_FIELDS |= {"_ignored": "keyword", "_score": "double", "_index_mode": "keyword"}

Cell = Any
Fn = Callable[["Row"], Cell]


class Row:
    """One row: the columns computed so far, and the source document while the
    query can still read its fields (until a KEEP, STATS or similar)."""

    __slots__ = ("doc", "cols", "meta", "src")

    def __init__(self, doc: Any, cols: dict, meta: dict | None = None, src: dict | None = None) -> None:
        self.doc = doc
        self.cols = cols
        self.meta = meta or {}
        # The fields of ``doc`` read so far, by name, shared by the rows (of several
        # programs) of one document: a source field is read with the type its name has in
        # the mapping wherever it is read (Env.lookup), so one read serves them all.
        self.src = src

    def copy(self) -> Row:
        return Row(self.doc, dict(self.cols), self.meta, self.src)


@dataclass
class Env:
    """What the verifier knows at one point of the query: the columns by name and type,
    and whether the source documents' fields can still be read."""

    columns: dict[str, str | None] = field(default_factory=dict)
    source: bool = True
    dropped: list[str] = field(default_factory=list)  # patterns hidden from the source
    strict: bool = False
    known: frozenset[str] = frozenset()
    computed: set[str] = field(default_factory=set)  # names a command computed (not fields)

    def define(self, name: str, typ: str | None) -> None:
        """A column a command computes, placed last."""
        self.columns.pop(name, None)
        self.columns[name] = typ
        self.computed.add(name)

    def lookup(self, name: str) -> tuple[bool, str | None]:
        if name in self.columns:
            return True, self.columns[name]
        if not self.source or any(fnmatch.fnmatchcase(name, p) for p in self.dropped):
            return False, None
        if name in METADATA_FIELDS:
            return False, None
        typ = field_type(name)
        if typ is None and self.strict and name not in self.known:
            return False, None
        return True, typ


@dataclass
class Result:
    """The columns (name, type) and rows of a run; ``warnings`` counts each message."""

    columns: list[tuple[str, str | None]]
    rows: list[dict]
    warnings: dict[str, int]
    # Per row: its source event (``_event``) and metadata, while a row comes from one event.
    metas: list[dict] = field(default_factory=list)

    def records(self) -> Iterator[dict]:
        """The rows as JSON objects, null cells left out (as Kibana's rowToDocument does)."""
        for row in self.rows:
            yield {k: to_json(v) for k, v in row.items() if v is not None}


def _err(message: str, loc: T.Loc, text: str) -> EsqlVerificationError:
    return EsqlVerificationError(message, loc[0] or None, loc[1] or None, text)


_COMMANDS = {
    T.Eval: "_eval",
    T.Stats: "_stats",
    T.Keep: "_keep",
    T.Drop: "_drop",
    T.Rename: "_rename",
    T.Sort: "_sort",
    T.MvExpand: "_mv_expand",
    T.Dissect: "_dissect",
    T.Grok: "_grok",
}


class Program:
    """A checked ES|QL query, ready to run over events.

    ``strict``: a field the mapping (ECS and Elastic's packages) lacks is an unknown
    column, as in Elasticsearch; otherwise it is read with the type its values give
    (``known_fields`` adds names to the mapping in strict mode). ``now``: the time
    NOW() returns (epoch milliseconds; default: the time of each run).
    """

    def __init__(
        self,
        query: T.Query,
        *,
        strict: bool = False,
        known_fields: Iterable[str] = (),
        now: int | None = None,
        drop_null_columns: bool = True,
    ) -> None:
        self.query = query
        self.drop_null_columns = drop_null_columns
        self._options = {
            "strict": strict,
            "known_fields": tuple(known_fields),
            "now": now,
            "drop_null_columns": drop_null_columns,
        }
        self.text = query.text
        self.now = now
        self.warn = F.Warnings()
        self.mv_expanded: list[str] = []
        if isinstance(query.source, T.Row):
            raise EsqlUnsupported("ROW is not supported: queries read events (FROM)", 1, 1, self.text)
        self.indices = query.source.indices
        self.metadata = query.source.metadata
        env = Env(strict=strict, known=frozenset(known_fields))
        for name in self.metadata:
            if name not in METADATA_FIELDS:
                raise _err(f"unsupported metadata field [{name}]", query.source.loc, self.text)
            env.columns[name] = METADATA_FIELDS[name]
        self.steps: list[Callable[[list[Row]], list[Row]]] = []
        self.has_limit = False
        # The leading commands that work row by row and read only the row (see
        # :func:`_local_prefix`): a replay runs them once per event, not in every run.
        self.local = _local_prefix(query.commands)
        self.filter_end = max(
            (i + 1 for i, c in enumerate(query.commands[: self.local]) if isinstance(c, T.Where)), default=0
        )
        # The columns (with their types) a STATS right after the local prefix reads, when
        # that is all it reads: the prefix's rows can then be kept as those columns alone.
        self.stats_reads: dict[str, str | None] | None = None
        for i, command in enumerate(query.commands):
            if i == self.local and isinstance(command, T.Stats) and not command.inline:
                self.stats_reads = _stats_reads(command, env)
            self.steps.append(self._command(command, env))
        self.env = env
        self.aggregating = query.aggregating
        # A leading WHERE that reads only the event (not NOW()): a replay can test each event
        # once as it arrives (see :meth:`keeps`) rather than in every overlapping run.
        first = query.commands[0] if query.commands else None
        self.leading_where = isinstance(first, T.Where) and not _calls(first.condition, "now")

    def __reduce__(self):
        # A program pickles as its text (the rule cache keeps checked rules): its
        # closures are built again when it is first used (vigil.esql.deferred).
        from vigil.esql import deferred

        return (deferred, (self.text, self._options))

    # --- running ------------------------------------------------------------------------

    def run(
        self,
        events: Iterable[Any],
        *,
        limit: int | None = DEFAULT_LIMIT,
        kept: bool = False,
        now: int | None = None,
    ) -> Result:
        """Run over ``events``: JSON documents, :class:`vigil.events.model.Event` objects,
        or ``(document, metadata)`` pairs (metadata: ``_id``, ``_index``, ``_version``).
        ``kept``: every event already passed :meth:`keeps`, so the leading WHERE is skipped.
        ``now``: the time NOW() gives in this run (epoch milliseconds; default: the
        program's ``now``, else the present)."""
        self.warn.counts.clear()
        if now is None:
            now = self.now if self.now is not None else int(datetime.now(UTC).timestamp() * 1000)
        self._now = now
        rows = [self._row(e) for e in events]
        steps = self.steps[1:] if kept and self.leading_where else self.steps
        for step in steps:
            rows = step(rows)
        if limit is not None and not self.has_limit:
            rows = rows[:limit]
        return self._result(rows)

    def prefix_rows(
        self,
        event: Any,
        *,
        kept: bool = False,
        end: int | None = None,
        src: dict | None = None,
        source: Row | None = None,
    ) -> list[Row]:
        """The rows of ``event`` after the local prefix (up to command ``end``; default:
        all of it). ``kept``: the event passed :meth:`keeps`, so the leading WHERE is skipped.
        The prefix works row by row and reads only the row, so an event's rows are the same
        in every run, whatever other events the run holds. ``src``: the event's fields read
        so far (:attr:`Row.src`), shared with other programs; ``source``: its row from
        :meth:`source_row`, given back (to be read, not changed) when no command is left."""
        steps = self.steps[1 if kept and self.leading_where else 0 : self.local if end is None else end]
        if not steps and source is not None:
            return [source]
        rows = [self._row(event, src)]
        for step in steps:
            rows = step(rows)
            if not rows:
                break
        return rows

    def project(self, rows: list[Row]) -> list[Row]:
        """Rows of the local prefix reduced to the columns the STATS after it reads
        (:attr:`stats_reads`): that STATS gives the same groups over them."""
        reads = self.stats_reads
        out = []
        for r in rows:
            cols = r.cols
            out.append(Row(None, {n: cols[n] if n in cols else _get(r, n, t) for n, t in reads.items()}))
        return out

    def run_rows(self, rows: list[Row], *, now: int | None = None) -> Result:
        """Run the commands after the local prefix over rows it gave (:meth:`prefix_rows`,
        :meth:`project`), in order; no default LIMIT (a replayed rule's run)."""
        self.warn.counts.clear()
        self._now = now if now is not None else int(datetime.now(UTC).timestamp() * 1000)
        for step in self.steps[self.local :]:
            rows = step(rows)
        return self._result(rows)

    def keeps(self, event: Any, row: Row | None = None) -> bool:
        """Whether ``event`` passes the query's leading WHERE (true when it has none that
        reads only the event). ``row``: the event's row from :meth:`source_row`, shared by
        the programs that test one event, so each field is read once."""
        if not self.leading_where:
            return True
        return bool(self.steps[0]([row if row is not None else self._row(event)]))

    @staticmethod
    def source_row(event: Any, src: dict | None = None) -> Row:
        """A row of ``event`` that any program's leading WHERE can read: its fields, typed
        by name alone, and every metadata field."""
        doc, meta = _doc_meta(event)
        cols = {}
        for name, typ in METADATA_FIELDS.items():
            v = doc if name == "_source" else meta.get(name)
            cols[name] = v if name == "_source" or v is None else coerce(v, typ)
        return Row(doc, cols, meta, src)

    def run_pages(self, pages: Iterable[dict[str, list]], **kw) -> Result:
        """Run over pages of columns: column name -> list of values (a value may be a list)."""

        def docs() -> Iterator[tuple[dict, dict]]:
            for page in pages:
                n = max((len(v) for v in page.values()), default=0)
                for i in range(n):
                    doc = {k: v[i] for k, v in page.items() if i < len(v) and v[i] is not None}
                    meta = {k: doc.pop(k) for k in list(doc) if k in METADATA_FIELDS}
                    yield doc, meta

        return self.run(docs(), **kw)

    def _row(self, event: Any, src: dict | None = None) -> Row:
        doc, meta = _doc_meta(event)
        cols = {}
        for name in self.metadata:
            if name == "_source":
                cols[name] = doc
            else:
                v = meta.get(name)
                cols[name] = None if v is None else coerce(v, METADATA_FIELDS[name])
        return Row(doc, cols, meta, src)

    def _result(self, rows: list[Row]) -> Result:
        env = self.env
        names = [n for n in env.columns if env.columns[n] != "_source"]
        out_rows = []
        extra: dict[str, None] = {}
        for row in rows:
            record: dict = {}
            if env.source and row.doc is not None:
                for name in _leaf_names(row.doc):
                    if name in env.columns or any(fnmatch.fnmatchcase(name, p) for p in env.dropped):
                        continue
                    record[name] = _get(row, name, field_type(name))
                    extra.setdefault(name)
            for name in names:
                record[name] = row.cols.get(name)
            if not env.source:
                # Fields a KEEP pattern found in the documents beyond the mapping.
                for name, v in row.cols.items():
                    if name not in record and not name.startswith("\x00"):
                        record[name] = v
                        extra.setdefault(name)
            out_rows.append(record)
        source_names = sorted(extra)
        columns = [(n, field_type(n)) for n in source_names] + [(n, env.columns[n]) for n in names]
        if self.drop_null_columns:
            # Kibana asks for drop_null_columns: a column null in every row is left out.
            columns = [(n, t) for n, t in columns if any(r.get(n) is not None for r in out_rows)]
        ordered = [{n: r.get(n) for n, _ in columns} for r in out_rows]
        return Result(columns, ordered, dict(self.warn.counts), [r.meta for r in rows])

    # --- commands -----------------------------------------------------------------------

    def _command(self, c: T.Command, env: Env) -> Callable[[list[Row]], list[Row]]:
        if isinstance(c, T.Where):
            cond = self._bool(c.condition, env)
            return lambda rows: [r for r in rows if cond(r) is True]
        if isinstance(c, T.Limit):
            self.has_limit = True
            n = min(c.count, MAX_LIMIT)
            return lambda rows: rows[:n]
        method = _COMMANDS.get(type(c))
        if method is not None:
            return getattr(self, method)(c, env)
        if isinstance(c, T.Completion):
            raise EsqlUnsupported(
                "COMPLETION sends a prompt to a language model (an inference endpoint of "
                "Elasticsearch): its answer cannot be reproduced outside Elastic",
                *c.loc,
                self.text,
            )
        raise EsqlUnsupported(f"the {type(c).__name__.upper()} command is not supported", *c.loc, self.text)

    def _eval(self, c: T.Eval, env: Env):
        compiled = []
        for a in c.fields:
            fn, typ = self._expr(a.expr, env)
            compiled.append((a.name, fn))
            env.define(a.name, typ)

        def step(rows: list[Row]) -> list[Row]:
            for r in rows:
                for name, fn in compiled:
                    r.cols[name] = fn(r)
            return rows

        return step

    def _keep(self, c: T.Keep, env: Env):
        chosen: dict[str, None] = {}  # the selected names in order (a set that keeps it)
        source_patterns: list[str] = []
        for p in c.patterns:
            if "*" in p:
                hits = [n for n in env.columns if fnmatch.fnmatchcase(n, p) and n not in chosen]
                chosen.update(dict.fromkeys(hits))
                if env.source:
                    source_patterns.append(p)
                elif not hits:
                    raise _err(f"No matches found for pattern [{p}]", c.loc, self.text)
                continue
            ok, typ = env.lookup(p)
            if not ok:
                raise _err(f"Unknown column [{p}]", c.loc, self.text)
            chosen.pop(p, None)  # named again: moves last
            chosen[p] = None
            if p not in env.columns:
                env.columns[p] = typ
        if env.source:
            # A pattern over the source names every mapped field it matches.
            for p in source_patterns:
                for n in _mapped_names(p):
                    if n not in chosen and env.lookup(n)[0]:
                        chosen[n] = None
                        env.columns.setdefault(n, field_type(n))
        selected = list(chosen)
        types = {n: env.columns[n] for n in selected}
        was_source = env.source
        dropped = list(env.dropped)
        env.columns = types
        env.source = False
        env.dropped = []

        def step(rows: list[Row]) -> list[Row]:
            out = []
            for r in rows:
                cols = {}
                for n in selected:
                    cols[n] = r.cols[n] if n in r.cols else _get(r, n, types[n])
                if was_source and source_patterns and r.doc is not None:
                    for name in _leaf_names(r.doc):
                        if name in cols or any(fnmatch.fnmatchcase(name, d) for d in dropped):
                            continue
                        if any(fnmatch.fnmatchcase(name, p) for p in source_patterns):
                            cols[name] = _get(r, name, field_type(name))
                out.append(Row(None, cols, r.meta))
            return out

        return step

    def _drop(self, c: T.Drop, env: Env):
        gone = []
        for p in c.patterns:
            hits = [n for n in env.columns if fnmatch.fnmatchcase(n, p)]
            if not hits and not env.source:
                raise _err(
                    f"Unknown column [{p}]" if "*" not in p else f"No matches found for pattern [{p}]",
                    c.loc,
                    self.text,
                )
            for n in hits:
                env.columns.pop(n)
                gone.append(n)
            if env.source:
                env.dropped.append(p)

        def step(rows: list[Row]) -> list[Row]:
            for r in rows:
                for n in gone:
                    r.cols.pop(n, None)
            return rows

        return step

    def _rename(self, c: T.Rename, env: Env):
        moves = []
        for old, new in c.pairs:
            ok, typ = env.lookup(old)
            if not ok:
                raise _err(f"Unknown column [{old}]", c.loc, self.text)
            env.columns.pop(new, None)
            env.computed.add(new)
            if old in env.columns:
                cols = list(env.columns.items())
                env.columns = {new if n == old else n: t for n, t in cols}
            else:
                env.columns[new] = typ
                env.dropped.append(old)
            moves.append((old, new, typ))

        def step(rows: list[Row]) -> list[Row]:
            for r in rows:
                for old, new, typ in moves:
                    v = r.cols.pop(old) if old in r.cols else _get(r, old, typ)
                    r.cols.pop(new, None)
                    r.cols[new] = v
            return rows

        return step

    def _sort(self, c: T.Sort, env: Env):
        keys = [(self._expr(o.expr, env)[0], o) for o in c.orders]

        def step(rows: list[Row]) -> list[Row]:
            for fn, o in reversed(keys):
                nulls_first = o.nulls_first if o.nulls_first is not None else o.descending
                vals = []
                for r in rows:
                    v = fn(r)
                    if isinstance(v, list):
                        v = max(v) if o.descending else min(v)
                    vals.append(v)
                present = [(v, r) for v, r in zip(vals, rows, strict=True) if v is not None]
                absent = [r for v, r in zip(vals, rows, strict=True) if v is None]
                present.sort(key=lambda p: _sort_key(p[0]), reverse=o.descending)
                ordered = [r for _, r in present]
                rows = absent + ordered if nulls_first else ordered + absent
            return rows

        return step

    def _mv_expand(self, c: T.MvExpand, env: Env):
        ok, typ = env.lookup(c.column)
        if not ok:
            raise _err(f"Unknown column [{c.column}]", c.loc, self.text)
        name = c.column
        self.mv_expanded.append(name)
        env.columns.pop(name, None)
        env.columns[name] = typ
        if env.source:
            env.dropped = [p for p in env.dropped if p != name]

        def step(rows: list[Row]) -> list[Row]:
            out = []
            for r in rows:
                v = r.cols[name] if name in r.cols else _get(r, name, typ)
                if isinstance(v, list):
                    for item in v:
                        nr = r.copy()
                        nr.cols.pop(name, None)
                        nr.cols[name] = item
                        out.append(nr)
                else:
                    r.cols.pop(name, None)
                    r.cols[name] = v
                    out.append(r)
            return out

        return step

    def _dissect(self, c: T.Dissect, env: Env):
        from vigil.esql.dissect import DissectError, DissectPattern

        try:
            pattern = DissectPattern(c.pattern, c.append_separator)
        except DissectError as exc:
            raise _err(f"Invalid pattern for dissect: [{exc}]", c.loc, self.text) from None
        source = self._expr(c.input, env)[0]
        for n in pattern.names:
            env.define(n, "keyword")
        return self._extract(source, [pattern.match], pattern.names)

    def _grok(self, c: T.Grok, env: Env):
        from vigil.esql.grok import GrokError, GrokPattern

        try:
            patterns = [GrokPattern(p) for p in c.patterns]
        except GrokError as exc:
            raise _err(f"Invalid GROK pattern: {exc}", c.loc, self.text) from None
        source = self._expr(c.input, env)[0]
        columns: dict[str, str] = {}
        for p in patterns:
            for n, t in p.columns.items():
                columns.setdefault(n, t)
        for n, t in columns.items():
            env.define(n, t)
        return self._extract(source, [p.match for p in patterns], list(columns))

    def _extract(self, source_fn: Fn, matchers: list, names: list[str]):
        """DISSECT and GROK: the columns the first matching pattern gives (all null when none
        matches, or the input is null or multi-valued)."""
        source = self._single_valued(source_fn)

        def step(rows: list[Row]) -> list[Row]:
            for r in rows:
                v = source(r)
                got = None
                if isinstance(v, str):
                    for match in matchers:
                        got = match(v)
                        if got is not None:
                            break
                for n in names:
                    r.cols.pop(n, None)
                    r.cols[n] = None if got is None else got.get(n)
            return rows

        return step

    # --- STATS -------------------------------------------------------------------------

    def _stats(self, c: T.Stats, env: Env):
        groups = []
        for g in c.groups:
            if _has_aggregate(g.expr):
                raise _err("grouping expressions cannot hold aggregate functions", g.loc, self.text)
            fn, typ = self._expr(g.expr, env)
            groups.append((g.name, fn, typ))
        aggs: list[_Agg] = []
        outputs = []
        for a in c.aggregates:
            if not _has_aggregate(a.expr):
                raise _err(f"expected an aggregate function but found [{a.name}]", a.loc, self.text)
            where = self._bool(a.where, env) if a.where is not None else None
            holder: list = []
            inner_env = Env(columns={g[0]: g[2] for g in groups}, source=False)
            outer = self._lift(a.expr, env, inner_env, where, aggs, holder)
            fn, typ = self._expr(outer, inner_env)
            outputs.append((a.name, fn, typ))
        new_columns = {n: t for n, _, t in outputs}
        for gname, _, gtyp in groups:
            new_columns.setdefault(gname, gtyp)
        if c.inline:
            for n in new_columns:
                if n in [g[0] for g in groups]:
                    continue
                env.define(n, new_columns[n])
        else:
            env.computed |= set(new_columns)
            env.columns = {}
            for n, _, t in outputs:
                env.columns[n] = t
            for gname, _, gtyp in groups:
                env.columns.pop(gname, None)
                env.columns[gname] = gtyp
            env.source = False
            env.dropped = []
        warn = self.warn

        def grouped(rows: list[Row]) -> dict[tuple, tuple[list, list[Row]]]:
            table: dict[tuple, tuple[list, list]] = {}
            if not groups:
                table[()] = ([agg.start() for agg in aggs], [])
            for r in rows:
                keys = [fn(r) for _, fn, _ in groups]
                if not any(isinstance(k, list) for k in keys):
                    # One group (the common case): _combinations' single combination.
                    entry = table.get(hkey := tuple(keys))
                    if entry is None:
                        entry = table[hkey] = ([agg.start() for agg in aggs], keys)
                    states = entry[0]
                    for i, agg in enumerate(aggs):
                        if agg.where is not None and agg.where(r) is not True:
                            continue
                        states[i] = agg.add(states[i], r)
                    continue
                for combo in _combinations(keys, warn):
                    hkey = tuple(_hashable(k) for k in combo)
                    entry = table.get(hkey)
                    if entry is None:
                        entry = table[hkey] = ([agg.start() for agg in aggs], list(combo))
                    states = entry[0]
                    for i, agg in enumerate(aggs):
                        if agg.where is not None and agg.where(r) is not True:
                            continue
                        states[i] = agg.add(states[i], r)
            return table

        def finish(states: list, key: list) -> dict:
            synthetic = Row(None, {})
            for (gname, _, _), k in zip(groups, key, strict=False):
                synthetic.cols[gname] = k
            for i, agg in enumerate(aggs):
                synthetic.cols[agg.slot] = agg.finish(states[i], warn)
            return {n: fn(synthetic) for n, fn, _ in outputs}

        if not c.inline:

            def step(rows: list[Row]) -> list[Row]:
                out = []
                for states, key in grouped(rows).values():
                    cols = finish(states, key)
                    for (gname, _, _), k in zip(groups, key, strict=False):
                        cols.pop(gname, None)
                        cols[gname] = k
                    out.append(Row(None, cols))
                return out

            return step

        def inline_step(rows: list[Row]) -> list[Row]:
            results = {h: finish(states, key) for h, (states, key) in grouped(rows).items()}
            empty = finish([agg.start() for agg in aggs], [None] * len(groups))
            for r in rows:
                keys = [fn(r) for _, fn, _ in groups]
                if any(isinstance(k, list) for k in keys):
                    found = empty  # a multi-valued key joins no group
                else:
                    found = results.get(tuple(_hashable(k) for k in keys), empty)
                for n, v in found.items():
                    r.cols.pop(n, None)
                    r.cols[n] = v
            return rows

        return inline_step

    def _lift(self, e: T.Expr, env: Env, inner: Env, where, aggs: list, holder: list) -> T.Expr:
        """Replace each aggregate call in ``e`` by a column holding its result."""
        if isinstance(e, T.Call) and e.name in F.AGGREGATES:
            agg = self._aggregate(e, env, where, len(aggs))
            aggs.append(agg)
            inner.columns[agg.slot] = agg.type
            return T.Column(agg.slot, e.loc)
        if isinstance(e, T.Call):
            return T.Call(
                e.name,
                tuple(self._lift(a, env, inner, where, aggs, holder) for a in e.args),
                e.star,
                e.options,
                e.loc,
            )
        if isinstance(e, T.Binary):
            return T.Binary(
                e.op,
                self._lift(e.left, env, inner, where, aggs, holder),
                self._lift(e.right, env, inner, where, aggs, holder),
                e.loc,
            )
        if isinstance(e, T.Unary):
            return T.Unary(e.op, self._lift(e.operand, env, inner, where, aggs, holder), e.loc)
        if isinstance(e, T.Cast):
            return T.Cast(self._lift(e.value, env, inner, where, aggs, holder), e.type, e.loc)
        if isinstance(e, T.Column) and e.name not in inner.columns:
            raise _err(
                f"column [{e.name}] must appear in the BY clause or be used in an aggregate function",
                e.loc,
                self.text,
            )
        return e

    def _aggregate(self, e: T.Call, env: Env, where, index: int) -> _Agg:
        lo, hi = F.AGGREGATES[e.name]
        n = len(e.args)
        if e.star:
            if e.name != "count":
                raise _err(f"[*] is only valid in COUNT, not in [{e.name.upper()}]", e.loc, self.text)
        elif not lo <= n <= hi:
            raise _err(f"wrong number of arguments for [{e.name.upper()}]: {n}", e.loc, self.text)
        for a in e.args:
            if _has_aggregate(a):
                raise _err(f"aggregate function inside [{e.name.upper()}] is not allowed", e.loc, self.text)
        args = [self._expr(a, env) for a in e.args]
        consts = [a.value if isinstance(a, T.Literal) else None for a in e.args]
        return _Agg(e.name, f"\x00agg{index}", args, consts, where, e.star or not e.args, self.text, e.loc)

    # --- expressions ---------------------------------------------------------------------

    def _bool(self, e: T.Expr, env: Env) -> Fn:
        fn, typ = self._expr(e, env)
        if typ not in ("boolean", "null", None):
            raise _err(f"Condition expression needs to be boolean, found [{typ}]", _loc(e), self.text)
        return fn

    def _expr(self, e: T.Expr, env: Env) -> tuple[Fn, str | None]:
        if isinstance(e, T.Literal):
            v = e.value
            if isinstance(v, tuple):
                v = cell(list(v))
            return (lambda r, v=v: v), e.type if e.type != "integer" else "integer"
        if isinstance(e, T.Column):
            return self._column(e, env)
        if isinstance(e, T.Binary):
            if e.op in ("and", "or"):
                return self._logic(e, env), "boolean"
            if e.op in ("==", "!=", "<", "<=", ">", ">=", "=~"):
                return self._compare(e, env), "boolean"
            return self._arith(e, env)
        if isinstance(e, T.Unary):
            inner, typ = self._expr(e.operand, env)
            if e.op == "not":
                one = self._single_valued(inner)

                def logical_not(r: Row) -> Cell:
                    v = one(r)
                    return None if v is None else not v

                return logical_not, "boolean"
            return self._negate(inner, typ), typ
        if isinstance(e, T.IsNull):
            inner, _ = self._expr(e.value, env)
            if e.negated:
                return (lambda r: inner(r) is not None), "boolean"
            return (lambda r: inner(r) is None), "boolean"
        if isinstance(e, T.In):
            return self._in(e, env), "boolean"
        if isinstance(e, T.Like):
            return self._like(e, env), "boolean"
        if isinstance(e, T.Cast):
            name = F.CAST_FUNCTIONS.get(e.type)
            if name is None:
                raise _err(f"Unsupported conversion to type [{e.type.upper()}]", e.loc, self.text)
            return self._expr(T.Call(name, (e.value,), loc=e.loc), env)
        if isinstance(e, T.Match):
            return self._match(e.column, e.query, env, e.loc), "boolean"
        if isinstance(e, T.Call):
            return self._call(e, env)
        raise _err(f"unsupported expression {type(e).__name__}", _loc(e), self.text)

    def _column(self, e: T.Column, env: Env) -> tuple[Fn, str | None]:
        ok, typ = env.lookup(e.name)
        if not ok:
            raise _err(f"Unknown column [{e.name}]", e.loc, self.text)
        name = e.name
        if name in env.columns:
            return (lambda r: r.cols[name] if name in r.cols else _get(r, name, typ)), typ
        return (lambda r: _get(r, name, typ)), typ

    def _logic(self, e: T.Binary, env: Env) -> Fn:
        # Flatten a chain of one operator, so long chains never recurse deeply.
        parts: list[T.Expr] = []
        stack = [e]
        while stack:
            x = stack.pop()
            if isinstance(x, T.Binary) and x.op == e.op:
                stack.append(x.right)
                stack.append(x.left)
            else:
                parts.append(x)
        fns = [self._single_valued(self._bool(p, env)) for p in parts]
        # AND: false wins, else null, else true; OR: true wins, else null, else false.
        decisive = e.op == "or"

        def chain(r: Row) -> Cell:
            unknown = False
            for fn in fns:
                v = fn(r)
                if v is decisive:
                    return decisive
                if v is None:
                    unknown = True
            return None if unknown else not decisive

        return chain

    def _operands(self, left: T.Expr, right: T.Expr, env: Env):
        lf, lt = self._expr(left, env)
        rf, rt = self._expr(right, env)
        # Implicit casting of string literals ("esql-implicit-casting.md").
        if isinstance(right, T.Literal) and right.type == "keyword":
            rf, rt = self._implicit(right, lt, rf, rt)
        if isinstance(left, T.Literal) and left.type == "keyword":
            lf, lt = self._implicit(left, rt, lf, lt)
        return lf, lt, rf, rt

    def _implicit(self, lit: T.Literal, target: str | None, fn: Fn, typ: str | None):
        if target in ("datetime", "ip", "version", "boolean"):
            v = coerce(lit.value, target)
            if v is None:
                raise _err(f"Cannot convert string [{lit.value}] to [{target.upper()}]", lit.loc, self.text)
            return (lambda r, v=v: v), target
        if target in TEMPORAL:
            span = dates.parse_span(lit.value)
            if span is None:
                raise _err(f"Cannot convert string [{lit.value}] to [{target.upper()}]", lit.loc, self.text)
            return (lambda r, v=span: v), target
        return fn, typ

    def _compare(self, e: T.Binary, env: Env) -> Fn:
        lf, lt, rf, rt = self._operands(e.left, e.right, env)
        _check_comparable(lt, rt, e, self.text)
        test = _COMPARE[e.op]

        return self._pairwise(lf, rf, test)

    def _single_valued(self, fn: Fn) -> Fn:
        """``fn``, null on a multi-valued cell (with the warning)."""
        warn = self.warn

        def one(r: Row) -> Cell:
            v = fn(r)
            if isinstance(v, list):
                warn.add(F.MV_WARNING)
                return None
            return v

        return one

    def _scalar(self, arg_fns: list[Fn], impl: Callable[..., Cell]) -> Fn:
        """A single-value function: null when an argument is null, null and the warning when
        one is multi-valued, null and a warning when ``impl`` fails."""
        warn = self.warn

        def call(r: Row) -> Cell:
            args = []
            for f in arg_fns:
                v = f(r)
                if v is None:
                    return None
                if isinstance(v, list):
                    warn.add(F.MV_WARNING)
                    return None
                args.append(v)
            try:
                return impl(*args)
            except (ValueError, ArithmeticError, OverflowError, IndexError) as exc:
                warn.add(f"{type(exc).__name__}: {exc}")
                return None
            except (TypeError, AttributeError):
                return None

        return call

    def _pairwise(self, lf: Fn, rf: Fn, apply: Callable[[Any, Any], Cell]) -> Fn:
        """A binary operator: null when either side is null or multi-valued (with the
        warning), null and a warning when it fails (overflow, division by zero)."""
        warn = self.warn

        def pair(r: Row) -> Cell:
            a = lf(r)
            if a is None:
                return None
            b = rf(r)
            if b is None:
                return None
            if isinstance(a, list) or isinstance(b, list):
                warn.add(F.MV_WARNING)
                return None
            try:
                return apply(a, b)
            except (ArithmeticError, ValueError, OverflowError) as exc:
                warn.add(f"{type(exc).__name__}: {exc}")
                return None
            except TypeError:
                return None

        return pair

    def _in(self, e: T.In, env: Env) -> Fn:
        vf, vt = self._expr(e.value, env)
        items = []
        for item in e.items:
            f, t = self._expr(item, env)
            if isinstance(item, T.Literal) and item.type == "keyword":
                f, t = self._implicit(item, vt, f, t)
            _check_comparable(vt, t, e, self.text)
            items.append(f)
        consts = None
        if all(isinstance(i, T.Literal) and not isinstance(i.value, tuple) for i in e.items):
            consts = {_hashable(f(None)) for f in items}
            consts.discard(None)
            has_null = any(i.type == "null" for i in e.items)
        warn = self.warn
        one = self._single_valued(vf)
        negated = e.negated

        def test(r: Row) -> Cell:
            v = one(r)
            if v is None:
                return None
            if consts is not None:
                hit = _hashable(v) in consts
                if not hit and has_null:
                    return None
                return hit != negated
            unknown = False
            for f in items:
                x = f(r)
                if x is None:
                    unknown = True
                elif isinstance(x, list):
                    warn.add(F.MV_WARNING)
                    unknown = True
                elif x == v and isinstance(x, bool) == isinstance(v, bool):
                    return not negated
            return None if unknown else negated

        return test

    def _like(self, e: T.Like, env: Env) -> Fn:
        vf, vt = self._expr(e.value, env)
        if vt not in (None, "keyword", "text", "null"):
            op = "RLIKE" if e.regex else "LIKE"
            raise _err(f"argument of [{op}] must be [string], found value of type [{vt}]", e.loc, self.text)
        matchers = []
        for p in e.patterns:
            if e.regex:
                # RLikePattern.java: Lucene's RegExp, whole-value, RE2 (linear time) here.
                try:
                    matchers.append(compile_regexp(p).fullmatch)
                except RegexpError as exc:
                    if "not supported" in str(exc):
                        raise EsqlUnsupported(f"RLIKE [{p}]: {exc}", *e.loc, self.text) from None
                    raise _err(f"Invalid regex pattern for RLIKE [{p}]: {exc}", e.loc, self.text) from None
            else:
                # WildcardPattern.java: * and ?, \ escapes, case-sensitive, whole value.
                matchers.append(compile_wildcard(p, escapes=True))
        one = self._single_valued(vf)
        negated = e.negated

        def test(r: Row) -> Cell:
            v = one(r)
            if v is None:
                return None
            if not isinstance(v, str):
                return None
            return any(m(v) for m in matchers) != negated

        return test

    def _negate(self, inner: Fn, typ: str | None) -> Fn:
        warn = self.warn
        one = self._single_valued(inner)

        def neg(r: Row) -> Cell:
            v = one(r)
            if v is None:
                return None
            if isinstance(v, T.Span):
                return T.Span(-v.amount, v.unit)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return None
            if isinstance(v, int):
                return _bounded(-v, typ, warn)
            return -v

        return neg

    def _arith(self, e: T.Binary, env: Env) -> tuple[Fn, str | None]:
        lf, lt, rf, rt = self._operands(e.left, e.right, env)
        op = e.op
        typ = _arith_type(op, lt, rt)
        if typ is False:
            raise _err(f"[{op}] has arguments with incompatible types [{lt}] and [{rt}]", e.loc, self.text)
        warn = self.warn

        return self._pairwise(lf, rf, lambda a, b: _apply(op, a, b, typ, warn)), typ

    def _call(self, e: T.Call, env: Env) -> tuple[Fn, str | None]:
        name = e.name
        if name in F.AGGREGATES and name not in F.FUNCTIONS:
            raise _err(f"aggregate function [{name.upper()}] is only allowed in STATS", e.loc, self.text)
        if name in F.SPECIAL:
            lo, hi = F.SPECIAL[name]
            self._arity(e, lo, hi)
            return getattr(self, f"_fn_{name}")(e, env)
        fn = F.FUNCTIONS.get(name)
        if fn is None:
            raise _err(f"Unknown function [{name}]", e.loc, self.text)
        if e.star:
            raise _err(f"[*] is not valid in [{name.upper()}]", e.loc, self.text)
        self._arity(e, fn.min_args, fn.max_args)
        compiled = [self._expr(a, env) for a in e.args]
        arg_fns = [c[0] for c in compiled]
        typ = fn.returns([c[1] for c in compiled])
        warn = self.warn
        impl = fn.impl
        if fn.mode == "convert":
            conv = name

            def convert(r: Row) -> Cell:
                v = arg_fns[0](r)
                return None if v is None else F.convert_cell(conv, v, warn)

            return convert, typ
        if fn.mode == "cells":

            def whole(r: Row) -> Cell:
                try:
                    return impl(*[f(r) for f in arg_fns])
                except (ValueError, ArithmeticError, OverflowError) as exc:
                    warn.add(f"{type(exc).__name__}: {exc}")
                    return None
                except TypeError:
                    return None

            return whole, typ

        def checked(*args: Any) -> Cell:
            out = impl(*args)
            if isinstance(out, int) and not isinstance(out, bool) and typ in WHOLE:
                return _bounded(out, typ, warn)
            if isinstance(out, float) and not math.isfinite(out):
                return None
            return out

        return self._scalar(arg_fns, checked), typ

    def _arity(self, e: T.Call, lo: int, hi: int | None) -> None:
        n = len(e.args)
        if n < lo or (hi is not None and n > hi):
            want = str(lo) if lo == hi else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
            raise _err(f"[{e.name.upper()}] takes {want} arguments, got {n}", e.loc, self.text)

    # --- functions evaluated here -----------------------------------------------------------

    def _fn_now(self, e: T.Call, env: Env):
        return (lambda r: DateValue(self._now)), "datetime"

    def _fn_case(self, e: T.Call, env: Env):
        args = e.args
        pairs = []
        for i in range(0, len(args) - 1, 2):
            pairs.append((self._bool(args[i], env), self._expr(args[i + 1], env)[0]))
        default = self._expr(args[-1], env) if len(args) % 2 else None
        types = [self._expr(args[i + 1], env)[1] for i in range(0, len(args) - 1, 2)]
        if default is not None:
            types.append(default[1])
        typ = next((t for t in types if t not in (None, "null")), None)
        default_fn = default[0] if default is not None else None
        warn = self.warn

        def case(r: Row) -> Cell:
            for cond, value in pairs:
                c = cond(r)
                if isinstance(c, list):
                    warn.add(F.MV_WARNING)
                    continue
                if c is True:
                    return value(r)
            return default_fn(r) if default_fn is not None else None

        memo = self._memo_by_column(args, env, case)
        return (memo or case), typ

    def _memo_by_column(self, args: tuple, env: Env, fn: Fn) -> Fn | None:
        """``fn`` remembered by the value of the one column ``args`` read, when they read one
        and nothing else (no document, no NOW()): a CASE of hundreds of LIKE tests on a
        process name runs once per name. A multi-valued cell, a list result or a run that
        warns is not remembered (so warnings count as before)."""
        names = set()
        for a in args:
            for x in walk(a):
                if isinstance(x, T.Match) or (isinstance(x, T.Call) and x.name in (*_DOC_FUNCTIONS, "now")):
                    return None
                if isinstance(x, T.Column):
                    names.add(x.name)
        if len(names) != 1:
            return None
        column = self._column(T.Column(names.pop()), env)[0]
        counts = self.warn.counts
        memo: dict = {}

        def remembered(r: Row) -> Cell:
            v = column(r)
            if isinstance(v, list):
                return fn(r)
            key = (type(v), v)
            try:
                return memo[key]
            except KeyError:
                pass
            except TypeError:  # a value that cannot be a key
                return fn(r)
            warned = sum(counts.values())
            out = fn(r)
            if not isinstance(out, list) and sum(counts.values()) == warned:
                if len(memo) >= 4096:
                    memo.clear()
                memo[key] = out
            return out

        return remembered

    def _date_arg(self, e: T.Expr, env: Env) -> Fn:
        fn, typ = self._expr(e, env)
        if isinstance(e, T.Literal) and e.type == "keyword":
            fn, typ = self._implicit(e, "datetime", fn, typ)
        if typ not in ("datetime", None, "null", "keyword", "text"):
            raise _err(f"argument must be [datetime], found value of type [{typ}]", _loc(e), self.text)
        return fn

    def _fn_date_trunc(self, e: T.Call, env: Env):
        span_e, date_e = e.args
        span_fn, span_t = self._expr(span_e, env)
        if isinstance(span_e, T.Literal) and span_e.type == "keyword":
            span_fn, span_t = self._implicit(span_e, "time_duration", span_fn, span_t)
        date_fn = self._date_arg(date_e, env)

        def trunc(span: Any, d: Any) -> Cell:
            ms = _as_millis(d)
            if ms is None or not isinstance(span, T.Span):
                return None
            return DateValue(dates.truncate(ms, span))

        return self._scalar([span_fn, date_fn], trunc), "datetime"

    def _fn_date_diff(self, e: T.Call, env: Env):
        unit_e, start_e, end_e = e.args
        unit_fn, _ = self._expr(unit_e, env)
        if isinstance(unit_e, T.Literal):
            if dates.diff_unit(str(unit_e.value)) is None:
                raise _err(
                    f"Received value [{unit_e.value}] is not valid date part to add", unit_e.loc, self.text
                )
        start_fn, end_fn = self._date_arg(start_e, env), self._date_arg(end_e, env)

        def diff(u: Any, a: Any, b: Any) -> Cell:
            ua, ub = _as_millis(a), _as_millis(b)
            unit = dates.diff_unit(str(u))
            if ua is None or ub is None or unit is None:
                return None
            out = dates.diff(unit, ua, ub)
            if not INT_MIN <= out <= INT_MAX:
                raise ArithmeticError("integer overflow")
            return out

        return self._scalar([unit_fn, start_fn, end_fn], diff), "integer"

    def _fn_date_extract(self, e: T.Call, env: Env):
        part_e, date_e = e.args
        part_fn, _ = self._expr(part_e, env)
        date_fn = self._date_arg(date_e, env)

        def extract(p: Any, d: Any) -> Cell:
            ms = _as_millis(d)
            return None if ms is None else dates.extract(str(p), ms)

        return self._scalar([part_fn, date_fn], extract), "long"

    def _fn_replace(self, e: T.Call, env: Env):
        from vigil.esql.javaregex import JavaRegexError, compile_java

        s_fn, _ = self._expr(e.args[0], env)
        p_e = e.args[1]
        p_fn, _ = self._expr(p_e, env)
        n_fn, _ = self._expr(e.args[2], env)
        if isinstance(p_e, T.Literal) and isinstance(p_e.value, str):
            try:
                compile_java(p_e.value)
            except JavaRegexError as exc:
                raise EsqlUnsupported(f"REPLACE pattern [{p_e.value}]: {exc}", *p_e.loc, self.text) from None

        def replace(text: Any, pattern: Any, new: Any) -> Cell:
            try:
                return compile_java(str(pattern)).replace_all(str(text), str(new))
            except JavaRegexError as exc:
                raise ValueError(str(exc)) from None

        return self._scalar([s_fn, p_fn, n_fn], replace), "keyword"

    def _fn_kql(self, e: T.Call, env: Env):
        from vigil import kql

        (arg,) = e.args
        if not (isinstance(arg, T.Literal) and isinstance(arg.value, str)):
            raise _err("KQL takes a constant string", e.loc, self.text)
        if not env.source or env.columns.keys() - METADATA_FIELDS.keys():
            raise _err(
                "[KQL] function cannot be used after commands that change the columns", e.loc, self.text
            )
        try:
            query = kql.compile(arg.value)
        except Exception as exc:  # noqa: BLE001 - the KQL error, placed at the call
            kind = getattr(exc, "kind", "error")
            raise _err(f"KQL {kind}: {getattr(exc, 'message', exc)}", arg.loc, self.text) from None

        def matches(r: Row) -> Cell:
            return r.doc is not None and query.matches(r.doc)

        return matches, "boolean"

    def _fn_match(self, e: T.Call, env: Env):
        column = e.args[0]
        if isinstance(column, T.Cast):
            column = column.value
        if not isinstance(column, T.Column):
            raise _err("the first argument of [MATCH] must be a field", e.loc, self.text)
        query = e.args[1]
        if not isinstance(query, T.Literal):
            raise _err("the query of [MATCH] must be a constant", e.loc, self.text)
        return self._match(column, query, env, e.loc, phrase=e.name == "match_phrase"), "boolean"

    _fn_match_phrase = _fn_match

    def _match(self, column: T.Column, query: T.Literal, env: Env, loc: T.Loc, phrase: bool = False) -> Fn:
        from vigil.lucene import analysis

        ok, typ = env.lookup(column.name)
        if not ok:
            raise _err(f"Unknown column [{column.name}]", column.loc, self.text)
        if column.name in env.computed:
            raise _err(
                f"[MATCH] cannot operate on [{column.name}], which is not a field from an index mapping",
                loc,
                self.text,
            )
        name = column.name
        q = query.value
        if typ == "text":
            # A match query on a text field: analysed, any term (operator OR).
            analyzer = analysis.field_analyzer(name)
            test = analysis.match_phrase if phrase else analysis.match
            return lambda r: any(
                isinstance(v, str) and test(v, str(q), analyzer) for v in values_of(_get(r, name, typ))
            )
        target = coerce(q, typ) if typ is not None else q
        if target is None:
            raise _err(f"cannot match [{q}] against field [{name}] of type [{typ}]", loc, self.text)
        return lambda r: target in values_of(_get(r, name, typ))


def _doc_meta(event: Any) -> tuple[Any, dict]:
    if isinstance(event, tuple):
        return event
    if isinstance(event, dict):
        return event, {}
    return event.doc, {
        "_id": getattr(event, "id", None),
        "_index": getattr(event, "index", None),
        "_event": event,
    }


# --- aggregation ---------------------------------------------------------------------------


class _Agg:
    """One aggregate call: its state per group, fed row by row."""

    def __init__(self, name, slot, args, consts, where, counts_rows, text, loc):
        self.name = name
        self.slot = slot
        self.args = [a[0] for a in args]
        self.where = where
        self.counts_rows = counts_rows
        arg_type = args[0][1] if args else None
        if name in ("count", "count_distinct"):
            self.type = "long"
        elif name == "avg" or name == "median":
            self.type = "double"
        elif name == "sum":
            self.type = "double" if arg_type == "double" else "long"
        else:
            self.type = arg_type
        self.limit = None
        self.descending = False
        if name == "top":
            n, order = consts[1], consts[2] if len(consts) > 2 else "asc"
            if not isinstance(n, int) or n < 1:
                raise _err("Limit must be greater than 0 in [TOP]", loc, text)
            if not isinstance(order, str) or order.lower() not in ("asc", "desc"):
                raise _err("Invalid order value in [TOP], expected [ASC, DESC]", loc, text)
            self.limit, self.descending = n, order.lower() == "desc"

    def start(self) -> Any:
        if self.name in ("first", "last"):
            return None
        return 0 if self.name == "count" and self.counts_rows else []

    def add(self, state: Any, r: Row) -> Any:
        if self.name == "count" and self.counts_rows:
            return state + 1
        v = self.args[0](r)
        if self.name in ("first", "last"):
            if v is None:
                return state
            k = self.args[1](r)
            if k is None:
                return state
            k = min(k) if isinstance(k, list) else k
            if state is None or (k < state[0] if self.name == "first" else k > state[0]):
                return (k, v)
            return state
        if v is None:
            return state
        if isinstance(v, list):
            state.extend(v)
        else:
            state.append(v)
        return state

    def finish(self, state: Any, warn: F.Warnings) -> Any:
        name = self.name
        if name == "count":
            return state if self.counts_rows else len(state)
        if name in ("first", "last"):
            return None if state is None else state[1]
        if not state:
            return None
        try:
            if name == "count_distinct":
                return len({_hashable(v) for v in state})
            if name == "values":
                return cell(sorted(set(state), key=_sort_key))
            if name == "min":
                return min(state, key=_sort_key)
            if name == "max":
                return max(state, key=_sort_key)
            if name == "sum":
                total = sum(state)
                if isinstance(total, int):
                    return _bounded(total, "long", warn)
                return total if math.isfinite(total) else None
            if name == "avg":
                avg = math.fsum(state) / len(state)
                return avg if math.isfinite(avg) else None
            if name == "median":
                s = sorted(state)
                mid = len(s) // 2
                return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
            if name == "top":
                return cell(sorted(state, key=_sort_key, reverse=self.descending)[: self.limit])
        except (TypeError, ValueError):
            return None
        return None


# --- helpers -----------------------------------------------------------------------------------


def _get(r: Row, name: str, typ: str | None) -> Cell:
    cols = r.cols
    if name in cols:
        return cols[name]
    if r.doc is None:
        return None
    src = r.src
    if src is None:
        v = read(r.doc, name, typ)
    elif name in src:
        v = src[name]
    else:
        v = src[name] = read(r.doc, name, typ)
    cols[name] = v
    return v


def _leaf_names(doc: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    if not isinstance(doc, dict):
        return out
    for k, v in doc.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _leaf_names(v, name + ".")
        elif isinstance(v, list) and any(isinstance(x, dict) for x in v):
            for x in v:
                if isinstance(x, dict):
                    out += [n for n in _leaf_names(x, name + ".") if n not in out]
        elif v is not None:
            out.append(name)
    return list(dict.fromkeys(out))


@functools.lru_cache(maxsize=1024)
def _mapped_names(pattern: str) -> tuple[str, ...]:
    from vigil.eql import ecs

    match = re.compile(fnmatch.translate(pattern)).match  # fnmatchcase's own test, compiled once
    return tuple(sorted(n for n in ecs._table() if match(n)))


# Groups one row may join: the product of its multi-valued keys' sizes (an event an
# intruder writes could hold three keys of 10,000 values each). Past it, the row joins the
# first combinations only and a warning says so, rather than stalling the run.
MAX_GROUP_COMBINATIONS = 10_000


def _combinations(keys: list, warn: F.Warnings | None = None) -> list[list]:
    combos: list[list] = [[]]
    for k in keys:
        vals = list(dict.fromkeys(_hashable(x) for x in (k if isinstance(k, list) else [k])))
        if len(combos) * len(vals) > MAX_GROUP_COMBINATIONS:
            if warn is not None:
                warn.add(
                    f"a row's multi-valued BY keys give more than {MAX_GROUP_COMBINATIONS} groups: the rest left out"
                )
            vals = vals[: max(1, MAX_GROUP_COMBINATIONS // len(combos))]
        combos = [c + [v] for c in combos for v in vals]
    return combos


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(v)
    return v


def _sort_key(v: Any) -> Any:
    if isinstance(v, bool):
        return (0, int(v))
    if isinstance(v, (int, float)):
        return (1, v)
    if isinstance(v, str):
        return (2, v)
    if isinstance(v, VersionValue):
        return (3, v.key)
    return (4, str(v))


def _as_millis(v: Any) -> int | None:
    if isinstance(v, DateValue):
        return int(v)
    if isinstance(v, str):
        return to_epoch_millis(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    return None


def _bounded(v: int, typ: str | None, warn: F.Warnings) -> int | None:
    lo, hi = (INT_MIN, INT_MAX) if typ == "integer" else (LONG_MIN, LONG_MAX)
    if lo <= v <= hi:
        return v
    warn.add(f"ArithmeticException: {typ or 'long'} overflow")
    return None


def _loc(e: Any) -> T.Loc:
    return getattr(e, "loc", T.NO_LOC)


_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "=~": lambda a, b: a.lower() == b.lower(),
}

_FAMILY = {
    "integer": "num",
    "long": "num",
    "double": "num",
    "unsigned_long": "num",
    "keyword": "str",
    "text": "str",
}


def _check_comparable(a: str | None, b: str | None, e: Any, text: str) -> None:
    if a in (None, "null") or b in (None, "null"):
        return
    fa, fb = _FAMILY.get(a, a), _FAMILY.get(b, b)
    if fa != fb:
        raise _err(
            f"first argument of [{_describe(e)}] is [{a}] so second argument must also be [{a}] but was [{b}]",
            _loc(e),
            text,
        )


def _describe(e: Any) -> str:
    if isinstance(e, T.Binary):
        return e.op
    return "IN"


def _arith_type(op: str, a: str | None, b: str | None) -> str | None | bool:
    if a is None or b is None:
        return a if b is None and a not in (None, "null") and a in NUMERIC else None
    if a == "null" or b == "null":
        return "null"
    if a in NUMERIC and b in NUMERIC:
        if "double" in (a, b):
            return "double"
        if "long" in (a, b) or "unsigned_long" in (a, b):
            return "long"
        return "integer"
    if op in ("+", "-") and a == "datetime" and b in TEMPORAL:
        return "datetime"
    if op == "+" and b == "datetime" and a in TEMPORAL:
        return "datetime"
    if a in TEMPORAL and b in TEMPORAL and op in ("+", "-"):
        return a
    return False


def _int_div(a: int, b: int) -> int:
    # "Division of two integer types will yield an integer result, rounding towards 0" (div.md)
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


_INT_OPS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _int_div,
    "%": lambda a, b: a - b * _int_div(a, b),  # Java's remainder: the dividend's sign
}
_FLOAT_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "%": math.fmod}


def _apply(op: str, a: Any, b: Any, typ: str | None, warn: F.Warnings) -> Any:
    if isinstance(a, T.Span) or isinstance(b, T.Span):
        if isinstance(b, T.Span) and not isinstance(a, T.Span):
            ms = _as_millis(a)
            if ms is None:
                return None
            return DateValue(dates.add_span(ms, b, -1 if op == "-" else 1))
        if isinstance(a, T.Span) and not isinstance(b, T.Span) and op == "+":
            ms = _as_millis(b)
            return None if ms is None else DateValue(dates.add_span(ms, a, 1))
        return None
    if (
        isinstance(a, bool)
        or isinstance(b, bool)
        or not isinstance(a, (int, float))
        or not isinstance(b, (int, float))
    ):
        return None
    if isinstance(a, (DateValue, IpValue)) or isinstance(b, (DateValue, IpValue)):
        return None
    if op in ("/", "%") and b == 0:
        raise ArithmeticError("/ by zero")
    if isinstance(a, int) and isinstance(b, int):
        return _bounded(_INT_OPS[op](a, b), typ if typ in WHOLE else "long", warn)
    out = _FLOAT_OPS[op](float(a), float(b))
    if not math.isfinite(out):
        raise ArithmeticError("not a finite double number")
    return out


# Commands that map each row to rows of its own (none, one or several), reading nothing
# else: the planner runs them per page, before any STATS, SORT or LIMIT
# (x-pack/plugin/esql/.../planner/LocalExecutionPlanner.java: FilterExec, EvalExec,
# MvExpandExec, DissectExec, GrokExec, ProjectExec are operators over one page).
_ROW_LOCAL = (T.Where, T.Eval, T.MvExpand, T.Dissect, T.Grok, T.Keep, T.Drop, T.Rename)


def _local_prefix(commands: tuple) -> int:
    """How many leading commands are row-local and do not read the run (NOW())."""
    for i, c in enumerate(commands):
        if not isinstance(c, _ROW_LOCAL):
            return i
        exprs = []
        if isinstance(c, T.Where):
            exprs = [c.condition]
        elif isinstance(c, T.Eval):
            exprs = [a.expr for a in c.fields]
        elif isinstance(c, (T.Dissect, T.Grok)):
            exprs = [c.input]
        if any(_calls(x, "now") for x in exprs):
            return i
    return len(commands)


# Functions that read the row's document rather than its columns.
_DOC_FUNCTIONS = ("kql", "qstr", "match", "match_phrase")


def _stats_reads(c: T.Stats, env: Env) -> dict[str, str | None] | None:
    """The columns a STATS reads with their types, or None when it may read more (the
    document itself)."""
    names: dict[str, None] = {}
    stack: list = [g.expr for g in c.groups]
    stack += [a.expr for a in c.aggregates] + [a.where for a in c.aggregates if a.where is not None]
    while stack:
        x = stack.pop()
        if isinstance(x, T.Column):
            names[x.name] = None
        elif isinstance(x, T.Literal):
            pass
        elif isinstance(x, T.Call):
            if x.name in _DOC_FUNCTIONS:
                return None
            stack.extend(x.args)
        elif isinstance(x, T.Binary):
            stack += [x.left, x.right]
        elif isinstance(x, (T.Unary,)):
            stack.append(x.operand)
        elif isinstance(x, T.In):
            stack.append(x.value)
            stack.extend(x.items)
        elif isinstance(x, (T.IsNull, T.Like, T.Cast)):
            stack.append(x.value)
        else:
            return None
    out = {}
    for n in names:
        ok, typ = env.lookup(n)
        if ok:
            out[n] = typ
    return out


def _calls(e: Any, name: str) -> bool:
    """Whether expression ``e`` calls the function ``name``."""
    return any(isinstance(x, T.Call) and x.name == name for x in walk(e))


def walk(e: Any) -> Iterator[T.Expr]:
    """``e`` and every expression inside it."""
    stack = [e]
    while stack:
        x = stack.pop()
        yield x
        for attr in ("args", "left", "right", "operand", "value", "items", "column"):
            v = getattr(x, attr, None)
            if isinstance(v, tuple):
                stack.extend(i for i in v if isinstance(i, T.Expr))
            elif isinstance(v, T.Expr):
                stack.append(v)


def _has_aggregate(e: Any) -> bool:
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, T.Call):
            if x.name in F.AGGREGATES:
                return True
            stack.extend(x.args)
        elif isinstance(x, T.Binary):
            stack += [x.left, x.right]
        elif isinstance(x, T.Unary):
            stack.append(x.operand)
        elif isinstance(x, T.Cast):
            stack.append(x.value)
        elif isinstance(x, (T.In,)):
            stack.append(x.value)
            stack.extend(x.items)
        elif isinstance(x, (T.IsNull, T.Like)):
            stack.append(x.value)
    return False
