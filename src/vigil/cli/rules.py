"""``vigil rules``: list, show and validate detection rules (bundled, files, or a running server)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from vigil.cli import output
from vigil.errors import VigilError
from vigil.rules.model import ML_REASON


def _rules_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="PATH",
        help="rule file or folder: detection-rules TOML, Kibana export NDJSON, package JSON "
        "(repeatable; default: the rules bundled with Vigil)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rules",
        help="list, show and validate detection rules",
        description="Elastic detection rules as Vigil loads them: every type is loaded and counted; "
        "EQL rules, and KQL custom query, threshold and new terms rules whose query compiles, are runnable.",
    )
    sub = p.add_subparsers(dest="rules_command", metavar="ACTION", required=True)

    ls = sub.add_parser(
        "list",
        help="one line per rule, then counts by type, runnable and problems",
        description="List rules with their schedule, severity and whether Vigil can run them. "
        "Other rule types, and KQL queries with constructs Vigil cannot run exactly, "
        "are loaded and listed as not runnable yet.",
    )
    where = ls.add_mutually_exclusive_group()
    where.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="PATH",
        help="rule file or folder (repeatable; default: the rules bundled with Vigil)",
    )
    where.add_argument("--server", metavar="URL", help="the rules of a running vigil serve")
    from vigil.server.client import add_token_options

    add_token_options(ls)
    output.add_format_option(ls)
    ls.set_defaults(func=cmd_list)

    show = sub.add_parser(
        "show",
        help="one rule, laid out like its page in Elastic's rule reference",
        description="Show one rule: metadata, investigation guide, setup, query and MITRE ATT&CK. "
        "With --format ndjson, the rule as one JSON object in the shape of a Kibana rule export.",
    )
    show.add_argument("rule", metavar="RULE", help="rule_id, a unique prefix of it, or part of the name")
    _rules_option(show)
    output.add_format_option(show)
    show.set_defaults(func=cmd_show)

    val = sub.add_parser(
        "validate",
        help="load and compile rule files, list every problem with file and line",
        description="Check each rule as Kibana would before accepting it (required fields, type, "
        "severity, risk score, schedule, language), compile every EQL query and parse every KQL query. "
        "Exits 1 when there is any problem, 0 when every rule is good.",
    )
    val.add_argument("paths", metavar="PATH", nargs="+", help="rule files or folders")
    output.add_format_option(val)
    val.set_defaults(func=cmd_validate)


# --- loading ------------------------------------------------------------------------------


def _load(paths: list[str]):
    from vigil.rules import bundled_rules, load_rules

    return load_rules(paths) if paths else bundled_rules()


def _report_problems(problems: list[VigilError]) -> None:
    output.report_problems(problems)


def _counts(counter: Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def summary_line(rows: list[dict], problems: int) -> str:
    """``N rules (eql 1, ...); R runnable, M not yet runnable (query 3, ...); P problems``."""
    by_type = Counter(r.get("type") or "?" for r in rows)
    runnable = sum(1 for r in rows if r.get("runnable"))
    waiting = Counter(r.get("type") or "?" for r in rows if not r.get("runnable"))
    text = f"{len(rows)} rule{'s' if len(rows) != 1 else ''}"
    if any(r.get("type") for r in rows):
        text += f" ({_counts(by_type)})"
    text += f"; {runnable} runnable, {len(rows) - runnable} not yet runnable"
    if waiting and any(r.get("type") for r in rows):
        text += f" ({_counts(waiting)})"
    text += f"; {problems} problem{'s' if problems != 1 else ''}"
    if waiting.get("machine_learning"):
        text += f"; {ML_REASON}"
    return text


# --- list ----------------------------------------------------------------------------------


def _row(rule: Any) -> dict:
    return {
        "rule_id": rule.rule_id,
        "name": rule.name,
        "type": rule.type,
        "severity": rule.severity,
        "risk_score": rule.risk_score,
        "interval": rule.interval,
        "from": rule.from_,
        "max_signals": rule.max_signals,
        "enabled": rule.enabled,
        "runnable": rule.runnable,
        "why_not_runnable": rule.why_not_runnable,
        "building_block": rule.building_block_type is not None,
        "version": rule.version,
        "source": rule.source,
    }


def cmd_list(args: argparse.Namespace) -> int:
    fmt = output.resolve_format(args)
    problems: list[VigilError] = []
    if args.server:
        from vigil.server.client import Client, resolve_token

        rows = Client(args.server, resolve_token(args.token, args.token_file)).rules()
    else:
        ruleset = _load(args.rules)
        problems = list(ruleset.problems)
        rows = []
        with output.progress("compiling rules", total=len(ruleset.rules)) as bar:
            for rule in ruleset.rules:
                rows.append(_row(rule))
                bar.advance()
    rows.sort(key=lambda r: (str(r.get("name", "")).lower(), str(r.get("rule_id", ""))))
    _report_problems(problems)
    summary = summary_line(rows, len(problems))
    if fmt == "ndjson":
        output.write_ndjson(rows)
        print(f"vigil: {summary}", file=sys.stderr)
        return 0
    _table(rows)
    output.console().print(summary)
    return 0


def _yes(value: Any) -> str:
    if value is None:
        return ""
    return "yes" if value else "no"


def _table(rows: list[dict]) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, kw in (
        ("rule_id", {"no_wrap": True}),
        ("name", {"overflow": "fold", "ratio": 1}),
        ("type", {"no_wrap": True}),
        ("severity", {"no_wrap": True}),
        ("risk", {"justify": "right"}),
        ("every/from", {"no_wrap": True}),
        ("enabled", {}),
        ("runnable", {}),
    ):
        table.add_column(name, **kw)
    for r in rows:
        table.add_row(
            str(r.get("rule_id", ""))[:8],
            str(r.get("name", "")),
            str(r.get("type") or ""),
            str(r.get("severity") or ""),
            "" if r.get("risk_score") is None else str(r["risk_score"]),
            f"{r.get('interval') or ''}/{r.get('from') or ''}",
            _yes(r.get("enabled")),
            _yes(r.get("runnable")),
        )
    output.console().print(table)


# --- show ----------------------------------------------------------------------------------


def find_rule(rules: list[Any], key: str) -> Any:
    """The one rule named by ``key``: its rule_id, a unique rule_id prefix, or a name substring."""
    exact = [r for r in rules if r.rule_id == key]
    if exact:
        return exact[0]
    by_prefix = [r for r in rules if r.rule_id.startswith(key)]
    if len(by_prefix) == 1:
        return by_prefix[0]
    folded = key.casefold()
    by_name = [r for r in rules if folded in r.name.casefold()]
    same_name = [r for r in by_name if r.name.casefold() == folded]
    if len(same_name) == 1:
        return same_name[0]
    candidates = by_prefix or by_name
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise VigilError(f"no rule has the id, id prefix or name {key!r} (see: vigil rules list)")
    shown = "; ".join(f"{r.rule_id[:8]} {r.name}" for r in candidates[:5])
    more = f" and {len(candidates) - 5} more" if len(candidates) > 5 else ""
    raise VigilError(f"{key!r} names {len(candidates)} rules: {shown}{more}; give more of the rule_id")


def cmd_show(args: argparse.Namespace) -> int:
    from vigil.rules.render import kibana_rule, render_markdown

    ruleset = _load(args.rules)
    rule = find_rule(ruleset.rules, args.rule)
    if output.resolve_format(args) == "ndjson":
        output.write_ndjson([kibana_rule(rule)])
        return 0
    from rich.markdown import Markdown

    from vigil.sinks.terminal import styled

    con = output.console()
    con.print(Markdown(render_markdown(rule), code_theme="ansi_dark", hyperlinks=False))
    why = rule.why_not_runnable
    status = "runnable" if why is None else f"not runnable yet: {why}"
    con.print(styled((f"\n{rule.source}:{rule.line} · rule_id {rule.rule_id} · {status}", "dim")))
    return 0


# --- validate ------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from vigil.rules.validate import validate

    fmt = output.resolve_format(args)
    report = validate(args.paths)
    rules = len(report.rules)
    if fmt == "ndjson":
        output.write_ndjson(
            {
                "file": p.file,
                "line": p.line,
                "column": p.column,
                "rule_id": getattr(p, "rule_id", None),
                "message": p.message,
            }
            for p in report.problems
        )
    else:
        for problem in report.problems:
            output.say(problem.render(), sys.stdout)
    n = len(report.problems)
    if n:
        print(f"vigil: {n} problem{'s' if n != 1 else ''} in {rules} rules loaded", file=sys.stderr)
        return 1
    if rules == 0:
        print("vigil: no rules found", file=sys.stderr)
        return 1
    print(f"vigil: {rules} rule{'s' if rules != 1 else ''} valid", file=sys.stderr)
    return 0
