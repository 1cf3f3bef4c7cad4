"""Prebuilt EQL rules that compare one field more than once inside one ``and``,
and events that meet them with the values split across an array.

Elasticsearch's EQL optimizer runs neither PropagateEquals nor
CombineBinaryComparisons (x-pack/plugin/eql/.../optimizer/Optimizer.java), so
each comparison is its own query and any value of an array may satisfy it:
``process.args == "-r" and process.args == "/"`` matches ``["rm", "-r", "/"]``
although no single value is both.

:func:`conjunction_groups` finds such comparisons by walking the parsed query.
:func:`case_for` writes the events of one rule: every positive condition adds
its own value to its field (an array when a field gets several), ranges take a
value outside the other bounds of the same field, so that no single value meets
the whole group, ``not`` and ``!=`` leave their fields alone (a ``must_not``
holds on a missing field), and an ``or`` takes the branch holding the group.
Its twin drops the value of the group's last comparison, so the rule must not
fire. A shape the builder does not know raises :class:`Unsupported`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from vigil.eql import ast
from vigil.eql import semantics as S
from vigil.eql.parser import parse
from vigil.eql.schema import Schema

ECS = Schema.ecs()
FILLER = "vigil-split-value"
# A value of the field's ECS type that no prebuilt rule singles out.
TYPED_FILLER = {"ip": "8.8.8.8", "long": 4242, "double": 42.5, "boolean": True}
_RANGE_STEP = 1000
_WILDCARD = re.compile(r"\\(.)|[*?]", re.DOTALL)


class Unsupported(Exception):
    """The query holds a condition this builder cannot meet."""


def _compared_field(expr: ast.Expr) -> tuple[ast.Field, str, ast.Expr] | None:
    """(field, op with the field on the left, constant) of a comparison with a
    non-null constant."""
    if not isinstance(expr, ast.Comparison):
        return None
    fld, other, op = expr.left, expr.right, expr.op
    if not isinstance(fld, ast.Field):
        fld, other, op = expr.right, expr.left, _FLIP[expr.op]
    if not isinstance(fld, ast.Field) or not S.is_constant(other) or S.is_null_literal(other, None):
        return None
    return fld, op, other


_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def conjunction_groups(expr: ast.Node) -> list[tuple[tuple[str, ...], tuple[ast.Comparison, ...]]]:
    """Every (field path, comparisons) where one ``and`` compares the field with
    constants (``==``, ``<``, ``<=``, ``>``, ``>=``) more than once."""
    out = []
    for node in ast.walk(expr):
        if not isinstance(node, ast.And):
            continue
        by_field: dict[tuple[str, ...], list[ast.Comparison]] = {}
        for term in S.flatten_and(node.terms):
            found = _compared_field(term)
            if found is not None and found[1] != "!=":
                by_field.setdefault(found[0].path, []).append(term)
        out.extend((path, tuple(cmps)) for path, cmps in by_field.items() if len(cmps) > 1)
    return out


def conditions(stmt: ast.Statement) -> Iterator[ast.Expr]:
    q = stmt.query
    if isinstance(q, ast.EventQuery):
        yield q.condition
        return
    for stage in q.stages:
        yield stage.query.condition
    if getattr(q, "until", None) is not None:
        yield q.until.query.condition


def rule_groups(query: str) -> list:
    """The same-field conjunctions of a rule's query (empty when it has none)."""
    return [g for c in conditions(parse(query)) for g in conjunction_groups(c)]


@dataclass
class _Doc:
    """The values a stage's event gets, field by field, in the order they were asked for."""

    targets: set[ast.Comparison]
    values: dict[tuple[str, ...], list] = field(default_factory=dict)
    given: dict[ast.Comparison, tuple[tuple[str, ...], object]] = field(default_factory=dict)
    negated: bool = False  # the group sits under a `not`: meeting it stops the rule

    def holds_target(self, expr: ast.Expr) -> bool:
        return any(n in self.targets for n in ast.walk(expr))

    def fill(self, path: tuple[str, ...]) -> None:
        """Give a field a value, if it has none (``x != null``, or ``not (x == null ...)``)."""
        if not self.values.get(path):
            ftype = S.field_spec(ast.Field(path), ECS).ftype
            self.add(path, TYPED_FILLER.get(ftype, FILLER))

    def add(self, path: tuple[str, ...], value: object) -> object:
        vals = self.values.setdefault(path, [])
        if value not in vals:
            vals.append(value)
        return value

    def meet(self, expr: ast.Expr) -> None:
        match expr:
            case ast.And(terms=ts):
                for t in ts:
                    self.meet(t)
            case ast.Or(terms=ts):
                self.meet(sorted(ts, key=lambda t: not self.holds_target(t))[0])
            case ast.Literal(value=True):
                pass
            case ast.Not() | ast.In(negated=True):
                if isinstance(expr, ast.Not):
                    inner = expr.expr
                else:
                    inner = ast.In(expr.value, expr.items, expr.insensitive, False)
                if self.holds_target(inner):
                    # An exclusion: meeting it makes the rule stop, as Elasticsearch would.
                    self.negated = not self.negated
                    self.meet(inner)
                    return
                if not S.is_query_condition(inner):
                    raise Unsupported(f"not of a script: {inner}")
                # A must_not holds on a missing field, but `not (x == null)` wants x.
                for n in ast.walk(inner):
                    if isinstance(n, ast.Comparison) and n.op == "==" and isinstance(n.left, ast.Field):
                        if isinstance(n.right, ast.Literal) and n.right.value is None:
                            self.fill(n.left.path)
            case ast.Comparison(op="!=", left=ast.Field(path=p), right=ast.Literal(value=None)):
                self.fill(p)
            case ast.Comparison(op="==", right=ast.Literal(value=None)):
                pass
            case ast.Comparison(op="!="):
                pass  # must_not of a term: holds on a missing field
            case ast.Comparison():
                found = _compared_field(expr)
                if found is None:
                    raise Unsupported(f"comparison {expr}")
                fld, op, const = found
                value = self.add(fld.path, _value_for(op, _literal(const)))
                self.given[expr] = (fld.path, value)
            case ast.In(value=ast.Field(path=p), items=(first, *_)):
                self.add(p, _literal(first))
            case ast.Pattern(op=op, value=ast.Field(path=p), patterns=(first, *_)) if op in (
                ":",
                "like",
                "like~",
            ):
                self.add(p, _fill(_literal(first), escapes=False))
            case ast.FunctionCall(name=name, args=(ast.Field(path=p), ast.Literal(value=str() as v))):
                kind = name.lower()
                # Prefix and wildcard queries (EQL's QueryTranslator): \\ escapes in the wildcard ones.
                if kind == "startswith":
                    self.add(p, v + "-" + FILLER)
                elif kind == "endswith":
                    self.add(p, FILLER + "-" + _fill(v, escapes=True))
                elif kind == "stringcontains":
                    self.add(p, FILLER + "-" + _fill(v, escapes=True) + "-" + FILLER)
                else:
                    raise Unsupported(f"function {name}")
            case ast.Field(path=p):
                self.add(p, True)
            case _:
                raise Unsupported(type(expr).__name__)


def _literal(expr: ast.Expr) -> object:
    if not isinstance(expr, ast.Literal):
        raise Unsupported(f"a computed constant {expr}")
    return expr.value


def _value_for(op: str, lit: object) -> object:
    """A value meeting ``value op lit`` and, for a range, far outside the other side:
    ``>= 200`` gets 1200, ``< 600`` gets -400, so that neither meets both."""
    if op == "==":
        return lit
    if not S.is_number(lit):
        raise Unsupported(f"a range on {lit!r}")
    return lit + _RANGE_STEP if op in (">", ">=") else lit - _RANGE_STEP


def _fill(pattern: object, *, escapes: bool) -> str:
    """A text the wildcard pattern matches (``*`` empty, ``?`` one letter)."""
    if not isinstance(pattern, str):
        raise Unsupported(f"pattern {pattern!r}")
    if not escapes:
        return pattern.replace("*", "").replace("?", "x")
    return _WILDCARD.sub(lambda m: m.group(1) or ("x" if m.group(0) == "?" else ""), pattern)


@dataclass
class Case:
    """One rule's events with the group's values split, and their twins without the
    last one: the events make the rule fire and the twins do not, or, when the group
    is an exclusion (under ``not``), the other way round."""

    rule_id: str
    name: str
    field: str
    events: list[dict]
    twins: list[dict]
    fires: bool = True


def _nest(values: dict[tuple[str, ...], list]) -> dict:
    doc: dict = {}
    for path, vals in values.items():
        node = doc
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = vals[0] if len(vals) == 1 else list(vals)
    return doc


def case_for(rule, number: int) -> Case:
    """The events of ``rule`` with the first same-field group's values split across
    an array, and their twins without the value of the group's last comparison.
    Each case has its own hour, join-key values and ``event.id`` prefixes
    (:func:`case_of`), so that all cases can be scanned as one file."""
    q = parse(rule.query).query
    stages: list[tuple[ast.EventQuery, tuple, int]]
    if isinstance(q, ast.EventQuery):
        stages = [(q, (), 1)]
    elif isinstance(q, ast.Sequence) and q.until is None and not any(s.missing for s in q.stages):
        stages = [(s.query, s.keys, s.runs) for s in q.stages]
    else:
        raise Unsupported("only event queries and plain sequences")
    groups = [(i, g) for i, (sq, _, _) in enumerate(stages) for g in conjunction_groups(sq.condition)]
    if not groups:
        raise Unsupported("no same-field conjunction")
    target_stage, (path, cmps) = groups[0]
    split: list[tuple[ast.EventQuery, tuple, int, dict]] = []
    dropped: list[tuple[ast.EventQuery, tuple, int, dict]] = []
    fires = True
    for i, (sq, keys, runs) in enumerate(stages):
        d = _Doc(targets=set(cmps) if i == target_stage else set())
        d.meet(sq.condition)
        twin = {p: list(v) for p, v in d.values.items()}
        if i == target_stage:
            if cmps[-1] not in d.given:
                raise Unsupported("the group's branch was not taken")
            fires = not d.negated
            gone = d.given[cmps[-1]][1]
            twin[path] = [v for v in twin[path] if v != gone]
            if not twin[path]:
                del twin[path]
        split.append((sq, keys, runs, d.values))
        dropped.append((sq, keys, runs, twin))
    start = datetime(2026, 11, 20, tzinfo=UTC) + timedelta(hours=number)
    events = _render(split, f"vigil-split-{number}", start)
    twins = _render(dropped, f"vigil-twin-{number}", start + timedelta(minutes=30))
    return Case(rule.rule_id, rule.name, ".".join(path), events, twins, fires)


def case_of(alert: dict) -> str | None:
    """The ``vigil-split-N`` / ``vigil-twin-N`` tag of the event an alert was raised on."""
    eid = alert.get("kibana.alert.original_event.id")
    return eid.rsplit("-", 1)[0] if isinstance(eid, str) and eid.startswith("vigil-") else None


def _render(stages, tag: str, start: datetime) -> list[dict]:
    out: list[dict] = []
    for sq, keys, runs, values in stages:
        for k in keys:
            if not isinstance(k, ast.Field):
                raise Unsupported("a join key that is not a field")
            values = {**values, k.path: [tag]}
        for _ in range(runs):
            doc = _nest(values)
            event = doc.setdefault("event", {})
            if sq.category is not None:
                event["category"] = sq.category
            event["id"] = f"{tag}-{len(out)}"
            # 100 ms apart: ten runs fit in the shortest maxspan of the class (1s).
            when = start + timedelta(milliseconds=100 * len(out))
            doc["@timestamp"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            out.append(doc)
    return out


def split_cases(rules) -> list[Case]:
    """A case for every runnable EQL rule of ``rules`` in the class."""
    affected = [r for r in rules if r.type == "eql" and r.runnable and rule_groups(r.query)]
    return [case_for(rule, n) for n, rule in enumerate(affected)]


def split_lines(rules) -> list[bytes]:
    """The events and twins of every case, as NDJSON lines, for the data of the
    equivalence tests (plain and fast paths, --jobs, Parquet, Spark)."""
    return [orjson.dumps(e) for e in split_docs(rules)]


def split_docs(rules, *, lists: bool = False) -> list[dict]:
    """The events and twins of every case; with ``lists`` every value is an array
    (Elasticsearch reads ``[v]`` as ``v``), so that a columnar file has one type per
    column, but for the time, the event id, the join keys and ``data_stream.*``,
    which stay text."""
    docs = [e for c in split_cases(rules) for e in c.events + c.twins]
    return [_as_lists(d) for d in docs] if lists else docs


def _as_lists(doc: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in doc.items():
        name = prefix + k
        if isinstance(v, dict):
            out[k] = _as_lists(v, name + ".")
        elif isinstance(v, list) or name.startswith(("@timestamp", "event.id", "data_stream.")):
            out[k] = v
        elif isinstance(v, str) and v.startswith("vigil-"):
            out[k] = v  # a join key or a filler
        else:
            out[k] = [v]
    return out
