"""``vigil query``: run one EQL query over event files, like Elasticsearch's EQL search API
(or, with ``--kql``, one KQL query as a custom query rule runs it; with ``--esql``, one
ES|QL query, printing its result table: :mod:`vigil.cli.esql_query`).

Event queries print the matching events; sequences and samples print one
object per match: ``{"join_keys": [...], "events": [doc | {"missing": true}, ...]}``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vigil.cli import output
from vigil.cli.common import add_long_values_option
from vigil.eql.fields import lookup
from vigil.errors import VigilError
from vigil.events.readers import ReadStats, read_inputs

# Columns of the table view beyond timestamp and category: the first present wins.
_DETAIL_FIELDS = ("process.name", "file.path", "destination.ip", "dns.question.name", "user.name", "message")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "query",
        help="run an EQL (or KQL) query over event files",
        description="Run one EQL query (event, sequence or sample) over NDJSON / JSON / .gz event files "
        "or standard input, with the options of Elasticsearch's EQL search API. With --kql the query "
        "is KQL, with the meaning a Kibana custom query rule gives it.",
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
    add_long_values_option(p)
    p.add_argument(
        "--kql",
        action="store_true",
        help="the query is KQL (Kibana Query Language), e.g. 'process.name: sh and not user.name: root'",
    )
    p.add_argument(
        "--esql",
        action="store_true",
        help="the query is ES|QL, e.g. 'FROM logs-* | WHERE process.name == \"sh\" | STATS n = COUNT(*) "
        "BY host.name': prints the result table (docs/esql.md)",
    )
    p.add_argument(
        "--source",
        choices=("ecs", "sentinelone", "endgame"),
        default=None,
        help="shape of the input events (detected per event when not given)",
    )
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
    if args.esql:
        from vigil.cli.esql_query import run_esql

        return run_esql(args)
    if args.kql and args.mapping is not None:
        raise VigilError("--mapping applies to EQL queries: KQL takes field types from ECS")
    schema = None if args.kql else _schema(args.mapping)
    query = _compile(args, schema)
    fmt = output.resolve_format(args)
    stats = ReadStats()
    paths = args.files or ["-"]
    with output.progress("reading events") as bar:
        events = output.advancing(read_inputs(paths, source=args.source, stats=stats), bar)
        matches = query.run(events, doc=lambda ev: ev.doc)
        count = _print(matches, query.kind, fmt, args)
    output.report_reading(stats, f"{count} matches")
    return output.exit_status(paths, stats)


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
    from vigil.eql.query import QueryOptions

    options = QueryOptions(
        timestamp_field=args.timestamp_field,
        tiebreaker_field=args.tiebreaker,
        event_category_field=args.event_category_field,
        size=args.size,
        max_samples_per_key=args.max_samples_per_key,
        match_long_values=args.match_long_values,
    )
    if args.kql:
        from vigil import kql

        return kql.compile(args.query, options=options)
    return eql.compile(args.query, schema=schema, options=options)


# --- reading -----------------------------------------------------------------------------


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
