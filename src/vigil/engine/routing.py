"""Which rules an event can reach: index patterns, event category and raw-line literals.

Routing only ever narrows the rules an event is tested against; each test is
still the rule's full compiled query, so a route that is too wide costs time and
never changes an alert. The category of an event query is an exact keyword
comparison with the rule's event category field (EQL's ``process where``:
``event.category``, or the field its ``event_category_override`` names), so an
event whose values in that field are all strings reaches only the rules of those
categories (and ``any``); any other shape (numbers, objects, dotted keys the fast
read misses) reaches every rule of that field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from vigil.eql import ast
from vigil.eql.fields import lookup
from vigil.eql.literals import FieldAnchor, Requirement, anchor_conjuncts, field_anchors, requirement
from vigil.eql.multifields import multi_field
from vigil.eql.schema import Schema
from vigil.eql.semantics import make_lookup
from vigil.events.model import Event
from vigil.lucene.regexp import any_literal

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
    category_field: str  # the field the categories are values of
    requirement: Requirement
    streamable: bool  # a sequence or sample that can run on events fed in timestamp order
    anchors: tuple[tuple[int, FieldAnchor], ...] | None = None  # (stage, anchor); None: raw literals
    filters: tuple = ()  # a sequence's or sample's stage filters, then until's
    # stage -> further anchor options of that stage's condition (``and`` terms): an
    # event matching the stage meets one anchor of each (see :meth:`Group.candidates`).
    narrow: dict | None = None

    def stage_filters(self) -> tuple:
        """:attr:`filters`, compiled on first use (a rule no event reaches never is)."""
        filters = self.filters
        if type(filters) is LazyStageFilters:
            filters = self.filters = filters.build()
        return filters

    def takes(self, doc: dict, stages: tuple[int, ...] | None) -> bool:
        """The query (or, for a sequence or sample, one of ``stages``) matches ``doc``."""
        if stages is None or not self.filters:
            return self.query.matches(doc)
        filters = self.stage_filters()
        try:
            for i in stages:
                if filters[i](doc):
                    return True
        except Exception:  # noqa: BLE001 - a bad document never matches, as in Query.matches
            return False
        return False

    def hit_stages(self, doc: dict, stages: tuple[int, ...] | None) -> tuple[int, ...]:
        """A sequence's or sample's stages (of ``stages``, None: all; until is the number
        after the last stage) whose filters ``doc`` matches; empty when none does.

        As :meth:`Query.matches` (any stage, an error before the first match drops the
        event) and then the matcher (an error is a stage that does not match).
        """
        filters = self.filters
        if type(filters) is LazyStageFilters:
            filters = self.stage_filters()
        hit: list[int] = []
        for i in range(len(filters)) if stages is None else stages:
            try:
                if filters[i](doc):
                    hit.append(i)
            except Exception:  # noqa: BLE001 - a bad document never matches
                if not hit:
                    return ()
        return tuple(hit)

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


def query_anchors(statement: ast.Statement, typer) -> tuple[tuple[int, FieldAnchor], ...] | None:
    """Field anchors of each event query of the statement (stages, then until), each
    with its query's position; None when one of them has none."""
    q = statement.query
    if isinstance(q, ast.EventQuery):
        queries = [q]
    elif isinstance(q, ast.Sequence):
        queries = [s.query for s in q.stages] + ([q.until.query] if q.until is not None else [])
    elif isinstance(q, ast.Sample):
        queries = [s.query for s in q.stages]
    else:
        return None
    out = []
    for stage, eq in enumerate(queries):
        found = field_anchors(eq.condition, typer)
        if found is None:
            return None
        out.extend((stage, a) for a in found)
    return tuple(out)


# Further anchor options checked per candidate stage (each costs one field test).
NARROW = 3


def query_narrowing(statement: ast.Statement, typer) -> dict[int, tuple[tuple[FieldAnchor, ...], ...]]:
    """Per event query of the statement (stages, then until): the anchor options after
    the first (see :func:`anchor_conjuncts`). Each is a necessary condition of that one
    query, so an event must meet all of them to match *that* stage; options of
    different stages are never combined, as different events match them."""
    q = statement.query
    if isinstance(q, ast.EventQuery):
        queries = [q]
    elif isinstance(q, ast.Sequence):
        queries = [s.query for s in q.stages] + ([q.until.query] if q.until is not None else [])
    elif isinstance(q, ast.Sample):
        queries = [s.query for s in q.stages]
    else:
        return {}
    out = {}
    for stage, eq in enumerate(queries):
        options = anchor_conjuncts(eq.condition, typer)
        first = options[0] if options else None
        extra = tuple(o for o in options[1:] if o != first)[:NARROW]
        if extra:
            out[stage] = extra
    return out


def plan(rule) -> RulePlan:
    query = rule.compiled()
    stmt = query.statement
    typer = _ecs_typer()
    anchors = query_anchors(stmt, typer)
    narrow = query_narrowing(stmt, typer)
    return RulePlan(
        rule=rule,
        query=query,
        categories=query_categories(stmt),
        category_field=query.options.event_category_field,
        requirement=requirement(stmt, typer),
        streamable=query.kind != "event" and not stmt.pipes and query.options.size is None,
        anchors=None if anchors is None else tuple((s, _indexed(a)) for s, a in anchors),
        filters=_stage_filters(query),
        narrow={s: tuple(tuple(_indexed(a) for a in o) for o in opts) for s, opts in narrow.items()},
    )


def _indexed(a: FieldAnchor) -> FieldAnchor:
    """An anchor on a multi-field (``process.name.caseless``) reads its parent, the only
    field a document holds (vigil.eql.multifields). Its values stay a superset: the
    anchor compares ASCII values lower-cased, and the ``lowercase`` normalizer folds no
    more than that on ASCII, while a non-ASCII value admits the event."""
    found = multi_field(".".join(a.path), None)
    return a if found is None else replace(a, path=tuple(found[0].split(".")))


class LazyStageFilters:
    """A sequence's or sample's stage filters, then until's, compiled when first read
    (:meth:`RulePlan.stage_filters`); their number is known from the statement."""

    __slots__ = ("query", "count")

    def __init__(self, query) -> None:
        q = query.statement.query
        self.query = query
        self.count = len(q.stages) + (1 if getattr(q, "until", None) is not None else 0)

    def __len__(self) -> int:
        return self.count

    def build(self) -> tuple:
        until = self.query._until
        return tuple(s.filter for s in self.query._stages) + ((until.filter,) if until is not None else ())


def _stage_filters(query) -> tuple | LazyStageFilters:
    return () if query.kind == "event" else LazyStageFilters(query)


def event_categories(doc: dict, field: str = "event.category") -> tuple[str, ...] | None:
    """The event's values of its category ``field`` when all are strings (the routing
    key), else None."""
    head, _, tail = field.partition(".")
    ev = doc.get(head) if type(doc) is dict and tail and "." not in tail else None
    if type(ev) is dict and field not in doc and tail in ev:
        values = ev[tail]
        if type(values) is str:
            return (values,)
        if type(values) is list and all(type(v) is str for v in values):
            return tuple(values)
    try:
        values = lookup(doc, field)
    except Exception:  # noqa: BLE001 - a strange document reaches every rule
        return None
    if all(type(v) is str for v in values):
        return tuple(values)
    return None


ALL = 63
DEFAULT_CATEGORY_FIELD = "event.category"  # Elasticsearch's event_category_field default


class Group:
    """The rules of one route, indexed by their anchors.

    :meth:`candidates` gives, in rule order, the rules an event can match: those
    with no literal at all, those whose exact anchor value the event has (one
    dictionary look-up per field for all of them), those whose anchor field
    contains one of their values, and those whose raw-line literals the line holds.
    """

    def __init__(self, plans: list[RulePlan]) -> None:
        # Hits are keys pos * 64 + stage (ALL: every stage, or an event query).
        self.plans = plans
        self.free: list[int] = []
        self.raw: list[int] = []
        exact: dict[tuple, dict[str, list[int]]] = {}
        contains: dict[tuple, list[tuple[int, tuple[str, ...]]]] = {}
        exists: dict[tuple, list[int]] = {}
        # key -> (option number, token, anchors not exact with their reads), ...: options
        # the key's stage must meet as well. An option's exact anchors go to the exact
        # tables under its token (a negative key), so reading a field once serves all.
        self.narrow: dict[int, tuple] = {}
        reads: dict[tuple, Callable] = {}
        interned: dict[tuple, tuple] = {}
        for pos, p in enumerate(plans):
            if p.anchors is not None and all(stage < ALL for stage, _ in p.anchors):
                for stage, options in (p.narrow or {}).items():
                    key = pos * 64 + (stage if p.filters else ALL)
                    checks = []
                    for option in options:
                        found = interned.get(option)
                        if found is None:
                            token = -1 - len(interned)
                            rest = []
                            for a in option:
                                if a.exact and not a.exists:
                                    table = exact.setdefault(a.path, {})
                                    for v in a.values:
                                        table.setdefault(v, []).append(token)
                                else:
                                    rest.append((a, reads.setdefault(a.path, make_lookup(a.path))))
                            found = interned[option] = (token, tuple(rest))
                        checks.append(found)
                    self.narrow[key] = tuple(checks)
                for stage, a in p.anchors:
                    key = pos * 64 + (stage if p.filters else ALL)
                    if a.exists:
                        exists.setdefault(a.path, []).append(key)
                    elif a.exact:
                        table = exact.setdefault(a.path, {})
                        for v in a.values:
                            table.setdefault(v, []).append(key)
                    else:
                        contains.setdefault(a.path, []).append((key, tuple(sorted(a.values))))
            elif p.requirement.clauses:
                self.raw.append(pos * 64 + ALL)
            else:
                self.free.append(pos * 64 + ALL)
        # Each with the field's first name: a document without that key (and without
        # dotted keys) has no value there, and its read is skipped.
        self.exact = [
            (path[0], make_lookup(path), table, sorted({x for v in table.values() for x in v}))
            for path, table in exact.items()
        ]
        # With one pattern of all the field's literals: most values hold none of them,
        # and one search rules them all out.
        self.contains = [
            (path[0], make_lookup(path), entries, _any_literal(lit for _, lits in entries for lit in lits))
            for path, entries in contains.items()
        ]
        self.exists = [(path[0], make_lookup(path), keys) for path, keys in exists.items()]

    def candidates(self, doc: dict, low: bytes | None) -> list[tuple[RulePlan, tuple[int, ...] | None]]:
        """(rule plan, stages that can match or None for all), in rule order."""
        hits = set(self.free)
        flat = type(doc) is not dict or any("." in k for k in doc)
        for head, read, table, every in self.exact:
            if not flat and head not in doc:
                continue
            try:
                values = read(doc)
            except Exception:  # noqa: BLE001 - a strange document reaches every rule
                hits.update(every)
                continue
            for v in values:
                if type(v) is str and v.isascii():
                    found = table.get(v.lower())
                    if found:
                        hits.update(found)
                else:
                    hits.update(every)
                    break
        for head, read, entries, anylit in self.contains:
            if not flat and head not in doc:
                continue
            try:
                values = read(doc)
            except Exception:  # noqa: BLE001
                values = [None]
            if not values:
                continue
            if all(type(v) is str and v.isascii() for v in values):
                text = "\x00".join(values).lower()
                if not anylit(text):
                    continue
                for key, lits in entries:
                    if key not in hits:
                        for lit in lits:
                            if lit in text:
                                hits.add(key)
                                break
            else:
                hits.update(key for key, _ in entries)
        for head, read, keys in self.exists:
            if not flat and head not in doc:
                continue
            try:
                present = bool(read(doc))
            except Exception:  # noqa: BLE001
                present = True
            if present:
                hits.update(keys)
        if self.narrow:
            narrow = self.narrow
            cache: dict = {}
            met: dict[int, bool] = {}
            for key in [k for k in hits if k in narrow]:
                for token, rest in narrow[key]:
                    if token in hits:
                        continue
                    ok = met.get(token)
                    if ok is None:
                        ok = False
                        for a, read in rest:
                            if _meets(a, read, doc, flat, cache):
                                ok = True
                                break
                        met[token] = ok
                    if not ok:
                        hits.discard(key)
                        break
        plans = self.plans
        for key in self.raw:
            if low is None or plans[key >> 6].admits_clean(low):
                hits.add(key)
        out: list[tuple[RulePlan, tuple[int, ...] | None]] = []
        last = -1
        stages: list[int] = []
        for key in sorted(hits):
            if key < 0:
                continue  # an option's token (see narrow)
            pos, stage = key >> 6, key & 63
            if pos != last:
                if last >= 0:
                    out.append((plans[last], None if ALL in stages else tuple(stages)))
                last, stages = pos, []
            stages.append(stage)
        if last >= 0:
            out.append((plans[last], None if ALL in stages else tuple(stages)))
        return out


def _any_literal(literals) -> Callable[[str], bool]:
    """A search for any of ``literals`` in a text, linear in the text (an event's value)."""
    return any_literal(literals)


def _meets(a: FieldAnchor, read, doc: dict, flat: bool, cache: dict) -> bool:
    """Whether ``doc`` may meet anchor ``a``, as :meth:`Group.candidates` decides for
    its first anchors (an unreadable or non-ASCII value admits the event)."""
    values = cache.get(a.path, cache)
    if values is cache:
        if not flat and a.path[0] not in doc:
            values = []
        else:
            try:
                values = read(doc)
            except Exception:  # noqa: BLE001 - a strange document meets every anchor
                values = None
        cache[a.path] = values
    if values is None:
        return True
    if a.exists:
        return bool(values)
    if not values:
        return False
    if not all(type(v) is str and v.isascii() for v in values):
        return True
    if a.exact:
        return any(v.lower() in a.values for v in values)
    text = "\x00".join(values).lower()
    return any(lit in text for lit in a.values)


class Router:
    """Rules by (index, categories), cached: the common keys are few.

    The categories are read from each category field the rules use (``event.category``
    unless a rule's ``event_category_override`` names another). Outside
    ``event.category``, only the values some rule names are kept in the key, so that
    a field such as ``event.type`` does not multiply the routes."""

    def __init__(self, rules) -> None:
        self.plans = [plan(r) for r in rules]
        self._routes: dict[tuple, list[RulePlan]] = {}
        self._groups: dict[tuple, Group] = {}
        named: dict[str, set[str]] = {}
        for p in self.plans:
            if p.categories is not None and p.category_field != DEFAULT_CATEGORY_FIELD:
                named.setdefault(p.category_field, set()).update(p.categories)
        self._other_fields = tuple((f, frozenset(v)) for f, v in sorted(named.items()))

    def _key(self, event: Event) -> tuple:
        key: tuple = (event.index, event_categories(event.doc))
        for field, named in self._other_fields:
            values = event_categories(event.doc, field)
            key += (None if values is None else named.intersection(values),)
        return key

    def group(self, event: Event) -> Group:
        key = self._key(event)
        found = self._groups.get(key)
        if found is None:
            found = self._groups[key] = Group(self._route(event, key))
        return found

    def route(self, event: Event) -> list[RulePlan]:
        return self._route(event, self._key(event))

    def _route(self, event: Event, key: tuple) -> list[RulePlan]:
        found = self._routes.get(key)
        if found is None:
            cats = {DEFAULT_CATEGORY_FIELD: key[1]}
            cats.update(
                (field, values) for (field, _), values in zip(self._other_fields, key[2:], strict=True)
            )
            found = self._routes[key] = [
                p
                for p in self.plans
                if p.rule.matches_index(event.index)
                and (
                    p.categories is None
                    or cats[p.category_field] is None
                    or not p.categories.isdisjoint(cats[p.category_field])
                )
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
