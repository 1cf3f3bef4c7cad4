"""Literals that an event's raw JSON text must contain for a query to match it.

Most events cannot match a given rule, and many rules name a literal that any
matching event must carry (``file.path like~ "/usr/lib/dracut/modules.d/*"``
needs ``/usr/lib/dracut/modules.d/`` somewhere in the line). Checking for the
literal in the raw bytes is far cheaper than parsing the JSON, so a scanner can
rule lines out before parsing them.

The analysis is conservative: a :class:`Requirement` never rules out a line the
query could match. Its traps and how they are handled:

- JSON escapes: ``\\/`` and ``\\u0064`` spell characters without the characters
  themselves, so a line holding either escape is always admitted. Backslashes and
  quotes inside a literal are looked for in their escaped JSON form.
- Case: lines and literals are compared lower-cased (a superset of case-sensitive
  matching). Unicode case folding can turn a non-ASCII character into an ASCII one
  (the Kelvin sign folds to ``k``), so a line with any non-ASCII byte is admitted,
  and non-ASCII literals are not used.
- Types: a keyword field written as a JSON number (``user.id: 0``) still shows its
  digits, but dates, IPs, versions and numbers can be written in forms that do not
  contain the query's literal (epoch millis for an ISO date), so only literals
  compared with string-typed fields count, and a literal that reads as a number is
  never used.
- ``not``, ``!=`` and ``not in`` give nothing: an absent literal cannot make them false.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from vigil.eql import ast

# Field types whose indexed value is the JSON string (or the number's text) as written.
STRING_TYPES = frozenset({"keyword", "constant_keyword", "wildcard", "text", "match_only_text"})
MIN_LITERAL = 3
_NUMBER = re.compile(r"^\s*[-+]?(\d++(?:\.\d*+)?|\.\d++)([eE][-+]?\d++)?\s*$")
# Functions that are true only when their second argument occurs in their first.
_CONTAINING_FUNCTIONS = frozenset({"startswith", "endswith", "stringcontains"})

Clause = frozenset[bytes]


@dataclass(frozen=True, slots=True)
class Requirement:
    """Every clause must have one of its literals in the lower-cased raw line."""

    clauses: tuple[Clause, ...]

    def admits(self, line: bytes) -> bool:
        if not self.clauses or not line.isascii() or b"\\u" in line or b"\\/" in line:
            return True
        low = line.lower()
        for clause in self.clauses:
            for lit in clause:
                if lit in low:
                    break
            else:
                return False
        return True


NO_REQUIREMENT = Requirement(())
FieldTyper = Callable[[str], "str | None"]


def requirement(node: ast.Node, field_type: FieldTyper | None = None, *, max_clauses: int = 2) -> Requirement:
    """The literals any event matching ``node`` (a Statement, query or condition) must contain."""
    typer = field_type or (lambda name: None)
    clauses = _query_clauses(node, typer)
    clauses.sort(key=_selectivity, reverse=True)
    return Requirement(tuple(clauses[:max_clauses]))


def _selectivity(clause: Clause) -> tuple[int, int]:
    # A clause is as strong as its weakest (shortest) alternative; fewer alternatives is better.
    return (min(len(lit) for lit in clause), -len(clause))


def _query_clauses(node: ast.Node, typer: FieldTyper) -> list[Clause]:
    match node:
        case ast.Statement(query=q):
            return _query_clauses(q, typer)
        case ast.EventQuery(condition=c):
            return _clauses(c, typer)
        case ast.Sequence(stages=stages, until=until):
            # An event matters if it can match any stage (missing ones and until included).
            queries = [s.query for s in stages] + ([until.query] if until is not None else [])
            return _any_of([_clauses(q.condition, typer) for q in queries])
        case ast.Sample(stages=stages):
            return _any_of([_clauses(s.query.condition, typer) for s in stages])
        case ast.Expr():
            return _clauses(node, typer)
    return []


def _any_of(branches: list[list[Clause]]) -> list[Clause]:
    """The requirement of an OR: one clause joining each branch's strongest clause."""
    if not branches or any(not b for b in branches):
        return []
    joined: set[bytes] = set()
    for b in branches:
        joined |= max(b, key=_selectivity)
    return [frozenset(joined)]


def _clauses(expr: ast.Expr, typer: FieldTyper) -> list[Clause]:
    match expr:
        case ast.And(terms=terms):
            return [c for t in terms for c in _clauses(t, typer)]
        case ast.Or(terms=terms):
            return _any_of([_clauses(t, typer) for t in terms])
        case (
            ast.Comparison(op="==", left=ast.Field() as f, right=ast.Literal(value=str() as v))
            | ast.Comparison(op="==", left=ast.Literal(value=str() as v), right=ast.Field() as f)
        ):
            return _clause(f, [v], typer)
        case ast.In(value=ast.Field() as f, items=items, negated=False):
            values = [i.value for i in items if isinstance(i, ast.Literal)]
            if len(values) != len(items) or not all(isinstance(v, str) for v in values):
                return []
            return _clause(f, values, typer)
        case ast.Pattern(op=":" | "like" | "like~" as op, value=ast.Field() as f, patterns=patterns):
            chunks = []
            for p in patterns:
                if not isinstance(p, ast.Literal) or not isinstance(p.value, str):
                    return []
                # For ":" on a non-string value Elasticsearch compares as equality; the
                # literal is still the value's text. Wildcards split the pattern.
                parts = (
                    re.split(r"[*?]", p.value) if op != ":" or "*" in p.value or "?" in p.value else [p.value]
                )
                chunks.append(max(parts, key=len))
            return _clause(f, chunks, typer)
        case ast.FunctionCall(name=name, args=(ast.Field() as f, ast.Literal(value=str() as v))) if (
            name.lower() in _CONTAINING_FUNCTIONS
        ):
            return _clause(f, [_function_literal(name, v)], typer)
    return []


def _function_literal(name: str, arg: str) -> str:
    """Text a value must contain for ``name(field, arg)`` to hold. ES runs endsWith and
    stringContains on a field as wildcard queries, so their argument is a Lucene
    wildcard pattern (``*``, ``?``, ``\\`` escaping): its longest literal run counts
    (see ``semantics.query_function_match``); startsWith is a plain prefix query."""
    if name.lower() == "startswith":
        return arg
    runs, run, i = [], [], 0
    while i < len(arg):
        ch = arg[i]
        if ch == "\\" and i + 1 < len(arg):
            run.append(arg[i + 1])
            i += 2
            continue
        if ch in "*?":
            runs.append("".join(run))
            run = []
        else:
            run.append(ch)
        i += 1
    runs.append("".join(run))
    return max(runs, key=len)


def _clause(field: ast.Field, values: list[str], typer: FieldTyper) -> list[Clause]:
    ftype = typer(field.name)
    if ftype is not None and ftype not in STRING_TYPES:
        return []
    lits = set()
    for v in values:
        lit = _raw_literal(v)
        if lit is None:
            return []
        lits.add(lit)
    return [frozenset(lits)] if lits else []


def _raw_literal(value: str) -> bytes | None:
    """The lower-cased bytes a JSON string holding ``value`` must contain, or None if unusable."""
    if len(value) < MIN_LITERAL or not value.isascii() or _NUMBER.match(value):
        return None
    if any(ord(c) < 0x20 for c in value):
        return None
    return value.lower().replace("\\", "\\\\").replace('"', '\\"').encode()


# --- field anchors ---------------------------------------------------------------------
#
# The same analysis on the parsed document: a condition that can only be true when a
# string field equals (or contains) one of a few values. Reading one field of a parsed
# event is cheaper than searching the raw line, JSON escapes are already decoded, and
# equality can be looked up in a dictionary, so many rules cost one lookup together.


@dataclass(frozen=True, slots=True)
class FieldAnchor:
    """A matching event has a string value of ``path`` that, lower-cased, equals
    (``exact``) or contains one of ``values`` (lower-cased). A value that is not an
    ASCII string proves nothing, so it admits the event. An ``exists`` anchor only
    says the field has a value: a comparison with a missing or null field is false."""

    path: tuple[str, ...]
    exact: bool
    values: frozenset[str]
    exists: bool = False  # only: the field has a value (``values`` empty)


# Fields with few distinct values in endpoint data: an anchor on them rules out little.
_COMMON_FIELDS = ("event.", "host.os.", "agent.", "data_stream.", "ecs.", "network.", "user.domain")


# Field sets most endpoint events carry: that one of their fields exists says little.
_POPULOUS = ("process.", "host.", "user.", "file.", "source.", "destination.", "dll.", "registry.", "@")


def _badness(a: FieldAnchor) -> tuple[bool, bool, bool]:
    name = ".".join(a.path)
    common = name.startswith(_COMMON_FIELDS) or ".code_signature." in name
    return (common or (a.exists and name.startswith(_POPULOUS)), a.exists, not a.exact)


def field_anchors(
    condition: ast.Expr, field_type: FieldTyper | None = None
) -> tuple[FieldAnchor, ...] | None:
    """Anchors of which a matching event satisfies at least one (an ``or`` gives one per
    branch), chosen for selectivity among the condition's ``and`` terms; None if none."""
    typer = field_type or (lambda name: None)
    options = _anchor_options(condition, typer)
    if not options:
        return None
    return min(options, key=lambda o: (max(_badness(a) for a in o), len(o)))


def anchor_conjuncts(
    condition: ast.Expr, field_type: FieldTyper | None = None
) -> list[tuple[FieldAnchor, ...]]:
    """Every anchor option of a condition, most selective first: a matching event
    satisfies one anchor of *each* option (the ``and`` terms of the condition), so
    :func:`field_anchors` is the first and the others may narrow it further."""
    typer = field_type or (lambda name: None)
    options = _anchor_options(condition, typer)
    return sorted(options, key=lambda o: (max(_badness(a) for a in o), len(o)))


def field_anchor(condition: ast.Expr, field_type: FieldTyper | None = None) -> FieldAnchor | None:
    """The single most selective anchor of a condition, or None (see :func:`field_anchors`)."""
    found = field_anchors(condition, field_type)
    return found[0] if found is not None and len(found) == 1 else None


def _anchor_options(expr: ast.Expr, typer: FieldTyper) -> list[tuple[FieldAnchor, ...]]:
    match expr:
        case ast.And(terms=terms):
            return [o for t in terms for o in _anchor_options(t, typer)]
        case ast.Or(terms=terms):
            joined: list[FieldAnchor] = []
            for t in terms:
                opts = _anchor_options(t, typer)
                if not opts:
                    return []
                joined.extend(min(opts, key=lambda o: (max(_badness(a) for a in o), len(o))))
            return [tuple(joined)]
    a = _anchor(expr, typer)
    return [(a,)] if a is not None else []


def _anchor_value(value: object) -> str | None:
    if not isinstance(value, str) or not value or not value.isascii() or _NUMBER.match(value):
        return None
    return value.lower()


def _anchor(expr: ast.Expr, typer: FieldTyper) -> FieldAnchor | None:
    match expr:
        case (
            ast.Comparison(op="==", left=ast.Field() as f, right=ast.Literal(value=v))
            | ast.Comparison(op="==", left=ast.Literal(value=v), right=ast.Field() as f)
        ) if v is not None:
            found = _make_anchor(f, [v], True, typer)
            if found is None and not f.optional:
                # A comparison with a missing or null field is false.
                return FieldAnchor(f.path, False, frozenset(), exists=True)
            return found
        case (
            ast.Comparison(
                op="<" | ">" | "<=" | ">=" | "==", left=ast.Field() as f, right=ast.Literal(value=v)
            )
            | ast.Comparison(
                op="<" | ">" | "<=" | ">=" | "==", left=ast.Literal(value=v), right=ast.Field() as f
            )
            | ast.Comparison(op="!=", left=ast.Field() as f, right=ast.Literal(value=None) as v)
        ) if not f.optional and (v is not None or expr.op == "!="):
            # A comparison with a missing or null field is false; ``x != null`` means x has a value.
            return FieldAnchor(f.path, False, frozenset(), exists=True)
        case ast.Pattern(op="regex" | "regex~", value=ast.Field() as f) if not f.optional:
            return FieldAnchor(f.path, False, frozenset(), exists=True)
        case ast.In(value=ast.Field() as f, items=items, negated=False):
            if not all(isinstance(i, ast.Literal) for i in items):
                return None
            return _make_anchor(f, [i.value for i in items], True, typer)
        case ast.Pattern(op=":" | "like" | "like~", value=ast.Field() as f, patterns=patterns):
            if not all(isinstance(p, ast.Literal) and isinstance(p.value, str) for p in patterns):
                return None
            values = [p.value for p in patterns]
            if not any("*" in v or "?" in v or "\\" in v for v in values):
                return _make_anchor(f, values, True, typer)
            chunks = [max(re.split(r"[*?]", v), key=len) for v in values]
            if any(len(c) < MIN_LITERAL for c in chunks):
                return None
            return _make_anchor(f, chunks, False, typer, numbers_ok=True)
        case ast.FunctionCall(name=name, args=(ast.Field() as f, ast.Literal(value=str() as v))) if (
            name.lower() in _CONTAINING_FUNCTIONS and len(lit := _function_literal(name, v)) >= MIN_LITERAL
        ):
            return _make_anchor(f, [lit], False, typer, numbers_ok=True)
    return None


def _make_anchor(
    field: ast.Field, values: list, exact: bool, typer: FieldTyper, numbers_ok: bool = False
) -> FieldAnchor | None:
    ftype = typer(field.name)
    if field.optional or (ftype is not None and ftype not in STRING_TYPES):
        return None
    out = set()
    for v in values:
        if numbers_ok and isinstance(v, str) and v and v.isascii() and all(ord(c) >= 0x20 for c in v):
            out.add(v.lower())
            continue
        lv = _anchor_value(v)
        if lv is None:
            return None
        out.add(lv)
    return FieldAnchor(field.path, exact, frozenset(out)) if out else None
