"""A rule's ``filters`` (the Kibana filter bar's query DSL) as a condition of Vigil's
EQL syntax tree, ANDed with the rule's query.

Kibana sends them to Elasticsearch beside the query: ``getQueryFilter`` (security
solution ``rule_types/utils/get_query_filter.ts``) for query, threshold and new terms
rules, and the EQL search request's ``filter`` (``eql/build_eql_search_request.ts``)
for EQL rules, both through kbn-es-query's ``buildQueryFromFilters``
(``es_query/from_filters.ts``):

- a filter whose ``meta.disabled`` is truthy is dropped (``isFilterDisabled``);
- ``meta.negate`` true puts it in ``must_not``; false or absent in ``filter``; any
  other value in neither (``filterNegate`` compares with ``===``), so it is dropped;
- ``meta.index`` is ignored: ``getQueryFilter`` sets ``ignoreFilterIfFieldNotInIndex:
  false``, so every filter applies whatever data view it names;
- the query is the filter's ``query`` (its other top-level keys then ignored), or
  else every top-level key but ``meta`` and ``$state`` (``migrate_filter.ts``: the
  old ``{"exists": ...}`` shape); a deprecated ``match`` of ``type: phrase`` becomes
  ``match_phrase``; ``meta.type: combined`` ANDs or ORs its ``meta.params`` filters
  (``from_combined_filter.ts``).

Each query DSL clause is translated with Elasticsearch's meaning on the field's
mapping type, taken from the same table as KQL (:func:`vigil.kql.translate.field_type`).
A clause Vigil cannot reproduce exactly raises :class:`FilterUnsupported`: the rule
is then reported not runnable, never run without its filter.
"""

from __future__ import annotations

import dataclasses
from itertools import combinations
from typing import Any

from vigil.eql import ast
from vigil.eql.errors import EqlError
from vigil.eql.fields import split_path
from vigil.kql.errors import KqlUnsupported
from vigil.kql.translate import field_type, glob_condition, range_condition, value_condition
from vigil.lucene.wildcard import parse as parse_wildcard

TRUE = ast.Literal(True)
FALSE = ast.Literal(False)
# k of n should clauses is written as an `or` of the `and` of each k-subset.
_MAX_SUBSETS = 64
# Parameters that only score or tune performance: no effect on which documents match.
_SCORING = frozenset({"boost", "_name", "rewrite"})


class FilterUnsupported(EqlError):
    """A rule filter whose Elasticsearch meaning Vigil cannot reproduce exactly."""

    kind = "unsupported filter"


def filters_condition(filters: Any) -> ast.Expr | None:
    """The condition of a rule's ``filters`` list (None when none applies);
    raises :class:`FilterUnsupported`."""
    if filters is None:
        return None
    if not isinstance(filters, list):
        raise FilterUnsupported("filters must be a list")
    expr = _bool_of_filters(filters)
    return None if expr is TRUE else expr


def with_filters(statement: ast.Statement, condition: ast.Expr | None) -> ast.Statement:
    """``statement`` with ``condition`` ANDed into every event query it runs (each
    stage and ``until`` of a sequence or sample): Elasticsearch's EQL search
    ``filter`` restricts every document the query reads."""
    if condition is None:
        return statement

    def event(q: ast.EventQuery) -> ast.EventQuery:
        return ast.EventQuery(q.category, _and([q.condition, condition]), loc=q.loc)

    def stage(s):
        return dataclasses.replace(s, query=event(s.query))

    q = statement.query
    if isinstance(q, ast.EventQuery):
        new = event(q)
    elif isinstance(q, ast.Sequence):
        until = stage(q.until) if q.until is not None else None
        new = ast.Sequence(tuple(stage(s) for s in q.stages), q.maxspan_ms, until, loc=q.loc)
    elif isinstance(q, ast.Sample):
        new = ast.Sample(tuple(stage(s) for s in q.stages), loc=q.loc)
    else:  # pragma: no cover - every query kind is above
        raise FilterUnsupported(f"filters on a {type(q).__name__} query")
    return ast.Statement(new, statement.pipes, text=statement.text)


# --- Kibana's filter objects -----------------------------------------------------------


def _bool_of_filters(filters: list) -> ast.Expr:
    """buildQueryFromFilters: enabled filters, negated ones under ``must_not``."""
    musts: list[ast.Expr] = []
    for f in filters:
        if not _js_truthy(f):
            continue  # `filter && ...` drops null, false, 0 and ""
        if not isinstance(f, dict):
            raise FilterUnsupported(f"a filter must be an object, not {type(f).__name__}")
        meta = f.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise FilterUnsupported("a filter's meta must be an object")
        meta = meta or {}
        if _js_truthy(meta.get("disabled")):
            continue
        negate = meta.get("negate", False)
        if negate is not True and negate is not False:
            continue  # neither `negate === true` nor `=== false`: in no clause
        expr = _filter_query(f, meta)
        musts.append(_not(expr) if negate else expr)
    return _and(musts)


def _filter_query(f: dict, meta: dict) -> ast.Expr:
    if meta.get("type") == "combined":
        params = meta.get("params")
        if not isinstance(params, list):
            raise FilterUnsupported("a combined filter needs a list of params")
        if meta.get("relation") == "AND":
            return _bool_of_filters(params)
        return _or([_bool_of_filters([p]) for p in params], empty=FALSE)
    body = {k: v for k, v in f.items() if k not in ("meta", "$state")}
    inner = body.get("query")
    match = body.get("match") or (inner.get("match") if isinstance(inner, dict) else None)
    if isinstance(match, dict) and match:
        name = next(iter(match))
        params = match[name]
        if isinstance(params, dict) and params.get("type") == "phrase":
            rest = {k: v for k, v in params.items() if k != "type"}
            return query_condition({"match_phrase": {name: rest}})
    query = body["query"] if "query" in body else body
    return query_condition(query)


# --- the query DSL ---------------------------------------------------------------------


def query_condition(query: Any) -> ast.Expr:
    """One query DSL clause as a condition; raises :class:`FilterUnsupported`."""
    if not isinstance(query, dict) or len(query) != 1:
        # Elasticsearch parses exactly one query name per object.
        raise FilterUnsupported(f"a query must be an object with one query name: {_short(query)}")
    ((name, body),) = query.items()
    handler = _HANDLERS.get(name)
    if handler is None:
        raise FilterUnsupported(f"the {name!r} query")
    try:
        return handler(body)
    except KqlUnsupported as exc:
        raise FilterUnsupported(f"{name}: {exc.message}") from None


def _bool(body: Any) -> ast.Expr:
    if not isinstance(body, dict):
        raise FilterUnsupported("bool must be an object")
    _known(
        body, "bool", {"must", "filter", "should", "must_not", "minimum_should_match", "adjust_pure_negative"}
    )
    clauses = {k: _clauses(body.get(k)) for k in ("must", "filter", "should", "must_not")}
    required = clauses["must"] + clauses["filter"]
    should = clauses["should"]
    terms = list(required)
    terms += [_not(c) for c in clauses["must_not"]]
    if should:
        k = _min_should_match(body.get("minimum_should_match"), len(should))
        if k <= 0:
            # Lucene: optional clauses beside a required one are optional; with none
            # required (must_not is not), at least one must match.
            k = 0 if required else 1
        terms.append(_k_of(should, k))
    if not terms:
        return TRUE  # an empty bool is match_all (BoolQueryBuilder.doToQuery)
    return _and(terms)


def _clauses(value: Any) -> list[ast.Expr]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [query_condition(q) for q in items]


def _min_should_match(spec: Any, optional: int) -> int:
    """Queries.calculateMinShouldMatch (Elasticsearch): an integer or a percentage of
    the optional clauses, negative counting from their number, never below 0."""
    if spec is None:
        return 0
    if isinstance(spec, bool) or not isinstance(spec, (int, str)):
        raise FilterUnsupported(f"minimum_should_match {spec!r}")
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            percent = int(text[:-1])
            calc = optional * percent / 100
            result = optional + int(calc) if calc < 0 else int(calc)
        else:
            calc = int(text)
            result = optional + calc if calc < 0 else calc
    except ValueError:
        raise FilterUnsupported(f"minimum_should_match {spec!r}") from None
    return max(result, 0)


def _k_of(should: list[ast.Expr], k: int) -> ast.Expr:
    if k == 0:
        return TRUE
    if k > len(should):
        return FALSE  # more than there are: nothing matches
    if k == 1:
        return _or(should, empty=FALSE)
    if k == len(should):
        return _and(should)
    subsets = list(combinations(should, k))
    if len(subsets) > _MAX_SUBSETS:
        raise FilterUnsupported(f"minimum_should_match {k} of {len(should)} should clauses")
    return _or([_and(list(s)) for s in subsets], empty=FALSE)


def _field_body(body: Any, query: str) -> tuple[str, Any]:
    """``{field: value-or-params}``, the shape of term, wildcard, prefix, match..."""
    if not isinstance(body, dict) or len(body) != 1:
        raise FilterUnsupported(f"{query} must name one field")
    ((name, value),) = body.items()
    if not isinstance(name, str) or not name or "*" in name:
        raise FilterUnsupported(f"{query} on the field name {name!r}")
    return name, value


def _params(value: Any, query: str, key: str, allowed: set[str]) -> dict:
    params = dict(value) if isinstance(value, dict) else {key: value}
    _known(params, query, allowed | {key})
    if key not in params:
        raise FilterUnsupported(f"{query} without {key!r}")
    return params


def _known(params: dict, query: str, allowed: set[str]) -> None:
    extra = set(params) - allowed - _SCORING
    if extra:
        raise FilterUnsupported(f"{query} with {', '.join(sorted(map(str, extra)))}")


def _field(name: str) -> ast.Field:
    return ast.Field(split_path(name))


def _scalar_text(value: Any, query: str) -> tuple[str, object]:
    """The text and KQL constant of a JSON value as Elasticsearch reads a term's value
    (a string, an integer, or a boolean, which a keyword field reads as its text)."""
    if isinstance(value, bool):
        return ("true" if value else "false"), value
    if isinstance(value, int):
        return str(value), ...
    if isinstance(value, str):
        return value, ...
    raise FilterUnsupported(f"{query} value {_short(value)}")


def _exact(name: str, value: Any, query: str, *, phrase: bool) -> ast.Expr:
    """A term (or a match on a field that is not analysed: its normalizer, if any, runs
    on both sides), through KQL's term translation; on a text field ``match`` is any
    of the analysed tokens and ``match_phrase`` the tokens in a row."""
    text, constant = _scalar_text(value, query)
    return value_condition(name, text, quoted=phrase, constant=constant)


def _term(body: Any) -> ast.Expr:
    name, value = _field_body(body, "term")
    params = _params(value, "term", "value", {"case_insensitive"})
    return _term_of(name, params["value"], bool(params.get("case_insensitive")), "term")


def _term_of(name: str, value: Any, insensitive: bool, query: str) -> ast.Expr:
    ftype = field_type(name)
    if ftype == "text":
        # A term on a text field meets single analysed tokens, unanalysed.
        raise FilterUnsupported(f"{query} on the text field {name}")
    if insensitive:
        if ftype not in ("keyword", "caseless"):
            raise FilterUnsupported(f"case_insensitive {query} on the {ftype} field {name}")
        text, _ = _scalar_text(value, query)
        # A case-insensitive term folds ASCII letters (AutomatonQueries.toCaseInsensitiveString),
        # as in~ does on a field.
        return ast.In(_field(name), (ast.Literal(text),), insensitive=True)
    return _exact(name, value, query, phrase=True)


def _terms(body: Any) -> ast.Expr:
    if not isinstance(body, dict):
        raise FilterUnsupported("terms must be an object")
    fields = {k: v for k, v in body.items() if k not in _SCORING}
    if len(fields) != 1:
        raise FilterUnsupported("terms must name one field")
    ((name, values),) = fields.items()
    if not isinstance(values, list):
        raise FilterUnsupported(f"terms on {name} needs a list (a terms lookup is not supported)")
    _field_body({name: values}, "terms")
    return _or([_term_of(name, v, False, "terms") for v in values], empty=FALSE)


def _match(body: Any, query: str, phrase: bool) -> ast.Expr:
    name, value = _field_body(body, query)
    params = _params(value, query, "query", set())
    return _exact(name, params["query"], query, phrase=phrase)


def _wildcard(body: Any) -> ast.Expr:
    name, value = _field_body(body, "wildcard")
    if isinstance(value, dict) and "wildcard" in value and "value" not in value:
        value = {("value" if k == "wildcard" else k): v for k, v in value.items()}
    params = _params(value, "wildcard", "value", {"case_insensitive"})
    pattern = params["value"]
    if not isinstance(pattern, str):
        raise FilterUnsupported(f"wildcard value {_short(pattern)}")
    literals, wilds = lucene_wildcard(pattern)
    return _glob(name, literals, wilds, bool(params.get("case_insensitive")), "wildcard")


def _prefix(body: Any) -> ast.Expr:
    name, value = _field_body(body, "prefix")
    params = _params(value, "prefix", "value", {"case_insensitive"})
    prefix = params["value"]
    if not isinstance(prefix, str):
        raise FilterUnsupported(f"prefix value {_short(prefix)}")
    # Every character of a prefix is literal; then any run of characters.
    return _glob(name, [prefix, ""], "*", bool(params.get("case_insensitive")), "prefix")


def _glob(name: str, literals: list[str], wilds: str, insensitive: bool, query: str) -> ast.Expr:
    ftype = field_type(name)
    if ftype not in ("keyword", "caseless"):
        raise FilterUnsupported(f"{query} on the {ftype} field {name}")
    return glob_condition(_field(name), literals, wilds, insensitive=insensitive)


def lucene_wildcard(pattern: str) -> tuple[list[str], str]:
    """Lucene's WildcardQuery syntax as literal runs and the wildcards between them:
    ``*`` any run, ``?`` one character, ``\\`` makes the next character literal, and
    a trailing ``\\`` is itself (WildcardQuery.toAutomaton)."""
    literals: list[str] = []
    wilds = ""
    for n, pieces in enumerate(parse_wildcard(pattern, escapes=True)):
        wilds += ("*" if n else "") + "?" * (len(pieces) - 1)
        literals.extend(pieces)
    return literals, wilds


def _exists(body: Any) -> ast.Expr:
    if not isinstance(body, dict):
        raise FilterUnsupported("exists must be an object")
    _known(body, "exists", {"field"})
    name = body.get("field")
    if not isinstance(name, str) or not name or "*" in name:
        raise FilterUnsupported(f"exists on the field {name!r}")
    # As KQL's `f: *` (is.ts builds the same exists query).
    return ast.Comparison("!=", _field(name), ast.Literal(None))


_RANGE_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _range(body: Any) -> ast.Expr:
    name, value = _field_body(body, "range")
    if not isinstance(value, dict):
        raise FilterUnsupported("range needs its bounds")
    _known(value, "range", {*_RANGE_OPS, "from", "to", "include_lower", "include_upper"})
    bounds = {k: v for k, v in value.items() if k in _RANGE_OPS and v is not None}
    # The old from/to form (RangeQueryBuilder): bounds included unless said otherwise.
    if value.get("from") is not None:
        bounds["gte" if value.get("include_lower", True) else "gt"] = value["from"]
    if value.get("to") is not None:
        bounds["lte" if value.get("include_upper", True) else "lt"] = value["to"]
    if not bounds:
        raise FilterUnsupported(f"range on {name} with no bound")
    terms = []
    for key, bound in bounds.items():
        if isinstance(bound, bool) or not isinstance(bound, (int, str)):
            raise FilterUnsupported(f"range bound {_short(bound)} on {name}")
        terms.append(range_condition(name, _RANGE_OPS[key], str(bound)))
    return _and(terms)


_HANDLERS = {
    "bool": _bool,
    "match_all": lambda body: TRUE,
    "match_none": lambda body: FALSE,
    "term": _term,
    "terms": _terms,
    "match": lambda body: _match(body, "match", phrase=False),
    "match_phrase": lambda body: _match(body, "match_phrase", phrase=True),
    "wildcard": _wildcard,
    "prefix": _prefix,
    "exists": _exists,
    "range": _range,
}


# --- building the tree -----------------------------------------------------------------


def _and(terms: list[ast.Expr]) -> ast.Expr:
    kept = [t for t in terms if t is not TRUE]
    if any(t is FALSE for t in kept):
        return FALSE
    if not kept:
        return TRUE
    return kept[0] if len(kept) == 1 else ast.And(tuple(kept))


def _or(terms: list[ast.Expr], *, empty: ast.Expr) -> ast.Expr:
    kept = [t for t in terms if t is not FALSE]
    if any(t is TRUE for t in kept):
        return TRUE
    if not kept:
        return empty
    # A one-term `or` too: kept apart from EQL's rewrites, as KQL's translation does.
    return ast.Or(tuple(kept))


def _not(expr: ast.Expr) -> ast.Expr:
    if expr is TRUE:
        return FALSE
    if expr is FALSE:
        return TRUE
    return ast.Not(expr)


def _js_truthy(value: Any) -> bool:
    """JavaScript's truthiness, which Kibana's checks use: every object and list is true."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == value and value != 0  # NaN and 0 are false
    return True


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
