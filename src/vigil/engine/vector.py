"""Vectorized superset filters: an EQL condition as masks over a batch of events.

A rule's filter here is built so that every event its compiled query matches
passes it (a *superset* of the exact matches, by construction); the rows that
pass are then confirmed one by one by the compiled matcher, so Elasticsearch's
semantics stay in :mod:`vigil.eql.semantics` alone. The translation only ever
widens:

- ``and`` is the AND of its terms' masks, ``or`` the OR; a term that cannot be
  translated is "every row" (:data:`ALL`), so an ``or`` holding one is ALL;
- ``not`` (and ``!=``, ``not in``) is ALL: a negation of a widened filter would narrow;
- a string field compared with string constants (``==``, ``in``, ``:``, ``like``,
  ``like~``, ``in~``, ``startsWith``, ``endsWith``, ``stringContains``) is a test
  over the field's values lower-cased, any value of an array sufficing. Comparing
  lower-cased ASCII is exactly the case-insensitive form and wider than the
  case-sensitive one; a row whose value is not an ASCII string (a number, a
  boolean, non-ASCII text, whose folding or keyword form could differ) passes.
- ``regex``/``regex~`` is the same Lucene expression in RE2 (:mod:`vigil.lucene.regexp`),
  run on the values as they are (ASCII rows; others pass);
- a field compared with other non-null constants (numbers, dates, ips, ``cidrMatch``) is "the field has a value", since such a test is false on a missing field;
- anything else (functions of fields, fields with a ``null_value``) is ALL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vigil.eql import ast
from vigil.eql import semantics as S
from vigil.lucene.regexp import parse as parse_regexp
from vigil.lucene.regexp import to_re2

# Field types whose values are compared as the strings the event holds (no schema:
# None; with one, a keyword family). Any other type is left to the exact matcher.
_STRING_TYPES = (None, "keyword", "wildcard", "constant_keyword")


@dataclass(frozen=True, slots=True)
class FieldTest:
    """One vectorizable test of a field's lower-cased string values.

    ``kind``: ``in`` (a value is one of ``values``), ``prefix``, ``suffix``,
    ``contains`` (a value starts with, ends with, holds one of ``values``), ``like``
    (a value matches one of the RE2 patterns in ``values``), ``regex`` (the same, on the
    values not lower-cased), ``num`` (a value is one of the numbers ``values``, or is
    not a number) or ``exists`` (the field has a value of any kind)."""

    path: str
    kind: str
    values: tuple[str, ...]

    def __reduce__(self):  # pickled with the rule cache: a call reads back faster than slots
        return FieldTest, (self.path, self.kind, self.values)


@dataclass(frozen=True, slots=True)
class AndF:
    terms: tuple

    def __reduce__(self):
        return AndF, (self.terms,)


@dataclass(frozen=True, slots=True)
class OrF:
    terms: tuple

    def __reduce__(self):
        return OrF, (self.terms,)


ALL = None  # every row: the filter says nothing


# Fields most events of a kind share a value of: a test of them rarely empties a mask.
COMMON_FIELDS = frozenset(
    (
        "event.category",
        "event.type",
        "event.kind",
        "event.outcome",
        "event.action",
        "host.os.type",
        "host.os.name",
        "host.os.family",
        "host.os.platform",
        "event.module",
        "event.dataset",
        "data_stream.dataset",
    )
)


def _cost(term) -> int:
    """Where a term goes in an ``and``: the likeliest to leave no row and the cheapest
    first, since a mask that empties ends the ``and`` (Batch.mask); a pattern or regular
    expression (a call to RE2 per batch) last."""
    if isinstance(term, FieldTest):
        if term.kind in ("like", "regex"):
            return 5
        if term.path in COMMON_FIELDS:
            return 3
        return {"in": 0, "prefix": 1, "suffix": 1, "contains": 1}.get(term.kind, 2)
    return 4


def conj(terms) -> object:
    """The ``and`` of filters: nested ones flattened, in :func:`_cost` order."""
    kept: list = []
    for t in terms:
        if isinstance(t, AndF):
            kept.extend(t.terms)
        elif t is not ALL:
            kept.append(t)
    if not kept:
        return ALL
    return kept[0] if len(kept) == 1 else AndF(tuple(sorted(kept, key=_cost)))


def disj(terms) -> object:
    terms = tuple(terms)
    if not terms or any(t is ALL for t in terms):
        return ALL
    return terms[0] if len(terms) == 1 else OrF(terms)


def query_filters(query) -> tuple:
    """The superset filters of a compiled EQL query: its event query's alone, or each
    stage's then its until's. Made once and kept with the query (``Query.derived``), so
    the rule cache holds them: a scan of the whole prebuilt set does not build 1,800
    filters again at every start."""
    found = query.derived.get("superset")
    if found is None:
        q = query.statement.query
        cat = query.options.event_category_field
        if query.kind == "event":
            found = (event_filter(q, cat),)
        else:
            stages = [s.query for s in q.stages] + ([q.until.query] if getattr(q, "until", None) else [])
            found = tuple(event_filter(eq, cat) for eq in stages)
        query.derived["superset"] = found
    return found


def event_filter(eq: ast.EventQuery, category_field: str = "event.category", schema=None) -> object:
    """The superset filter of an event query (its category and condition)."""
    cat = ALL
    if eq.category is not None and eq.category.isascii():
        cat = FieldTest(".".join(S.path_of(category_field)), "in", (eq.category.lower(),))
    return conj([cat, condition_filter(eq.condition, schema)])


def condition_filter(expr: ast.Expr, schema=None) -> object:
    """The superset filter of a condition (see the module docstring)."""
    match expr:
        case ast.And(terms=terms):
            return conj(condition_filter(t, schema) for t in terms)
        case ast.Or(terms=terms):
            return disj(condition_filter(t, schema) for t in terms)
        case ast.Comparison(op="==", left=left, right=right):
            if isinstance(right, ast.Field):
                left, right = right, left
            path = _string_field(left, schema)
            text = _text(right)
            if path is None or text is None:
                return _numbers(left, (right,), schema) or _exists(left, right, schema=schema)
            return FieldTest(path, "in", (text,))
        case ast.Comparison(op="<" | "<=" | ">" | ">=", left=left, right=right):
            if isinstance(right, ast.Field):
                left, right = right, left
            return _exists(left, right, schema=schema)
        case ast.In(value=value, items=items, negated=False):
            path = _string_field(value, schema)
            texts = [_text(i) for i in items]
            if path is None or not texts or any(t is None for t in texts):
                return _numbers(value, items, schema) or _exists(value, *items, schema=schema)
            return FieldTest(path, "in", tuple(sorted(set(texts))))
        case ast.Pattern(op="regex" | "regex~" as op, value=value, patterns=patterns):
            path = _string_field(value, schema)
            texts = [p.value for p in patterns if isinstance(p, ast.Literal) and type(p.value) is str]
            ok = path is not None and len(texts) == len(patterns)
            found = _regexes(texts, op == "regex~") if ok else None
            if found is None:
                return _exists(value, *patterns, schema=schema)
            return FieldTest(path, "regex", found)
        case ast.Pattern(op=op, value=value, patterns=patterns):
            path = _string_field(value, schema) if op in (":", "like", "like~") else None
            texts = [_text(p) for p in patterns]
            if path is None or not texts or any(t is None for t in texts):
                return _exists(value, *patterns, schema=schema)
            return _patterns(path, texts)
        case ast.FunctionCall(name=name, args=(first, *rest)) if name.lower() in S.QUERY_FUNCTIONS:
            lname = name.lower()
            path = _string_field(first, schema)
            text = _text(rest[0]) if len(rest) == 1 else None
            if path is None or text is None or lname not in _TEXT_FUNCTIONS:
                return _exists(first, *rest, schema=schema)
            if lname == "startswith":
                return FieldTest(path, "prefix", (text,))
            # endsWith and stringContains are wildcard queries: their argument's *, ?
            # and \ are wildcard syntax, left to the exact matcher.
            if any(c in text for c in "*?\\"):
                return _exists(first, *rest, schema=schema)
            if lname == "endswith":
                return FieldTest(path, "suffix", (text,))
            return FieldTest(path, "contains", (text,))
    return ALL


_TEXT_FUNCTIONS = ("startswith", "endswith", "stringcontains")


def _numbers(fld: ast.Expr, constants: tuple, schema) -> FieldTest | None:
    """``field == n`` / ``field in (n, ...)`` with numbers, as a ``num`` test: a row passes
    when a value equals one of them as a number, or is not a number (a string may
    compare as one, :func:`vigil.eql.semantics.align`). None when not of that shape."""
    path = _string_field(fld, schema)
    if path is None or not constants:
        return None
    nums = []
    for c in constants:
        if not isinstance(c, ast.Literal) or type(c.value) not in (int, float):
            return None
        nums.append(c.value)
    return FieldTest(path, "num", tuple(sorted(set(nums))))


def _exists(fld: ast.Expr, *constants: ast.Expr, schema=None) -> object:
    """A field tested against non-null constants (a comparison, a pattern, a query
    function): such a test is false on a missing field (EQL: a condition on a missing or
    null field is false; a query function is a query on the field), so the rows where the
    field has a value are a superset. ALL when the constants may be null or are not
    constants, or the mapping gives the field a ``null_value``."""
    if not isinstance(fld, ast.Field) or not constants:
        return ALL
    if any(not isinstance(c, ast.Literal) or c.value is None for c in constants):
        return ALL
    spec = S.field_spec(fld, schema)
    if spec.absent or spec.null_value is not None:
        return ALL
    return FieldTest(".".join(spec.path), "exists", ())


def _string_field(expr: ast.Expr, schema) -> str | None:
    """The dotted path of a field read as strings as it comes, else None."""
    if not isinstance(expr, ast.Field):
        return None
    spec = S.field_spec(expr, schema)
    if spec.absent or spec.null_value is not None or spec.ftype not in _STRING_TYPES:
        return None
    return ".".join(spec.path)


def _text(expr: ast.Expr) -> str | None:
    """A string constant, lower-cased, when ASCII (folding non-ASCII could differ)."""
    if isinstance(expr, ast.Literal) and type(expr.value) is str and expr.value.isascii():
        return expr.value.lower()
    return None


def _patterns(path: str, texts: list[str]) -> object:
    """``:`` / ``like`` patterns: ``*`` any run, ``?`` one character, nothing else special."""
    exact, tests = [], []
    for t in texts:
        if "*" not in t and "?" not in t:
            exact.append(t)
            continue
        inner = t.strip("*")
        if "?" not in inner and "*" not in inner and inner:
            lead, trail = t.startswith("*"), t.endswith("*")
            kind = "contains" if lead and trail else "suffix" if lead else "prefix"
            tests.append(FieldTest(path, kind, (inner,)))
        elif not t.strip("*"):
            return ALL  # "*" alone: any value (present) matches
        else:
            tests.append(FieldTest(path, "like", (_regex(t),)))
    if exact:
        tests.insert(0, FieldTest(path, "in", tuple(sorted(set(exact)))))
    return disj(tests)


def _regexes(patterns: list[str], fold: bool) -> tuple[str, ...] | None:
    """Lucene regular expressions as whole-value RE2 patterns (run on the values as they
    are, not lower-cased); None when one cannot be translated."""
    out = []
    for p in patterns:
        try:
            out.append("^(?:" + to_re2(parse_regexp(p), fold=fold) + ")$")
        except Exception:  # noqa: BLE001 - refused or unsupported: the matcher decides
            return None
    return tuple(out) or None


def _regex(pattern: str) -> str:
    """An RE2 pattern matching the whole value as the wildcard does, newlines included."""
    out = []
    for c in pattern:
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
    return "(?s)^" + "".join(out) + "$"


def fields_of(node) -> set[str]:
    """The field paths a filter reads."""
    if node is ALL:
        return set()
    if isinstance(node, FieldTest):
        return {node.path}
    out: set[str] = set()
    for t in node.terms:
        out |= fields_of(t)
    return out
