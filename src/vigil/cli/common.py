"""Options and set-up that several commands share: rules, exceptions, the engine."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from vigil.engine import Engine
from vigil.errors import VigilError
from vigil.kql import KqlUnsupported
from vigil.rules.exceptions import ExceptionLists, load_exceptions
from vigil.rules.loaders import RuleSet, bundled_rules, load_rules


def add_rule_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rules",
        metavar="PATH",
        action="append",
        default=[],
        help="rule file or folder (detection-rules TOML, Kibana export NDJSON, package JSON); "
        "repeatable; the bundled rules when not given",
    )
    p.add_argument("--exceptions", metavar="FILE", help="Kibana exception-list export (NDJSON)")
    p.add_argument(
        "--exceptions-all",
        action="store_true",
        help="apply every exception item to every rule, not only to the rules naming its list",
    )
    p.add_argument("--strict", action="store_true", help="stop at the first broken rule, exception or event")
    add_long_values_option(p)


def add_long_values_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--match-long-values",
        action="store_true",
        help="also match strings longer than their field's ignore_above (1024 for ECS keywords), "
        "which Elasticsearch does not index and so never matches (see docs/semantics.md)",
    )


@dataclass
class Detection:
    """What a command runs: the loaded rules and an engine over the runnable ones."""

    ruleset: RuleSet
    exceptions: ExceptionLists | None
    engine: Engine

    @property
    def runnable(self) -> int:
        return len(self.engine.rules) + len(self.engine.scheduled)

    def not_runnable(self) -> dict[str, int]:
        """Loaded rules the engine cannot run yet, counted by type (never dropped silently)."""
        counts: dict[str, int] = {}
        for rule in self.ruleset.rules:
            if not rule.runnable:
                kind = _not_runnable_kind(rule)
                counts[kind] = counts.get(kind, 0) + 1
        return counts


def _not_runnable_kind(rule) -> str:
    """Why a rule does not run, as a short label: its type, its language, or a query
    that does not compile (a KQL construct Vigil cannot run exactly counts here)."""
    if rule.query_language == "eql":
        return "eql (query does not compile)"
    if rule.query_language == "kuery":
        kind = rule.type
        if kind != "query" and rule.scheduled_problem():
            return f"{kind} (parameters or filters)"
        try:
            rule.compiled()
        except KqlUnsupported:
            return f"{kind} (KQL construct not supported)"
        except Exception:  # noqa: BLE001 - any other failure is a query that does not compile
            pass
        return f"{kind} (KQL does not compile)"
    if rule.type == "query" and rule.language:
        return f"query ({rule.language})"
    return rule.type


def load_detection(args: argparse.Namespace, keep=None) -> Detection:
    """Rules (bundled when none are named), exceptions and the engine; problems reported on stderr.

    ``keep(rule)``: only the rules it accepts are run (``vigil watch``: the rules for this host)."""
    ruleset = load_rules(args.rules) if args.rules else bundled_rules()
    if keep is not None:
        ruleset.rules = [rule for rule in ruleset.rules if keep(rule)]
    _report(ruleset.problems, "rule", args.strict)
    for rule in ruleset.rules:
        rule.match_long_values = getattr(args, "match_long_values", False)
    exceptions = None
    if args.exceptions_all and not args.exceptions:
        raise VigilError("--exceptions-all needs --exceptions FILE")
    if args.exceptions:
        exceptions = load_exceptions(args.exceptions)
        _report(exceptions.problems, "exception", args.strict)
    engine = Engine(ruleset.rules, exceptions=exceptions, exceptions_all=args.exceptions_all)
    if not engine.rules and not engine.scheduled:
        raise VigilError(
            "no runnable rule loaded (see the problems above)"
            if ruleset.problems
            else "no runnable rule loaded"
        )
    return Detection(ruleset, exceptions, engine)


def _report(problems: list[VigilError], what: str, strict: bool) -> None:
    if problems and strict:
        raise VigilError(f"{what} problem (--strict): {problems[0].render()}")
    from vigil.sinks.terminal import visible

    for problem in problems:
        print(f"vigil: skipped {what}: {visible(problem.render(), lines=True)}", file=sys.stderr)
