"""``vigil query``: run one EQL query over event files, like Elasticsearch's EQL search API.

Event queries print the matching events; sequences and samples print one
object per match: ``{"join_keys": [...], "events": [doc | {"missing": true}, ...]}``.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from vigil.cli import output
from vigil.eql.fields import lookup
from vigil.errors import VigilError
from vigil.events.model import Event

# Columns of the table view beyond timestamp and category: the first present wins.
_DETAIL_FIELDS = ("process.name", "file.path", "destination.ip", "dns.question.name", "user.name", "message")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "query",
        help="run an EQL query over event files",
        description="Run one EQL query (event, sequence or sample) over NDJSON / JSON / .gz event files "
        "or standard input, with the options of Elasticsearch's EQL search API.",
    )
    p.add_argument(
        "query", metavar="QUERY", help="the EQL query, e.g. 'process where process.name == \"sh\"'"
    )
    p.add_argument("files", metavar="FILE", nargs="*", help="event files or folders; '-' or none for stdin")
    p.add_argument(
        "--timestamp-field", default="@timestamp", help="field holding the event time (@timestamp)"
    )
    p.add_argument("--event-category-field", default="event.category", help="field holding the category")
    p.add_argument(
        "--tiebreaker", default=None, metavar="FIELD", help="field that orders events with equal times"
    )
    p.add_argument("--size", type=_non_negative, default=None, help="return at most this many matches")
    p.add_argument(
        "--max-samples-per-key", type=_positive, default=1, help="samples returned per join key (default 1)"
    )
    p.add_argument("--mapping", metavar="FILE", default=None, help="Elasticsearch index mapping (JSON)")
    p.add_argument("--source", default=None, help="event source format (ecs, sentinelone, endgame)")
    output.add_format_option(p)
    p.set_defaults(func=run)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def run(args: argparse.Namespace) -> int:
    schema = _schema(args.mapping)
    query = _compile(args, schema)
    fmt = output.resolve_format(args)
    stats = _Stats()
    events = _read(args.files or ["-"], args.source, stats)
    matches = query.run(events, doc=lambda ev: ev.doc)
    count = _print(matches, query.kind, fmt, args)
    _summary(stats, count)
    return 0


# --- query and schema ---------------------------------------------------------------


def _schema(mapping: str | None):
    from vigil.eql.schema import Schema, SchemaError

    if mapping is None:
        return Schema.ecs()
    path = Path(mapping)
    if not path.is_file():
        raise VigilError("mapping file not found", file=mapping)
    try:
        return Schema.from_mapping(path)
    except SchemaError as exc:
        raise VigilError(exc.message, file=exc.file or mapping, line=exc.line, column=exc.column) from None


def _compile(args: argparse.Namespace, schema):
    from vigil import eql

    try:
        from vigil.eql.query import QueryOptions
    except ImportError:
        return _FallbackQuery(args, schema)
    options = QueryOptions(
        timestamp_field=args.timestamp_field,
        tiebreaker_field=args.tiebreaker,
        event_category_field=args.event_category_field,
        size=args.size,
        max_samples_per_key=args.max_samples_per_key,
    )
    return eql.compile(args.query, schema=schema, options=options)


class _FallbackQuery:
    """Event queries only, until the query layer is installed."""

    def __init__(self, args: argparse.Namespace, schema) -> None:
        from vigil.eql import ast
        from vigil.eql.checker import check
        from vigil.eql.compiler import compile_event_filter
        from vigil.eql.parser import parse

        statement = parse(args.query)
        check(statement, schema, args.query)
        if not isinstance(statement.query, ast.EventQuery):
            raise VigilError(
                "sequence and sample queries need the vigil.eql.query module, which is not installed"
            )
        self.kind = "event"
        self.pipes = statement.pipes
        self.size = args.size
        self.test = compile_event_filter(statement.query, schema, args.event_category_field)
        self.timestamp_field = args.timestamp_field
        self.tiebreaker = args.tiebreaker

    def _order(self, doc: dict) -> tuple:
        # ES sorts event query hits by timestamp then tiebreaker, missing values first.
        from vigil.eql.dates import to_epoch_millis

        def key(path: str | None) -> tuple:
            values = lookup(doc, path) if path else []
            if not values:
                return (0, 0)
            v = values[0]
            ms = to_epoch_millis(v) if path == self.timestamp_field else None
            if ms is not None:
                return (1, ms)
            return (1, v) if isinstance(v, int | float) and not isinstance(v, bool) else (1, 0)

        return (key(self.timestamp_field), key(self.tiebreaker))

    def run(self, items: Iterable, *, doc=lambda x: x):
        from collections import deque

        hits: Iterable = sorted(
            (item for item in items if self.test(doc(item))), key=lambda it: self._order(doc(it))
        )
        for pipe in self.pipes:
            if pipe.name == "head":
                hits = _take(hits, pipe.count)
            else:
                hits = iter(deque(hits, maxlen=pipe.count) if pipe.count else [])
        if self.size is not None:
            hits = _take(hits, self.size)
        for item in hits:
            yield _SimpleMatch("event", [item], [])


class _SimpleMatch:
    def __init__(self, kind: str, events: list, join_keys: list) -> None:
        self.kind = kind
        self.events = events
        self.join_keys = join_keys


def _take(items: Iterable, n: int) -> Iterator:
    if n <= 0:
        return
    for i, item in enumerate(items):
        yield item
        if i + 1 >= n:
            return


# --- reading -----------------------------------------------------------------------------


class _Stats:
    def __init__(self) -> None:
        self.events = 0
        self.skipped = 0
        self.problems: list[VigilError] = []


def _read(paths: list[str], source: str | None, stats: _Stats) -> Iterator[Event]:
    try:
        from vigil.events.readers import ReadStats, read_inputs
    except ImportError:
        yield from _read_plain(paths, stats)
        return
    rs = ReadStats()
    try:
        yield from read_inputs(paths, source=source, stats=rs)
    finally:
        stats.events, stats.skipped, stats.problems = rs.events, rs.skipped, list(rs.problems)


def _read_plain(paths: list[str], stats: _Stats) -> Iterator[Event]:
    """NDJSON and JSON arrays, plain or gzip, files, folders or stdin."""
    for name in paths:
        if name == "-":
            yield from _read_bytes(sys.stdin.buffer.read(), "<stdin>", stats)
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files = [path]
        else:
            raise VigilError("no such file or folder", file=name)
        for f in files:
            data = f.read_bytes()
            if f.suffix == ".gz":
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError) as exc:
                    stats.problems.append(VigilError(f"not a readable gzip file: {exc}", file=str(f)))
                    continue
            yield from _read_bytes(data, str(f), stats)


def _read_bytes(data: bytes, name: str, stats: _Stats) -> Iterator[Event]:
    if data.lstrip()[:1] == b"[":
        try:
            docs = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            stats.problems.append(VigilError(f"invalid JSON array: {exc}", file=name))
            stats.skipped += 1
            return
        for i, doc in enumerate(docs):
            if isinstance(doc, dict):
                stats.events += 1
                yield Event(doc, origin=f"{name}[{i}]")
            else:
                stats.skipped += 1
                stats.problems.append(VigilError(f"item {i} is not a JSON object", file=name))
        return
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            stats.skipped += 1
            stats.problems.append(VigilError(f"invalid JSON: {exc}", file=name, line=lineno))
            continue
        if not isinstance(doc, dict):
            stats.skipped += 1
            stats.problems.append(VigilError("not a JSON object", file=name, line=lineno))
            continue
        stats.events += 1
        yield Event(doc, origin=f"{name}:{lineno}")


# --- output ---------------------------------------------------------------------------------


def _record(match: Any, kind: str) -> dict:
    if kind == "event":
        return match.events[0].doc
    return {
        "join_keys": list(match.join_keys),
        "events": [{"missing": True} if ev is None else ev.doc for ev in match.events],
    }


def _print(matches: Iterable, kind: str, fmt: str, args: argparse.Namespace) -> int:
    records = (_record(m, kind) for m in matches)
    if fmt == "ndjson":
        return output.write_ndjson(records)
    return _print_table(records, kind, args)


def _first(doc: dict, path: str) -> str:
    values = lookup(doc, path)
    return "" if not values else ", ".join(str(v) for v in values)


def _event_row(doc: dict, args: argparse.Namespace) -> list[str]:
    detail = next((f"{f}={_first(doc, f)}" for f in _DETAIL_FIELDS if _first(doc, f)), "")
    return [_first(doc, args.timestamp_field), _first(doc, args.event_category_field), detail]


def _print_table(records: Iterable[dict], kind: str, args: argparse.Namespace) -> int:
    from rich.table import Table

    table = Table(show_lines=kind != "event")
    if kind == "event":
        for col in ("timestamp", "category", "detail"):
            table.add_column(col)
    else:
        for col in ("#", "join keys", "timestamp", "category", "detail"):
            table.add_column(col)
    n = 0
    for rec in records:
        n += 1
        if kind == "event":
            table.add_row(*_event_row(rec, args))
            continue
        keys = ", ".join(str(k) for k in rec["join_keys"])
        for i, doc in enumerate(rec["events"]):
            row = (
                ["missing", "", ""] if doc.get("missing") is True and len(doc) == 1 else _event_row(doc, args)
            )
            table.add_row(str(n) if i == 0 else "", keys if i == 0 else "", *row)
    output.console().print(table)
    return n


def _summary(stats: _Stats, count: int) -> None:
    err = sys.stderr
    for problem in stats.problems[:20]:
        print(f"vigil: skipped: {problem.render()}", file=err)
    if len(stats.problems) > 20:
        print(f"vigil: ... and {len(stats.problems) - 20} more problems", file=err)
    if stats.skipped or stats.problems:
        print(f"vigil: {stats.events} events read, {stats.skipped} skipped, {count} matches", file=err)
