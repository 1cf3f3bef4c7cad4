"""Which rules an event can reach: index patterns, event category and raw-line literals.

Routing only ever narrows the rules an event is tested against; each test is
still the rule's full compiled query, so a route that is too wide costs time and
never changes an alert. The category of an event query is an exact keyword
comparison with ``event.category`` (EQL's ``process where``), so an event whose
category values are all strings reaches only the rules of those categories (and
``any``); any other shape (numbers, objects, dotted keys the fast read misses)
reaches every rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vigil.eql import ast
from vigil.eql.fields import lookup
from vigil.eql.literals import Requirement, requirement
from vigil.eql.schema import Schema
from vigil.events.model import Event

_ECS: Schema | None = None


def _ecs_typer() -> Callable[[str], str | None]:
    global _ECS
    if _ECS is None:
        _ECS = Schema.ecs()
    schema = _ECS

    def typer(name: str) -> str | None:
        try:
            return schema.field_type(name)
        except Exception:  # noqa: BLE001 - an unknown field has no known type
            return None

    return typer


@dataclass(slots=True)
class RulePlan:
    """A runnable rule with what routing knows of it."""

    rule: object
    query: object
    categories: frozenset[str] | None  # None: any category
    requirement: Requirement
    streamable: bool  # a sequence or sample that can run on events fed in timestamp order

    def admits_clean(self, low: bytes) -> bool:
        """The lower-cased raw line (ASCII, no JSON escapes) holds a literal of every clause."""
        for clause in self.requirement.clauses:
            for lit in clause:
                if lit in low:
                    break
            else:
                return False
        return True


def query_categories(statement: ast.Statement) -> frozenset[str] | None:
    """The event categories a query's events can have; None when any category can match."""
    q = statement.query
    if isinstance(q, ast.EventQuery):
        queries = [q]
    elif isinstance(q, ast.Sequence):
        queries = [s.query for s in q.stages] + ([q.until.query] if q.until is not None else [])
    elif isinstance(q, ast.Sample):
        queries = [s.query for s in q.stages]
    else:
        return None
    cats = set()
    for eq in queries:
        if eq.category is None:
            return None
        cats.add(eq.category)
    return frozenset(cats)


def plan(rule) -> RulePlan:
    query = rule.compiled()
    stmt = query.statement
    return RulePlan(
        rule=rule,
        query=query,
        categories=query_categories(stmt),
        requirement=requirement(stmt, _ecs_typer()),
        streamable=query.kind != "event" and not stmt.pipes and query.options.size is None,
    )


def event_categories(doc: dict) -> tuple[str, ...] | None:
    """The event's category values when all are strings (the routing key), else None."""
    ev = doc.get("event") if type(doc) is dict else None
    if type(ev) is dict and "event.category" not in doc and "category" in ev:
        values = ev["category"]
        if type(values) is str:
            return (values,)
        if type(values) is list and all(type(v) is str for v in values):
            return tuple(values)
    try:
        values = lookup(doc, "event.category")
    except Exception:  # noqa: BLE001 - a strange document reaches every rule
        return None
    if all(type(v) is str for v in values):
        return tuple(values)
    return None


class Router:
    """Rules by (index, categories), cached: the common keys are few."""

    def __init__(self, rules) -> None:
        self.plans = [plan(r) for r in rules]
        self._routes: dict[tuple, list[RulePlan]] = {}

    def route(self, event: Event) -> list[RulePlan]:
        cats = event_categories(event.doc)
        key = (event.index, cats)
        found = self._routes.get(key)
        if found is None:
            found = self._routes[key] = [
                p
                for p in self.plans
                if p.rule.matches_index(event.index)
                and (cats is None or p.categories is None or not p.categories.isdisjoint(cats))
            ]
        return found

    def literals(self) -> set[bytes] | None:
        """Every literal of every rule's strongest clause; None when some rule has no clause."""
        out: set[bytes] = set()
        for p in self.plans:
            if not p.requirement.clauses:
                return None
            out |= p.requirement.clauses[0]
        return out
