"""The checks Elasticsearch's EQL verifier makes that a user meets.

Unknown functions (with a suggestion), argument counts and literal argument
types, ``~`` on a function without a case-insensitive form, unknown fields when
a mapping is known (``Unknown column [x]``, unless written ``?x``), non-boolean
conditions, patterns or ``in`` lists naming fields, and malformed regular
expressions. Comparing a keyword field with a number is allowed, as in ES (the
spec query optionalNoDocsFieldNumericEquality runs ``?kw == 123`` and finds
nothing): the number is searched as its text. Each error is an
:class:`EqlTypeError` at the offending node's line and column.
"""

from __future__ import annotations

import difflib

from vigil.eql import ast
from vigil.eql import semantics as S
from vigil.eql.errors import EqlTypeError
from vigil.eql.functions import ANY, BOOL, FUNCTIONS, NUM, STR, lookup_function
from vigil.eql.schema import Schema

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_STRINGS = frozenset({"keyword", "text"})


def check(node: ast.Node, schema: Schema | None = None, text: str | None = None) -> None:
    """Raise :class:`EqlTypeError` for the first problem found in ``node``."""
    if text is None and isinstance(node, ast.Statement):
        text = node.text or None
    _Checker(schema, text).node(node)


def render(expr: ast.Node) -> str:
    """An expression written back as EQL, for error messages."""
    match expr:
        case ast.Literal(value=v):
            if v is None:
                return "null"
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, str):
                return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            return str(v)
        case ast.Field(optional=o):
            return ("?" if o else "") + expr.name
        case ast.Comparison(op=op, left=a, right=b) | ast.Arithmetic(op=op, left=a, right=b):
            return f"{render(a)} {op} {render(b)}"
        case ast.Pattern(op=op, value=v, patterns=ps):
            pats = render(ps[0]) if len(ps) == 1 else "(" + ", ".join(render(p) for p in ps) + ")"
            return f"{render(v)} {op} {pats}"
        case ast.In(value=v, items=items, insensitive=i, negated=n):
            op = ("not in" if n else "in") + ("~" if i else "")
            return f"{render(v)} {op} (" + ", ".join(render(x) for x in items) + ")"
        case ast.Not(expr=e):
            return f"not {render(e)}"
        case ast.Negate(expr=e):
            return f"-{render(e)}"
        case ast.And(terms=ts):
            return " and ".join(render(t) for t in ts)
        case ast.Or(terms=ts):
            return " or ".join(render(t) for t in ts)
        case ast.FunctionCall(name=n, args=args, insensitive=i):
            return f"{n}{'~' if i else ''}(" + ", ".join(render(a) for a in args) + ")"
    return type(expr).__name__


def _literal_kind(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "double"
    return "keyword"


class _Checker:
    def __init__(self, schema: Schema | None, text: str | None):
        self.schema = schema
        self.text = text

    def error(self, node: ast.Node, message: str) -> EqlTypeError:
        line, col = getattr(node, "loc", (0, 0))
        if line == 0:
            return EqlTypeError(message, None, None, self.text)
        return EqlTypeError(message, line, col, self.text)

    # --- walking ------------------------------------------------------------------

    def node(self, node: ast.Node) -> None:
        if isinstance(node, ast.EventQuery):
            self.condition(node.condition)
            return
        if isinstance(node, ast.Expr):
            self.expr(node)
            return
        for child in ast.children(node):
            self.node(child)

    def condition(self, expr: ast.Expr) -> None:
        self.expr(expr)
        kind = self.kind(expr)
        if kind not in (BOOL, ANY, "null"):
            raise self.error(
                expr, f"Condition expression needs to be boolean, found [{self.type_name(expr).upper()}]"
            )

    def expr(self, expr: ast.Expr) -> None:
        match expr:
            case ast.Field():
                self.field(expr)
            case ast.FunctionCall():
                for a in expr.args:
                    self.expr(a)
                self.function(expr)
            case ast.And(terms=ts) | ast.Or(terms=ts):
                for t in ts:
                    self.condition(t)
            case ast.Not(expr=e):
                self.condition(e)
            case ast.Comparison(left=a, right=b):
                self.expr(a)
                self.expr(b)
            case ast.Arithmetic(left=a, right=b):
                self.expr(a)
                self.expr(b)
                for side in (a, b):
                    kind = self.kind(side)
                    if kind not in (NUM, ANY, "null"):
                        raise self.error(
                            side,
                            f"argument of [{render(expr)}] must be [numeric], found value [{render(side)}] "
                            f"type [{self.type_name(side)}]",
                        )
            case ast.Negate(expr=e):
                self.expr(e)
            case ast.Pattern(op=op, value=v, patterns=ps):
                self.expr(v)
                for p in ps:
                    self.expr(p)
                    if not S.is_constant(p):
                        raise self.error(
                            p,
                            f"Comparisons against fields are not (currently) supported; "
                            f"offender [{render(p)}] in [{render(expr)}]",
                        )
                    if op in ("regex", "regex~") and isinstance(p, ast.Literal) and isinstance(p.value, str):
                        try:
                            S.lucene_regex(p.value, op == "regex~")
                        except S.RegexSyntaxError as exc:
                            raise self.error(p, str(exc)) from None
            case ast.In(value=v, items=items):
                self.expr(v)
                for i in items:
                    self.expr(i)
                    if not S.is_constant(i):
                        raise self.error(
                            i,
                            f"Comparisons against fields are not (currently) supported; "
                            f"offender [{render(i)}] in [{render(expr)}]",
                        )

    def field(self, fld: ast.Field) -> None:
        if self.schema is None or fld.optional or self.schema.knows(fld.name):
            return
        raise self.error(fld, f"Unknown column [{fld.name}]")

    def function(self, call: ast.FunctionCall) -> None:
        spec = lookup_function(call.name)
        if spec is None:
            names = {n: s.name for n, s in FUNCTIONS.items()}
            close = difflib.get_close_matches(call.name.lower(), list(names), n=1, cutoff=0.75)
            hint = f", did you mean [{names[close[0]]}]?" if close else ""
            raise self.error(call, f"Unknown function [{call.name}]{hint}")
        n = len(call.args)
        if n < spec.min_args or (spec.max_args is not None and n > spec.max_args):
            if spec.max_args is None:
                want = f"at least {spec.min_args}"
            elif spec.min_args == spec.max_args:
                want = str(spec.min_args)
            else:
                want = f"{spec.min_args} to {spec.max_args}"
            raise self.error(
                call, f"function [{spec.name}] expects {want} arguments, found {n} in [{render(call)}]"
            )
        if call.insensitive and not spec.insensitive_ok:
            raise self.error(call, f"function [{spec.name}] has no case-insensitive form [{spec.name}~]")
        for i, arg in enumerate(call.args):
            want = spec.kind_of(i)
            got = self.kind(arg)
            if want == ANY or got in (ANY, "null") or got == want:
                continue
            ordinal = _ORDINALS[i] if i < len(_ORDINALS) else f"argument {i + 1}"
            raise self.error(
                arg,
                f"{ordinal} argument of [{render(call)}] must be [{want}], found value [{render(arg)}] "
                f"type [{self.type_name(arg)}]",
            )
        if spec.name == "cidrMatch":
            for arg in call.args[1:]:
                if not isinstance(arg, ast.Literal):
                    raise self.error(
                        arg,
                        f"second argument of [{render(call)}] must be a constant, received [{render(arg)}]",
                    )
                if isinstance(arg.value, str) and not S.is_cidr(arg.value):
                    raise self.error(arg, f"[{arg.value}] is not a valid CIDR address")

    # --- types ----------------------------------------------------------------------

    def type_name(self, expr: ast.Expr) -> str:
        """The ES data type name of an expression, as best known ("unknown" if not)."""
        if isinstance(expr, ast.Literal):
            return _literal_kind(expr.value)
        if isinstance(expr, ast.Field):
            t = self.schema.field_type(expr.name) if self.schema is not None else None
            return t or "unknown"
        kind = self.kind(expr)
        return {NUM: "long", STR: "keyword", BOOL: "boolean"}.get(kind, "unknown")

    def kind(self, expr: ast.Expr) -> str:
        """string / number / boolean / null, or any when not known before running."""
        match expr:
            case ast.Literal(value=v):
                if v is None:
                    return "null"
                if isinstance(v, bool):
                    return BOOL
                return NUM if isinstance(v, (int, float)) else STR
            case ast.Field():
                t = self.schema.field_type(expr.name) if self.schema is not None else None
                if t in _STRINGS:
                    return STR
                if t in ("long", "double"):
                    return NUM
                if t == "boolean":
                    return BOOL
                return ANY
            case ast.Comparison() | ast.Pattern() | ast.In() | ast.Not() | ast.And() | ast.Or():
                return BOOL
            case ast.Arithmetic() | ast.Negate():
                return NUM
            case ast.FunctionCall(name=name):
                spec = lookup_function(name)
                return spec.returns if spec is not None else ANY
        return ANY
