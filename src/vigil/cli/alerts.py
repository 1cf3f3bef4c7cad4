"""``vigil alerts``: list, show and triage stored alerts (a store file or a running server)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vigil.cli.output import add_format_option, console, dumps, resolve_format, write_ndjson
from vigil.eql.fields import lookup
from vigil.errors import VigilError
from vigil.store.alerts import STATUSES


def _source_options(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--store", metavar="PATH", help="store file written by vigil scan --store or vigil serve"
    )
    where.add_argument("--server", metavar="URL", help="a running vigil serve, e.g. http://127.0.0.1:9200")
    from vigil.server.client import add_token_options

    add_token_options(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("alerts", help="list, show and triage stored alerts")
    sub = p.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="alerts, newest first")
    _source_options(ls)
    ls.add_argument("--rule", help="rule id or name")
    ls.add_argument("--severity", choices=("low", "medium", "high", "critical"))
    ls.add_argument("--host", help="host.name")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--since", help="@timestamp at or after (ISO-8601)")
    ls.add_argument("--until", help="@timestamp at or before (ISO-8601)")
    ls.add_argument("--limit", type=int, default=None)
    add_format_option(ls)
    ls.set_defaults(func=cmd_list)

    show = sub.add_parser("show", help="one alert, in full")
    _source_options(show)
    show.add_argument("uuid")
    add_format_option(show)
    show.set_defaults(func=cmd_show)

    st = sub.add_parser("set-status", help="set kibana.alert.workflow_status")
    _source_options(st)
    st.add_argument("uuid")
    st.add_argument("status", choices=STATUSES)
    add_format_option(st)
    st.set_defaults(func=cmd_set_status)


class _Backend:
    """The same three calls, on a store file or on a server."""

    def __init__(self, args: argparse.Namespace) -> None:
        if args.server:
            from vigil.server.client import Client, resolve_token

            self._client: Any = Client(args.server, resolve_token(args.token, args.token_file))
            self._store = None
        else:
            from pathlib import Path

            from vigil.store.alerts import AlertStore

            if not Path(args.store).exists():
                raise VigilError(f"no store at {args.store}", file=args.store)
            self._store = AlertStore(args.store)
            self._client = None

    def list(self, **filters: Any) -> list[dict]:
        if self._store is not None:
            return self._store.list(**filters)
        return self._client.alerts(**filters)

    def get(self, uuid: str) -> dict | None:
        return self._store.get(uuid) if self._store is not None else self._client.alert(uuid)

    def set_status(self, uuid: str, status: str) -> dict:
        return (
            self._store.set_status(uuid, status)
            if self._store is not None
            else self._client.set_status(uuid, status)
        )


def _field(alert: dict, path: str) -> str:
    values = lookup(alert, path)
    return "" if not values else str(values[0])


COLUMNS = (
    ("time", "@timestamp"),
    ("rule", "kibana.alert.rule.name"),
    ("severity", "kibana.alert.severity"),
    ("host", "host.name"),
    ("status", "kibana.alert.workflow_status"),
    ("uuid", "kibana.alert.uuid"),
)


def cmd_list(args: argparse.Namespace) -> int:
    rows = _Backend(args).list(
        rule=args.rule,
        severity=args.severity,
        host=args.host,
        status=args.status,
        since=args.since,
        until=args.until,
        limit=args.limit,
    )
    if resolve_format(args) == "ndjson":
        write_ndjson(rows)
        return 0
    from rich.table import Table

    table = Table(title=f"{len(rows)} alert(s)")
    for name, _ in COLUMNS:
        table.add_column(name, overflow="fold")
    for alert in rows:
        table.add_row(*(_field(alert, path) for _, path in COLUMNS))
    console().print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    alert = _Backend(args).get(args.uuid)
    if alert is None:
        print(f"vigil: no alert {args.uuid}", file=sys.stderr)
        return 1
    if resolve_format(args) == "ndjson":
        write_ndjson([alert])
        return 0
    from rich.table import Table

    table = Table(title=_field(alert, "kibana.alert.rule.name") or args.uuid, show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    for path, value in sorted(_flatten(alert).items()):
        table.add_row(path, value)
    console().print(table)
    return 0


def _flatten(doc: dict, prefix: str = "") -> dict[str, str]:
    """Dotted field -> text, for a readable one-alert table."""
    out: dict[str, str] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, path + "."))
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            out[path] = dumps(value).decode()
        else:
            out[path] = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return out


def cmd_set_status(args: argparse.Namespace) -> int:
    alert = _Backend(args).set_status(args.uuid, args.status)
    if resolve_format(args) == "ndjson":
        write_ndjson([alert])
        return 0
    print(f"{args.uuid}: {_field(alert, 'kibana.alert.workflow_status')}")
    return 0
