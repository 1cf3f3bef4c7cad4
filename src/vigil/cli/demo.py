"""``vigil demo``: the whole job on the bundled defaults, to see what Vigil does in one command.

It scans the bundled sample of Linux endpoint events (a web server where an
intruder plants a Dracut module, among a package upgrade that writes modules
legitimately, an editor's swap file and routine activity) with the bundled
rules, keeps the alerts in an embedded store, and shows the investigation
guide of the rule that fired.
"""

from __future__ import annotations

import argparse
from importlib import resources

from vigil.cli import output, scan
from vigil.rules.loaders import bundled_rules
from vigil.sinks.table import alert_summary
from vigil.sinks.terminal import styled

SAMPLE = "linux-endpoint-events.ndjson"
DEFAULT_STORE = "vigil-demo.db"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="scan the bundled sample events with the bundled rules",
        description="Scan the bundled sample events with the bundled rules, keep the alerts in an "
        "embedded store and show the investigation guide of the first alert's rule.",
    )
    p.add_argument(
        "--store", metavar="PATH", default=DEFAULT_STORE, help=f"alert store file (default {DEFAULT_STORE})"
    )
    p.add_argument(
        "--format",
        choices=("table", "ndjson"),
        default="table",
        help="table for people (the default, even in a pipe), ndjson for the alert documents",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    fmt = args.format
    sample = resources.files("vigil") / "data" / "samples" / SAMPLE
    with resources.as_file(sample) as path:
        scan_args = argparse.Namespace(
            inputs=[str(path)],
            rules=[],
            exceptions=None,
            exceptions_all=False,
            strict=False,
            index=None,
            source=None,
            output=None,
            store=args.store,
            jobs=1,
            spark=None,
            format=fmt,
        )
        if fmt == "ndjson":
            return scan.run(scan_args)
        console = output.console()
        console.rule(styled(("Vigil demo", "bold"), ": bundled rules over bundled Linux endpoint events"))
        console.print(f"events: {SAMPLE} (bundled)   rules: bundled   store: {args.store}\n")
        first = _first_alert(scan_args)
        code = scan.run(scan_args)
    if first is None:
        return code
    rule = next(r for r in bundled_rules().rules if r.rule_id == first["rule_id"])
    from rich.markdown import Markdown

    console.print()
    console.rule(styled((rule.name, "bold"), ": investigation guide"))
    summary = first["summary"]
    console.print(
        styled(
            "First alert: ",
            (summary["process"], "bold"),
            " created ",
            (summary["file"], "bold"),
            f" on {summary['host']} at {summary['time']}\n",
        )
    )
    console.print(Markdown(rule.note or "(this rule has no investigation guide)"))
    console.rule()
    console.print(f"Stored alerts: vigil alerts list --store {args.store}")
    console.print(f"In a browser: vigil serve --store {args.store}, then open http://127.0.0.1:9200/ui/")
    return code


def _first_alert(scan_args: argparse.Namespace) -> dict | None:
    """The earliest alert of a quiet pre-run, to introduce the guide."""
    from vigil.engine import Engine
    from vigil.engine.batch import scan_paths

    engine = Engine(bundled_rules().rules)
    for alert in scan_paths(engine, scan_args.inputs):
        return {"rule_id": alert["kibana.alert.rule.rule_id"], "summary": alert_summary(alert)}
    return None
