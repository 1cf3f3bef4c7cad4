"""Compile an EQL expression tree into Python closures.

Everything that does not depend on the event is done once here: aliases
resolved, literals read as their field's type, wildcards sorted into exact /
prefix / suffix / contains checks or one compiled regex, ``in`` lists turned
into sets, constant sub-expressions folded. The top level of a filter (the
category test and the terms of its ``and``) is generated as one Python
function that reads string fields inline, because at hundreds of rules per
event a function call costs as much as the test itself. The rules themselves
live in :mod:`vigil.eql.semantics`; the reference interpreter
(:mod:`vigil.eql.interpreter`) must give the same answers, which a property
test checks.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from typing import Any

from vigil.eql import ast
from vigil.eql import semantics as S
from vigil.eql.functions import lookup_function
from vigil.lucene.wildcard import any_wildcard, ascii_lower

Doc = Any
Pred = Callable[[Doc], bool]
Tri = Callable[[Doc], "bool | None"]
Val = Callable[[Doc], Any]

_STRINGY = (None, "keyword", "text")
# Types read as strings (a caseless field's values come lower-cased from its reader).
_TEXTS = (*_STRINGY, S.CASELESS)
_NUMERIC_OPS = {
    "==": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIP_OP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def compile_condition(expr: ast.Expr, schema=None) -> Pred:
    """A predicate: True when the document passes the condition."""
    return _Compiler(schema).top(None, expr)


def compile_value(expr: ast.Expr, schema=None) -> Val:
    """The value of an expression: scalar, a list for a multi-valued field, None when missing."""
    c = _Compiler(schema)
    if isinstance(expr, ast.Field):
        spec = S.field_spec(expr, schema)
        if spec.absent:
            return lambda doc: None
        read = c.reader(spec)
        as_value = S.as_field_value
        return lambda doc: as_value(read(doc))
    return c.val(expr)


def compile_event_filter(
    event_query: ast.EventQuery, schema=None, category_field: str = "event.category"
) -> Pred:
    """Category (any value of the category field, through aliases) and condition."""
    cat_field = ast.Field(S.path_of(category_field))
    return _Compiler(schema).top(
        (cat_field, event_query.category) if event_query.category is not None else None,
        event_query.condition,
    )


def _TRUE(doc: Doc) -> bool:
    return True


def _FALSE(doc: Doc) -> bool:
    return False


class _Compiler:
    def __init__(self, schema):
        self.schema = schema

    # --- fields -------------------------------------------------------------------

    def reader(self, spec: S.FieldSpec) -> Callable[[Doc], list]:
        """Read a field's typed values from a document."""
        if spec.absent:
            return lambda doc: []
        path, ftype, nv, limit = spec.path, spec.ftype, spec.null_value, spec.limit
        field_values = S.field_values
        if nv is not None or ftype not in ("keyword", "text", None):
            return lambda doc: field_values(doc, path, ftype, nv, limit)
        return S.make_lookup(path, keyword=ftype is not None, limit=limit)

    def field(self, fld: ast.Field) -> tuple[Callable[[Doc], list], str | None]:
        spec = S.field_spec(fld, self.schema)
        return self.reader(spec), spec.ftype

    # --- values ---------------------------------------------------------------------

    def val(self, expr: ast.Expr) -> Val:
        if S.is_constant(expr) and not isinstance(expr, ast.Literal):
            const = self.val_nofold(expr)(None)
            return lambda doc: const
        return self.val_nofold(expr)

    def const(self, expr: ast.Expr) -> Any:
        return self.val_nofold(expr)(None)

    def val_nofold(self, expr: ast.Expr) -> Val:
        match expr:
            case ast.Literal(value=v):
                return lambda doc: v
            case ast.Field():
                read, _ = self.field(expr)
                first = S.script_value
                return lambda doc: first(read(doc))
            case ast.Arithmetic(op=op, left=a, right=b):
                fa, fb, arith = self.val(a), self.val(b), S.arithmetic
                return lambda doc: arith(op, fa(doc), fb(doc))
            case ast.Negate(expr=e):
                fe, neg = self.val(e), S.negate
                return lambda doc: neg(fe(doc))
            case ast.FunctionCall(name=name, args=args, insensitive=ins):
                spec = lookup_function(name)
                if spec is None:
                    return lambda doc: None
                impl = spec.impl
                fargs = [self.val(a) for a in args]
                if len(fargs) == 1:
                    f0 = fargs[0]
                    return lambda doc: impl(f0(doc), insensitive=ins)
                if len(fargs) == 2:
                    f0, f1 = fargs
                    return lambda doc: impl(f0(doc), f1(doc), insensitive=ins)
                return lambda doc: impl(*[f(doc) for f in fargs], insensitive=ins)
        tri = self.tri(expr)
        return tri

    # --- the top level: one generated function ------------------------------------------

    def top(self, category: tuple[ast.Field, str] | None, expr: ast.Expr) -> Pred:
        """The whole filter as one generated Python function.

        A call costs as much as a dictionary walk, so the top-level ``and`` (and
        the category test) become straight-line code: each string field is read
        inline once, and tested inline or with one helper call. Anything less
        common (typed values, arrays of objects, dotted keys, nested logic) is
        handed to the closure compiled for that term, which has the full rules.
        """
        terms = S.flatten_and(expr.terms) if isinstance(expr, ast.And) else [expr]
        gen = _Gen(self)
        # Inline reads assume an object; anything else takes the closures.
        cond = self.pred(expr)
        if category is not None:
            cat_pred = self.pred(ast.Comparison("==", category[0], ast.Literal(category[1])))
            whole = lambda doc: cat_pred(doc) and cond(doc)  # noqa: E731
        else:
            whole = cond
        gen.line(f"if type(doc) is not dict: return {gen.bind(whole)}(doc)")
        if category is not None:
            fld, cat = category
            var = gen.read(fld)
            slow = gen.bind(self.pred(ast.Comparison("==", fld, ast.Literal(cat))))
            gen.line(f"if {var} is None:")
            gen.line(f"    if not {slow}(doc): return False")
            gen.line(f"elif {gen.bind(cat)} not in {var}: return False")
        preds = [self.pred(term) for term in terms]
        if any(p is _FALSE for p in preds):
            return _FALSE
        for term, pred in zip(terms, preds, strict=True):
            if pred is not _TRUE:
                gen.term(term, pred)
        return gen.build()

    # --- two-valued predicates (what a filter keeps) -----------------------------------

    def pred(self, expr: ast.Expr) -> Pred:
        match expr:
            case ast.Literal(value=v):
                return _TRUE if v is True else _FALSE
            case ast.And(terms=ts):
                fs = [self.pred(t) for t in ts]
                if any(f is _FALSE for f in fs):
                    return _FALSE
                fs = [f for f in fs if f is not _TRUE]
                if not fs:
                    return _TRUE
                if len(fs) == 1:
                    return fs[0]
                if len(fs) == 2:
                    a, b = fs
                    return lambda doc: a(doc) and b(doc)
                return lambda doc: all(f(doc) for f in fs)
            case ast.Or(terms=ts):
                fs = [self.pred(t) for t in ts]
                if any(f is _TRUE for f in fs):
                    return _TRUE
                fs = [f for f in fs if f is not _FALSE]
                if not fs:
                    return _FALSE
                if len(fs) == 1:
                    return fs[0]
                if len(fs) == 2:
                    a, b = fs
                    return lambda doc: a(doc) or b(doc)
                return lambda doc: any(f(doc) for f in fs)
            case ast.Not(expr=e) if S.simplify_not(e) is not None:
                return self.pred(S.simplify_not(e))
            case ast.Not(expr=e):
                if S.is_query_condition(e, self.schema):
                    inner = self.pred(e)
                    if inner is _TRUE:
                        return _FALSE
                    if inner is _FALSE:
                        return _TRUE
                    return lambda doc: not inner(doc)
                tri = self.tri(e)
                return lambda doc: tri(doc) is False
            case ast.In(negated=True) as node:
                return self.pred(ast.Not(ast.In(node.value, node.items, node.insensitive, False)))
            case ast.Comparison() if S.simplify_bool_equals(expr) is not None:
                return self.pred(S.simplify_bool_equals(expr))
            case ast.Comparison(op=op, left=ast.Field() as fld, right=r) if self._plain(op, fld, r):
                return self._field_compare(fld, op, self.const(r), flip=False)
            case ast.Comparison(op=op, left=lft, right=ast.Field() as fld) if self._plain(op, fld, lft):
                return self._field_compare(fld, op, self.const(lft), flip=True)
            case ast.Pattern(op=op, value=ast.Field() as fld, patterns=ps) if all(
                S.is_constant(p) for p in ps
            ):
                return self._field_pattern(fld, op, [self.const(p) for p in ps])
            case ast.In(value=ast.Field() as fld, items=items, insensitive=ins) if all(
                S.is_constant(i) for i in items
            ):
                return self._field_in(fld, [self.const(i) for i in items], ins)
        tri = self.tri(expr)
        return lambda doc: tri(doc) is True

    def _plain(self, op: str, fld: ast.Field, other: ast.Expr) -> bool:
        """A field against a constant, and no null check (``x == null``, ``?absent != 1``)."""
        if not S.is_constant(other):
            return False
        nulls = S.is_null_literal(other, self.schema) or S.is_null_literal(fld, self.schema)
        return not (op in ("==", "!=") and nulls)

    def _field_compare(self, fld: ast.Field, op: str, lit: Any, flip: bool) -> Pred:
        if S.is_null_literal(fld, self.schema):
            # An absent optional field is null: any comparison with it is unknown.
            return _FALSE
        read, ftype = self.field(fld)
        lit = S.literal_as(lit, ftype)
        if lit is None:
            return _FALSE
        if ftype in ("keyword", "text", S.CASELESS) and isinstance(lit, str):
            if op == "==":
                return lambda doc: lit in read(doc)
            if op == "!=":
                return lambda doc: lit not in read(doc)
        if ftype in ("long", "double", "date") and S.is_number(lit):
            # Typed numbers on both sides: plain Python comparison per value.
            if op == "!=":
                return lambda doc: lit not in read(doc)
            test = _NUMERIC_OPS[_FLIP_OP[op] if flip else op]
            return lambda doc: any(test(v, lit) for v in read(doc))
        field_compare = S.field_compare
        return lambda doc: field_compare(op, read(doc), lit, flip) is True

    def _field_pattern(self, fld: ast.Field, op: str, pats: list) -> Pred:
        read, ftype = self.field(fld)
        if S.is_null_literal(fld, self.schema):
            return _FALSE
        pats = [S.normalize_pattern(p, ftype) for p in pats if p is not None]
        generic = S.pattern_match
        if op in ("regex", "regex~"):
            regs = [S.lucene_regex(S.to_string(p), op == "regex~") for p in pats]
            to_string = S.to_string

            def regex_pred(doc: Doc) -> bool:
                for v in read(doc):
                    s = v if type(v) is str else to_string(v)
                    for r in regs:
                        if r.fullmatch(s):
                            return True
                return False

            return regex_pred
        if ftype not in _TEXTS or not all(isinstance(p, str) for p in pats):
            return lambda doc: any(generic(op, v, p) is True for v in read(doc) for p in pats)
        test = string_matcher(pats, insensitive=op != "like")

        def pattern_pred(doc: Doc) -> bool:
            for v in read(doc):
                if type(v) is str:
                    if test(v):
                        return True
                elif any(generic(op, v, p) is True for p in pats):
                    return True
            return False

        return pattern_pred

    def _field_in(self, fld: ast.Field, items: list, ins: bool) -> Pred:
        if S.is_null_literal(fld, self.schema):
            return _FALSE
        read, ftype = self.field(fld)
        items = [S.literal_as(i, ftype) for i in items if i is not None]
        in_match = S.in_match
        if ftype in _TEXTS and all(isinstance(i, str) for i in items):
            # in~ on a field: term queries with case_insensitive, ASCII letters folded.
            keys = frozenset(ascii_lower(i) for i in items) if ins else frozenset(items)

            def in_pred(doc: Doc) -> bool:
                for v in read(doc):
                    if type(v) is str:
                        if (ascii_lower(v) if ins else v) in keys:
                            return True
                    elif any(in_match(v, i, ins) is True for i in items):
                        return True
                return False

            return in_pred
        return lambda doc: any(in_match(v, i, ins) is True for v in read(doc) for i in items)

    # --- three-valued conditions (inside scripts and under `not` of a script) ---------

    def tri(self, expr: ast.Expr) -> Tri:
        match expr:
            case ast.Literal(value=v):
                b = v if isinstance(v, bool) else None
                return lambda doc: b
            case ast.Field():
                read, _ = self.field(expr)
                any_true = S.any_true
                return lambda doc: any_true(v is True for v in read(doc))
            case ast.And(terms=ts):
                fs = [self.tri(t) for t in ts]
                and3 = S.and3

                def and_tri(doc: Doc):
                    out = True
                    for f in fs:
                        out = and3(out, f(doc))
                        if out is False:
                            return False
                    return out

                return and_tri
            case ast.Or(terms=ts):
                fs = [self.tri(t) for t in ts]
                or3 = S.or3

                def or_tri(doc: Doc):
                    out = False
                    for f in fs:
                        out = or3(out, f(doc))
                        if out is True:
                            return True
                    return out

                return or_tri
            case ast.Not(expr=e) if S.simplify_not(e) is not None:
                return self.tri(S.simplify_not(e))
            case ast.Not(expr=e):
                if S.is_query_condition(e, self.schema):
                    p = self.pred(e)
                    return lambda doc: not p(doc)
                t = self.tri(e)
                return lambda doc: None if (r := t(doc)) is None else not r
            case ast.In(negated=True) as node:
                return self.tri(ast.Not(ast.In(node.value, node.items, node.insensitive, False)))
            case ast.Comparison() if S.simplify_bool_equals(expr) is not None:
                return self.tri(S.simplify_bool_equals(expr))
            case ast.Comparison():
                return self._tri_comparison(expr)
            case ast.Pattern(op=op, value=v, patterns=ps):
                if op in ("regex", "regex~"):
                    # Bad constant patterns fail now, not per event.
                    for p in ps:
                        if S.is_constant(p):
                            S.lucene_regex(S.to_string(self.const(p)) or "", op == "regex~")
                pats = [self.val(p) for p in ps]
                pm, norm, script = S.pattern_match, S.normalize_pattern, not isinstance(v, ast.Field)
                ftype = None if script else S.field_spec(v, self.schema).ftype
                return self._over(
                    v, lambda x, doc: S.any_true(pm(op, x, norm(p(doc), ftype), script) for p in pats)
                )
            case ast.In(value=v, items=items, insensitive=ins):
                ftype = S.field_spec(v, self.schema).ftype if isinstance(v, ast.Field) else None
                vals = [self.val(i) for i in items]
                im, lit_as, script = S.in_match, S.literal_as, not isinstance(v, ast.Field)
                return self._over(
                    v, lambda x, doc: S.any_true(im(x, lit_as(i(doc), ftype), ins, script) for i in vals)
                )
            case ast.FunctionCall(name=name, args=args, insensitive=ins) if S.is_query_function(expr):
                read, ftype = self.field(args[0])
                rest = [S.normalize_pattern(self.const(a), ftype) for a in args[1:]]
                any_true, qmatch = S.any_true, S.query_function_match
                return lambda doc: any_true(qmatch(name, x, rest, ins) for x in read(doc))
        f = self.val(expr)
        return lambda doc: v if isinstance(v := f(doc), bool) else None

    def _over(self, v: ast.Expr, test: Callable[[Any, Doc], Any]) -> Tri:
        if isinstance(v, ast.Field):
            read, _ = self.field(v)
            any_true = S.any_true
            return lambda doc: any_true(test(x, doc) for x in read(doc))
        fv = self.val(v)
        return lambda doc: None if (x := fv(doc)) is None else test(x, doc)

    def _tri_comparison(self, expr: ast.Comparison) -> Tri:
        op, left, right = expr.op, expr.left, expr.right
        ln, rn = S.is_null_literal(left, self.schema), S.is_null_literal(right, self.schema)
        compare, lit_as = S.compare, S.literal_as
        if op in ("==", "!=") and (ln or rn):
            want_missing = op == "=="
            if ln and rn:
                return lambda doc: want_missing
            other = right if ln else left
            if isinstance(other, ast.Field):
                read, _ = self.field(other)
                return lambda doc: (not read(doc)) == want_missing
            fo = self.val(other)
            return lambda doc: (fo(doc) is None) == want_missing
        field_compare = S.field_compare
        if isinstance(left, ast.Field) and not isinstance(right, ast.Field):
            read, ftype = self.field(left)
            fr = self.val(right)
            return lambda doc: field_compare(op, read(doc), lit_as(fr(doc), ftype))
        if isinstance(right, ast.Field) and not isinstance(left, ast.Field):
            read, ftype = self.field(right)
            fl = self.val(left)
            return lambda doc: field_compare(op, read(doc), lit_as(fl(doc), ftype), True)
        fa, fb = self.val(left), self.val(right)
        return lambda doc: compare(op, fa(doc), fb(doc))


def string_matcher(patterns: list[str], insensitive: bool) -> Callable[[str], bool]:
    """One test for a list of wildcard patterns against a string: exact values in a
    set, ``x*`` / ``*x`` / ``*x*`` as prefix / suffix / substring checks, the rest
    as globs, all linear in the value (:func:`vigil.lucene.wildcard.any_wildcard`)."""
    return any_wildcard(patterns, insensitive)


class _Gen:
    """Writes the straight-line body of a top-level filter."""

    def __init__(self, compiler: _Compiler):
        self.c = compiler
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {}
        self.vars: dict[tuple, str] = {}

    def line(self, text: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + text)

    def bind(self, obj: Any) -> str:
        name = f"k{len(self.ns)}"
        self.ns[name] = obj
        return name

    def read(self, fld: ast.Field) -> str | None:
        """Read a field of strings inline into a local: a tuple/list of strings,
        () when missing, None when only the general reader can say."""
        spec = S.field_spec(fld, self.c.schema)
        key = tuple(spec)
        if key in self.vars:
            return self.vars[key]
        var = f"v{len(self.vars)}"
        self.vars[key] = var
        if spec.absent or spec.null_value is not None or spec.ftype not in _STRINGY:
            self.line(f"{var} = None")
            return var
        parts = spec.path
        n = len(parts)
        alts = [[".".join(parts[i:j]) for j in range(i + 2, n + 1)] for i in range(n)]

        def no_alts(obj: str, level: int) -> str:
            return "".join(f" and {self.bind(k)} not in {obj}" for k in alts[level])

        self.line(f"{var} = None")
        top_check = no_alts("doc", 0)[5:]  # without the leading " and "
        self.line(f"if {top_check or 'True'}:")
        self.line(f"o = doc.get({self.bind(parts[0])})", 2)
        depth = 2
        for level in range(1, n):
            self.line(f"if o is None: {var} = ()", depth)
            self.line(f"elif type(o) is dict{no_alts('o', level)}:", depth)
            depth += 1
            self.line(f"o = o.get({self.bind(parts[level])})", depth)
        self.line(f"if o is None: {var} = ()", depth)
        # Longer strings may be past ignore_above: the general reader judges them.
        safe = sys.maxsize if spec.limit is None else spec.limit // 2
        self.line(f"elif type(o) is str and len(o) <= {safe}: {var} = (o,)", depth)
        self.line(
            f"elif type(o) is list and {self.bind(_all_str)}(o, {safe}): {var} = o",
            depth,
        )
        return var

    def term(self, term, pred: Pred) -> None:
        slow = self.bind(pred)
        if not self.inlinable(term):
            self.line(f"if not {slow}(doc): return False")
            return
        used: list[str] = []
        expr = self.inline(term, used)
        unknown = " or ".join(f"{v} is None" for v in dict.fromkeys(used)) or "False"
        self.line(f"if {unknown}:")
        self.line(f"if not {slow}(doc): return False", 2)
        self.line(f"elif not ({expr}): return False")

    def inlinable(self, term) -> bool:
        """Can this term be tested inline on string fields read into locals?"""
        schema = self.c.schema
        match term:
            case ast.Literal(value=v):
                return isinstance(v, bool)
            case ast.Not(expr=e):
                simpler = S.simplify_not(e)
                if simpler is not None:
                    return self.inlinable(simpler)
                return S.is_query_condition(e, schema) and self.inlinable(e)
            case ast.And(terms=ts):
                return all(self.inlinable(t) for t in ts)
            case ast.Or(terms=ts):
                return all(self.inlinable(t) for t in ts)
            case ast.Comparison(op=op, left=ast.Field() as fld, right=ast.Literal(value=lit)):
                return (
                    op in ("==", "!=")
                    and not S.is_null_literal(fld, schema)
                    and (lit is None or isinstance(lit, str))
                )
            case ast.Pattern(op=op, value=ast.Field() as fld, patterns=ps):
                return (
                    op in (":", "like", "like~")
                    and not S.is_null_literal(fld, schema)
                    and all(isinstance(p, ast.Literal) and isinstance(p.value, str) for p in ps)
                )
            case ast.In(value=ast.Field() as fld, items=items):
                return not S.is_null_literal(fld, schema) and all(
                    isinstance(i, ast.Literal) and isinstance(i.value, str) for i in items
                )
        return False

    def inline(self, term, used: list[str]) -> str:
        """The Python test for an :meth:`inlinable` term; the locals it reads go to ``used``."""
        match term:
            case ast.Literal(value=v):
                return "True" if v else "False"
            case ast.Not(expr=e):
                simpler = S.simplify_not(e)
                if simpler is not None:
                    return self.inline(simpler, used)
                return f"not ({self.inline(e, used)})"
            case ast.And(terms=ts):
                return " and ".join(f"({self.inline(t, used)})" for t in ts)
            case ast.Or(terms=ts):
                return " or ".join(f"({self.inline(t, used)})" for t in ts)
            case ast.Comparison(op=op, left=ast.Field() as fld, right=ast.Literal(value=lit)):
                var = self.read(fld)
                used.append(var)
                if lit is None:
                    return f"not {var}" if op == "==" else f"bool({var})"
                return f"{self.bind(lit)} {'in' if op == '==' else 'not in'} {var}"
            case ast.Pattern(op=op, value=ast.Field() as fld, patterns=ps):
                var = self.read(fld)
                used.append(var)
                test = string_matcher([p.value for p in ps], insensitive=op != "like")
                return f"{self.bind(_any_of(test))}({var})"
            case ast.In(value=ast.Field() as fld, items=items, insensitive=ins, negated=neg):
                var = self.read(fld)
                used.append(var)
                keys = frozenset(ascii_lower(i.value) if ins else i.value for i in items)
                call = f"{self.bind(_any_lower_in if ins else _any_in)}({var}, {self.bind(keys)})"
                return f"not {call}" if neg else call
        raise AssertionError(f"not inlinable: {term!r}")

    def build(self) -> Pred:
        body = "\n".join(self.lines) if self.lines else "    pass"
        src = f"def match(doc):\n{body}\n    return True\n"
        ns = dict(self.ns)
        exec(compile(src, "<eql filter>", "exec"), ns)  # noqa: S102 - our own generated code
        match = ns["match"]
        match.__doc__ = src
        return match


def _all_str(values: list, safe: int) -> bool:
    for v in values:
        if type(v) is not str or len(v) > safe:
            return False
    return True


def _any_in(values, keys) -> bool:
    for v in values:
        if v in keys:
            return True
    return False


def _any_lower_in(values, keys) -> bool:
    for v in values:
        if ascii_lower(v) in keys:
            return True
    return False


def _any_of(test: Callable[[str], bool]) -> Callable[[Any], bool]:
    def any_match(values) -> bool:
        for v in values:
            if test(v):
                return True
        return False

    return any_match
