"""Check rule files as Kibana would before it accepts them: load, schema, compile.

Every problem is a :class:`VigilError` with the file and line (and, for a query
that does not compile, the column in the file). One bad rule never hides the
others: every file is read and every rule checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vigil.errors import VigilError
from vigil.rules.loaders import RuleSet, load_rules
from vigil.rules.model import Rule

# The rule types of Kibana's detection engine (the `type` field of a security rule).
RULE_TYPES = frozenset(
    {"eql", "query", "saved_query", "threshold", "threat_match", "machine_learning", "new_terms", "esql"}
)
SEVERITIES = ("low", "medium", "high", "critical")
# The query language each type may use; machine_learning has none.
LANGUAGES = {
    "eql": {"eql"},
    "query": {"kuery", "lucene"},
    "saved_query": {"kuery", "lucene"},
    "threshold": {"kuery", "lucene"},
    "threat_match": {"kuery", "lucene"},
    "new_terms": {"kuery", "lucene"},
    "esql": {"esql"},
}
_INTERVAL = re.compile(r"[1-9]\d*[smhd]")
_FROM = re.compile(r"now(-\d+[smhdwMy])?")


@dataclass
class Report:
    """What ``validate`` found: the rules that loaded and every problem, in file order."""

    ruleset: RuleSet
    problems: list[VigilError] = field(default_factory=list)

    @property
    def rules(self) -> list[Rule]:
        return self.ruleset.rules

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(paths: Iterable[str | Path]) -> Report:
    """Load every rule under ``paths``, then check each; problems come sorted by file and line."""
    ruleset = load_rules(paths)
    report = Report(ruleset, list(ruleset.problems))
    texts: dict[str, str | None] = {}
    seen: dict[str, Rule] = {}
    for rule in ruleset.rules:
        text = _text(texts, rule.source)
        report.problems.extend(check_rule(rule, text))
        first = seen.setdefault(rule.rule_id, rule)
        if first is not rule:
            report.problems.append(
                _problem(
                    rule,
                    text,
                    "rule_id",
                    f"duplicate rule_id {rule.rule_id!r} (first in {first.source}:{first.line})",
                )
            )
    report.problems.sort(key=lambda p: (p.file or "", p.line or 0, p.column or 0))
    return report


def _text(cache: dict[str, str | None], source: str | None) -> str | None:
    if source is None:
        return None
    if source not in cache:
        try:
            cache[source] = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            cache[source] = None
    return cache[source]


def _is_toml(rule: Rule) -> bool:
    return bool(rule.source and rule.source.endswith(".toml"))


def _key_line(rule: Rule, text: str | None, key: str) -> int | None:
    """The line of ``key = ...`` in a TOML rule; the rule's own line elsewhere."""
    if text is None or not _is_toml(rule):
        return rule.line
    m = re.search(rf"^\s*{re.escape(key)}\s*=", text, re.MULTILINE)
    return text.count("\n", 0, m.start()) + 1 if m else rule.line


def _problem(rule: Rule, text: str | None, key: str, message: str) -> VigilError:
    err = VigilError(message, file=rule.source, line=_key_line(rule, text, key))
    err.rule_id = rule.rule_id  # type: ignore[attr-defined]
    return err


def check_rule(rule: Rule, text: str | None = None) -> list[VigilError]:
    """Problems of one loaded rule; ``text`` is its file's text, used to place them."""
    out: list[VigilError] = []

    def bad(key: str, message: str) -> None:
        out.append(_problem(rule, text, key, f"{rule.name}: {message}"))

    if rule.type not in RULE_TYPES:
        bad("type", f"unknown rule type {rule.type!r} (one of {', '.join(sorted(RULE_TYPES))})")
    if rule.severity not in SEVERITIES:
        bad("severity", f"severity {rule.severity!r} is not one of {', '.join(SEVERITIES)}")
    if not 0 <= rule.risk_score <= 100:
        bad("risk_score", f"risk_score {rule.risk_score} is outside 0-100")
    if not isinstance(rule.interval, str) or not _INTERVAL.fullmatch(rule.interval):
        bad("interval", f"interval {rule.interval!r} is not a duration such as 5m")
    if not isinstance(rule.from_, str) or not _FROM.fullmatch(rule.from_):
        bad("from", f"from {rule.from_!r} is not date math such as now-6m")
    if rule.max_signals < 1:
        bad("max_signals", f"max_signals {rule.max_signals} must be at least 1")
    allowed = LANGUAGES.get(rule.type)
    if allowed and rule.language is not None and rule.language not in allowed:
        bad("language", f"language {rule.language!r} does not fit a {rule.type} rule")
    if rule.type == "machine_learning":
        if not rule.raw.get("machine_learning_job_id"):
            bad("machine_learning_job_id", "a machine_learning rule needs machine_learning_job_id")
    elif rule.type in RULE_TYPES and rule.type != "saved_query" and not (rule.query or "").strip():
        bad("query", f"a {rule.type} rule needs a query")
    elif rule.type == "eql" or rule.language == "kuery":
        out.extend(_check_query(rule, text))
    if rule.type == "threat_match":
        out.extend(_check_threat(rule, text))
    return out


def _check_threat(rule: Rule, text: str | None) -> list[VigilError]:
    """An indicator match rule's threat parameters, as Kibana's schema takes them, and its
    threat query, which must parse (vigil.rules.threat_params)."""
    from vigil import kql
    from vigil.rules.threat_params import threat_match_params

    try:
        params = threat_match_params(rule.raw)
    except ValueError as exc:
        word = str(exc).split()[0]
        key = word if word.startswith(("threat_", "items_", "concurrent_")) else "threat_query"
        return [_problem(rule, text, key, f"{rule.name}: {exc}")]
    try:
        kql.parse(params.query)
    except kql.KqlSyntaxError as exc:
        where = f" (threat_query line {exc.line}, column {exc.column})" if exc.line else ""
        return [_problem(rule, text, "threat_query", f"{rule.name}: {exc.kind}{where}: {exc.message}")]
    return []


def _check_query(rule: Rule, text: str | None) -> list[VigilError]:
    """An EQL query must compile against ECS; a KQL query must parse (a construct Vigil
    does not run is no problem of the rule: Kibana accepts it)."""
    from vigil import eql, kql
    from vigil.eql.schema import Schema

    try:
        if rule.language == "kuery":
            kql.parse(rule.query)
        else:
            eql.compile(rule.query, schema=Schema.ecs())
    except eql.EqlError as exc:
        line, column = _query_position(rule, text, exc.line or 1, exc.column or 1)
        where = f" (query line {exc.line}, column {exc.column})" if exc.line else ""
        err = VigilError(
            f"{rule.name}: {exc.kind}{where}: {exc.message}",
            file=rule.source,
            line=line,
            column=column,
            source_line=_line_of(text, line) if column else None,
        )
        err.rule_id = rule.rule_id  # type: ignore[attr-defined]
        return [err]
    except Exception as exc:  # noqa: BLE001 - a compiler fault is still this rule's problem
        return [_problem(rule, text, "query", f"{rule.name}: query cannot be compiled: {exc}")]
    return []


def _line_of(text: str | None, line: int | None) -> str | None:
    if text is None or line is None:
        return None
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else None


def _query_position(rule: Rule, text: str | None, qline: int, qcol: int) -> tuple[int | None, int | None]:
    """Where line ``qline`` column ``qcol`` of the query sits in the rule's file."""
    if text is None:
        return rule.line, None
    if _is_toml(rule):
        m = re.search(r"^\s*query\s*=\s*('''|\"\"\"|'|\")", text, re.MULTILINE)
        if not m:
            return rule.line, None
        start_line = text.count("\n", 0, m.start()) + 1
        rest = text[m.end() :]
        if len(m.group(1)) == 3 and rest.startswith("\n"):
            # TOML trims the newline right after an opening triple quote.
            return start_line + qline, qcol
        col0 = m.end() - (text.rfind("\n", 0, m.end()) + 1)
        return start_line + qline - 1, (col0 + qcol) if qline == 1 else qcol
    # JSON: find the query's escaped text after the rule's line and count escaped characters.
    if rule.query is None:
        return rule.line, None
    lines = rule.query.split("\n")
    offset = sum(len(x) + 1 for x in lines[: qline - 1]) + qcol - 1
    base = sum(len(x) + 1 for x in text.split("\n")[: (rule.line or 1) - 1])
    for ascii_only in (True, False):
        escaped = json.dumps(rule.query, ensure_ascii=ascii_only)[1:-1]
        at = text.find(escaped, base)
        if at >= 0:
            pos = at + len(json.dumps(rule.query[:offset], ensure_ascii=ascii_only)[1:-1])
            return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1
    return rule.line, None
