"""A plain tree-walking evaluator: the reference the compiler is tested against.

It is deliberately simple (no caching, no fast paths) and gets every rule from
:mod:`vigil.eql.semantics` and :mod:`vigil.eql.functions`.
"""

from __future__ import annotations

from typing import Any

from vigil.eql import ast
from vigil.eql import semantics as S
from vigil.eql.functions import lookup_function


def matches(expr: ast.Expr, doc: Any, schema=None) -> bool:
    """Does ``doc`` pass the condition ``expr``?"""
    return S.keeps(truth(expr, doc, schema))


def matches_event(
    query: ast.EventQuery, doc: Any, schema=None, category_field: str = "event.category"
) -> bool:
    """The event query's category (any value of the category field) and condition."""
    if query.category is not None:
        cat = ast.Field(S.path_of(category_field))
        spec = S.field_spec(cat, schema)
        if query.category not in [S.to_string(v) for v in _values(spec, doc)]:
            return False
    return matches(query.condition, doc, schema)


def value(expr: ast.Expr, doc: Any, schema=None) -> Any:
    """The value of an expression; a field gives None, its value, or a list of values."""
    if isinstance(expr, ast.Field):
        spec = S.field_spec(expr, schema)
        return None if spec.absent else S.as_field_value(_values(spec, doc))
    return evaluate(expr, doc, schema)


def _values(spec: S.FieldSpec, doc: Any) -> list:
    if spec.absent:
        return []
    return S.field_values(doc, spec.path, spec.ftype, spec.null_value, spec.limit)


def _field_values(fld: ast.Field, doc: Any, schema) -> tuple[list, str | None]:
    spec = S.field_spec(fld, schema)
    return _values(spec, doc), spec.ftype


def evaluate(expr: ast.Expr, doc: Any, schema=None) -> Any:
    """The scalar value a script computes (a field is its first doc value)."""
    match expr:
        case ast.Literal(value=v):
            return v
        case ast.Field():
            vals, _ = _field_values(expr, doc, schema)
            return S.script_value(vals)
        case ast.Arithmetic(op=op, left=a, right=b):
            return S.arithmetic(op, evaluate(a, doc, schema), evaluate(b, doc, schema))
        case ast.Negate(expr=e):
            return S.negate(evaluate(e, doc, schema))
        case ast.FunctionCall(name=name, args=args, insensitive=ins):
            spec = lookup_function(name)
            if spec is None:
                return None
            return spec.impl(*(evaluate(a, doc, schema) for a in args), insensitive=ins)
    return truth(expr, doc, schema)


def truth(expr: ast.Expr, doc: Any, schema=None) -> bool | None:
    """A condition's three-valued result."""
    match expr:
        case ast.Literal(value=v):
            return v if isinstance(v, bool) else None
        case ast.Field():
            vals, _ = _field_values(expr, doc, schema)
            return S.any_true(v is True for v in vals)
        case ast.And(terms=ts):
            out: bool | None = True
            for t in ts:
                out = S.and3(out, truth(t, doc, schema))
            return out
        case ast.Or(terms=ts):
            out = False
            for t in ts:
                out = S.or3(out, truth(t, doc, schema))
            return out
        case ast.Not(expr=e):
            simpler = S.simplify_not(e)
            if simpler is not None:
                return truth(simpler, doc, schema)
            return _negate(e, truth(e, doc, schema), schema)
        case ast.Comparison() if S.simplify_bool_equals(expr) is not None:
            return truth(S.simplify_bool_equals(expr), doc, schema)
        case ast.Comparison():
            return _comparison(expr, doc, schema)
        case ast.Pattern(op=op, value=v, patterns=ps):
            script = not isinstance(v, ast.Field)
            ftype = None if script else S.field_spec(v, schema).ftype
            pats = [S.normalize_pattern(evaluate(p, doc, schema), ftype) for p in ps]
            return _over(
                v, doc, schema, lambda x: S.any_true(S.pattern_match(op, x, p, script) for p in pats)
            )
        case ast.In(value=v, items=items, insensitive=ins, negated=neg):
            res = _in(v, items, ins, doc, schema)
            if neg:
                return _negate(ast.In(v, items, ins, False), res, schema)
            return res
        case ast.FunctionCall(name=name, args=args, insensitive=ins) if S.is_query_function(expr):
            vals, ftype = _field_values(args[0], doc, schema)
            rest = [S.normalize_pattern(evaluate(a, doc, schema), ftype) for a in args[1:]]
            return S.any_true(S.query_function_match(name, x, rest, ins) for x in vals)
    v = evaluate(expr, doc, schema)
    return v if isinstance(v, bool) else None


def _negate(inner: ast.Expr, result: bool | None, schema) -> bool | None:
    if S.is_query_condition(inner, schema):
        return not S.keeps(result)
    return S.not3(result)


def _over(v: ast.Expr, doc: Any, schema, test) -> bool | None:
    """Apply ``test`` to every value of a field (any matches), or to a computed value."""
    if isinstance(v, ast.Field):
        vals, _ = _field_values(v, doc, schema)
        return S.any_true(test(x) for x in vals)
    x = evaluate(v, doc, schema)
    return None if x is None else test(x)


def _in(v: ast.Expr, items, ins: bool, doc: Any, schema) -> bool | None:
    ftype = S.field_spec(v, schema).ftype if isinstance(v, ast.Field) else None
    vals = [S.literal_as(evaluate(i, doc, schema), ftype) for i in items]
    script = not isinstance(v, ast.Field)
    return _over(v, doc, schema, lambda x: S.any_true(S.in_match(x, i, ins, script) for i in vals))


def _comparison(expr: ast.Comparison, doc: Any, schema) -> bool | None:
    op, left, right = expr.op, expr.left, expr.right
    left_null = S.is_null_literal(left, schema)
    right_null = S.is_null_literal(right, schema)
    if op in ("==", "!=") and (left_null or right_null):
        other = right if left_null else left
        if left_null and right_null:
            missing = True
        elif isinstance(other, ast.Field):
            missing = not _field_values(other, doc, schema)[0]
        else:
            missing = evaluate(other, doc, schema) is None
        return missing if op == "==" else not missing
    if isinstance(left, ast.Field) and not isinstance(right, ast.Field):
        vals, ftype = _field_values(left, doc, schema)
        lit = S.literal_as(evaluate(right, doc, schema), ftype)
        return S.field_compare(op, vals, lit)
    if isinstance(right, ast.Field) and not isinstance(left, ast.Field):
        vals, ftype = _field_values(right, doc, schema)
        lit = S.literal_as(evaluate(left, doc, schema), ftype)
        return S.field_compare(op, vals, lit, lit_first=True)
    return S.compare(op, evaluate(left, doc, schema), evaluate(right, doc, schema))
