"""Events built to match an EQL rule, read from the rule's own query.

:func:`events_for` walks a query's conditions and writes, for each stage, a document
that meets them: ``==`` and ``in`` take their (first) value, ``:``/``like`` take the
pattern with its wildcards filled, ``stringContains``/``startsWith``/``endsWith``
build the value around their patterns (Lucene wildcards, as Elasticsearch runs them), an ``or`` takes its first branch, and a field
that appears only under ``not`` (or ``!=``) gets a value no literal of the query
holds. A shape it does not know raises, so a rule it cannot serve is named rather
than silently passed. The event's category value goes into the rule's category
field, which the caller chooses (the point of these events).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from vigil.eql import ast
from vigil.eql.parser import parse

FILLER = "vigil-unrelated-value"


class Unsupported(Exception):
    """The query has a condition this builder cannot meet."""


@dataclass
class _Doc:
    values: dict[tuple[str, ...], object] = field(default_factory=dict)
    contains: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    prefix: dict[tuple[str, ...], str] = field(default_factory=dict)
    suffix: dict[tuple[str, ...], str] = field(default_factory=dict)
    avoid: set[tuple[str, ...]] = field(default_factory=set)

    def meet(self, expr: ast.Expr) -> None:
        match expr:
            case ast.And(terms=terms):
                for t in terms:
                    self.meet(t)
            case ast.Or(terms=terms):
                self.meet(terms[0])
            case ast.Comparison(op="==", left=ast.Field(path=p), right=ast.Literal(value=v)):
                self.values[p] = v
            case ast.In(value=ast.Field(path=p), items=(ast.Literal(value=v), *_), negated=False):
                self.values[p] = v
            case ast.Pattern(value=ast.Field(path=p), patterns=(ast.Literal(value=str() as v), *_)):
                self.values[p] = v.replace("*", "").replace("?", "x")
            case ast.FunctionCall(name=name, args=(ast.Field(path=p), ast.Literal(value=str() as v))):
                kind = name.lower()
                if kind == "stringcontains":
                    self.contains.setdefault(p, []).append(_lucene_fill(v))
                elif kind == "startswith":  # a prefix query: no wildcards
                    self.prefix[p] = v
                elif kind == "endswith":
                    self.suffix[p] = _lucene_fill(v)
                else:
                    raise Unsupported(f"function {name}")
            case ast.Comparison(op="!=", left=ast.Field(path=p), right=ast.Literal(value=None)):
                self.values.setdefault(p, FILLER)  # ``x != null``: x has a value
            case ast.Not(expr=inner) | ast.Comparison(op="!=", left=inner):
                self.avoid.update(_fields(inner))
            case ast.In(value=ast.Field(path=p), negated=True):
                self.avoid.add(p)
            case ast.Literal(value=True):
                pass
            case _:
                raise Unsupported(type(expr).__name__)

    def document(self) -> dict:
        flat: dict[tuple[str, ...], object] = dict(self.values)
        for p in set(self.contains) | set(self.prefix) | set(self.suffix):
            middle = " ".join(self.contains.get(p, []))
            flat[p] = f"{self.prefix.get(p, '')} {middle} {self.suffix.get(p, '')}".strip(" ")
        for p in self.avoid:
            flat.setdefault(p, FILLER)
        doc: dict = {}
        for path, value in flat.items():
            node = doc
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
        return doc


def _lucene_fill(pattern: str) -> str:
    """A text that Lucene wildcard ``pattern`` matches: Elasticsearch runs
    ``stringContains`` and the like as wildcard queries, where ``\\`` escapes."""
    return _WILDCARD.sub(lambda m: m.group(1) or ("x" if m.group(0) == "?" else ""), pattern)


_WILDCARD = re.compile(r"\\(.)|[*?]", re.DOTALL)


def _fields(expr: ast.Node) -> set[tuple[str, ...]]:
    if isinstance(expr, ast.Field):
        return {expr.path}
    out: set[tuple[str, ...]] = set()
    for value in (getattr(expr, f.name) for f in dataclasses.fields(expr)):
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, ast.Node):
                out |= _fields(item)
    return out


@dataclass
class Built:
    """The events of one rule, in time order, and whether each is the category-bearing kind."""

    events: list[dict]
    category: str | None  # the category the rule's events need (None: `any`)


def _stage_doc(query: ast.EventQuery, keys: tuple, key_value: str) -> dict:
    d = _Doc()
    d.meet(query.condition)
    for k in keys:
        if not isinstance(k, ast.Field):
            raise Unsupported("a join key that is not a field")
        d.values[k.path] = key_value
    return d.document()


def events_for(query_text: str, *, start: datetime | None = None) -> Built:
    """Events that together make ``query_text`` match once, without any category yet."""
    stmt = parse(query_text)
    q = stmt.query
    start = start or datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    if isinstance(q, ast.EventQuery):
        docs = [_stage_doc(q, (), "")]
        category = q.category
    elif isinstance(q, ast.Sequence):
        docs = []
        cats = {s.query.category for s in q.stages}
        if len(cats) != 1:
            raise Unsupported("stages of different categories")
        category = cats.pop()
        for stage in q.stages:
            if stage.missing:
                raise Unsupported("a missing-event stage")
            doc = _stage_doc(stage.query, stage.keys, "vigil-join-key")
            docs.extend(copy.deepcopy(doc) for _ in range(stage.runs))
    else:
        raise Unsupported(type(q).__name__)
    for n, doc in enumerate(docs):
        when = (start + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
        doc["@timestamp"] = when
        doc.setdefault("event", {})["ingested"] = when
        ds = doc.setdefault("data_stream", {})
        if "dataset" in ds:  # the index Fleet would write it to
            ds.setdefault("type", "logs")
            ds.setdefault("namespace", "default")
    return Built(docs, category)


def put(doc: dict, dotted: str, value: object) -> dict:
    """``doc`` with ``value`` at the nested place of ``dotted``."""
    node = doc
    *head, last = dotted.split(".")
    for key in head:
        node = node.setdefault(key, {})
    node[last] = value
    return doc


def drop(doc: dict, dotted: str) -> dict:
    node = doc
    *head, last = dotted.split(".")
    for key in head:
        node = node.get(key, {})
    node.pop(last, None)
    return doc
