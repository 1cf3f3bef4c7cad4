"""``vigil serve``: receive events over HTTP, run every enabled rule on its schedule."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from vigil.cli.common import add_long_values_option
from vigil.cli.output import add_format_option, write_ndjson
from vigil.scheduler.windows import duration_ms


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run rules on a schedule over events shipped over HTTP (Elasticsearch _bulk compatible)",
        description="Store events sent to POST /_bulk or POST /events/<index> and run each enabled rule "
        "every `interval` over [now - from, now], as Kibana does. REST API under /api, health at /health, triage pages at /ui/.",
    )
    p.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="PATH",
        help="rule file or folder (repeatable; default: bundled rules)",
    )
    p.add_argument(
        "--exceptions",
        metavar="FILE",
        help="Kibana exception lists (NDJSON export) for the rules naming them",
    )
    p.add_argument(
        "--exceptions-all",
        action="store_true",
        help="apply every exception item in --exceptions to every rule",
    )
    p.add_argument(
        "--data", default="vigil-data", metavar="DIR", help="where the store lives (default: ./vigil-data)"
    )
    p.add_argument(
        "--store",
        metavar="FILE",
        help="the store file itself, e.g. one written by vigil scan --store or vigil demo (default: DIR/vigil.db)",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:9200",
        metavar="ADDR",
        help="HOST:PORT (default 127.0.0.1:9200; port 0 picks one)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("VIGIL_TOKEN") or None,
        help="bearer token required on every request (mandatory off loopback; default: $VIGIL_TOKEN, "
        "which keeps it out of the process list)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name clients may use besides the address listened on (repeatable; needed for a DNS "
        "name on a specific address; on 0.0.0.0 without it any Host is answered, a token being required)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=64,
        metavar="N",
        help="connections served at once, one thread each; more are answered 503 (default 64)",
    )
    p.add_argument(
        "--idle-timeout",
        default="30s",
        metavar="DURATION",
        help="close a connection whose next request head has not fully arrived by then (default 30s)",
    )
    p.add_argument(
        "--run-timeout",
        default="5m",
        metavar="DURATION",
        help="cut a rule run off after this long, keeping its alerts so far (default 5m, as Kibana)",
    )
    add_long_values_option(p)
    p.add_argument("--retention", default="7d", help="drop events ingested longer ago than this (default 7d)")
    p.add_argument("--verbose", "-v", action="store_true", help="log each run and request")
    add_format_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vigil.server.main import serve
    from vigil.server.transport import Limits

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    retention = duration_ms(args.retention, what="--retention")

    # The start-up line is a log line people and scripts already read as text: ndjson only on request.
    fmt = args.format or "table"

    def announce(line: str, facts: dict) -> None:
        if fmt == "ndjson":
            write_ndjson([facts])
        else:
            print(line, flush=True)

    return serve(
        rule_paths=args.rules,
        exceptions_path=args.exceptions,
        data_dir=Path(args.data),
        store=args.store,
        listen=args.listen,
        token=args.token,
        retention_ms=retention,
        exceptions_all=args.exceptions_all,
        match_long_values=args.match_long_values,
        allow_hosts=args.allow_host,
        limits=Limits(
            max_connections=max(1, args.max_connections),
            head_timeout=duration_ms(args.idle_timeout, what="--idle-timeout") / 1000,
        ),
        run_timeout_s=duration_ms(args.run_timeout, what="--run-timeout") / 1000,
        announce=announce,
    )
