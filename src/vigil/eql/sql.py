"""EQL event queries as SQL boolean expressions, for columnar backends.

A checked event query becomes one SQL condition over a table whose columns hold
the event's nested structure (DuckDB reads nested Parquet as STRUCTs and LISTs):
``file.path`` is ``"file"."path"``, or a flat column named ``"file.path"``, or
both, since Elasticsearch flattens documents and reads every spelling.

The meaning is Elasticsearch's, taken from :mod:`vigil.eql.semantics` (the same
decisions the Python compiler makes): ``==``, ``in``, ``like`` are
case-sensitive and ``:``, ``in~``, ``like~`` are not; ``*`` and ``?`` are
wildcards only in ``:``, ``like`` and ``like~`` and match the whole value,
newlines included; a multi-valued field matches when any value does; a condition
on a missing field is false and its ``not`` true (so every comparison is wrapped
in ``COALESCE(..., FALSE)``: SQL's ``NOT (NULL = 'x')`` is NULL); ``x != null``
means the field has a value; ``x != "a"`` holds on a missing field (ES runs it
as ``must_not``).

The one NULL a condition may give is "unknown": a case-insensitive test on a value
outside ASCII, where the database's lower-casing is not Vigil's. SQL's three-valued
``and``/``or``/``not`` carry it up, and callers keep every row whose condition
``IS NOT FALSE`` for the Python matcher to decide.

What cannot be said faithfully (Lucene regular expressions, functions, scripts,
comparisons between types the column cannot hold) raises :class:`Unsupported`:
the caller runs that query on its Python path instead. A partial translation is
never returned.

The shape follows sqlglot: :class:`Generator` writes the SQL every engine
shares, and a dialect subclass (:class:`DuckDB`) overrides what differs, such as
"any element of a list meets a condition".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.eql import ast
from vigil.eql import semantics as S


class Unsupported(Exception):
    """This query (or part of it) has no faithful SQL form: use the Python path."""


@dataclass(frozen=True)
class SqlType:
    """A column type as the generator needs it.

    ``kind`` is ``"struct"`` (``fields`` holds the members), ``"list"``
    (``element`` holds the element type), ``"string"``, ``"integer"``,
    ``"float"``, ``"boolean"``, or ``"other"`` (anything else: timestamps, JSON,
    maps...; such a field may only be tested for presence).
    """

    kind: str
    fields: Mapping[str, SqlType] = field(default_factory=dict)
    element: SqlType | None = None

    @staticmethod
    def struct(fields: Mapping[str, SqlType]) -> SqlType:
        return SqlType("struct", dict(fields))

    @staticmethod
    def list_of(element: SqlType) -> SqlType:
        return SqlType("list", element=element)


STRING = SqlType("string")
INTEGER = SqlType("integer")
FLOAT = SqlType("float")
BOOLEAN = SqlType("boolean")
OTHER = SqlType("other")

_SCALARS = ("string", "integer", "float", "boolean", "other")
_FLIP_OP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_SQL_OP = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True)
class Route:
    """One way a dotted field reaches the table: a SQL expression that is a scalar
    (``many`` false) or a flat list of scalars (``many`` true), of type ``leaf``."""

    expr: str
    many: bool
    leaf: SqlType


ElementTest = Callable[[str, SqlType], str]


class Generator:
    """SQL shared by the engines; a dialect overrides :meth:`any_element`,
    :meth:`flatten`, :meth:`transform` and what else differs."""

    def __init__(self, columns: Mapping[str, SqlType], category_field: str = "event.category") -> None:
        self.columns = dict(columns)
        self.category_field = category_field
        self._lambda = 0

    # --- dialect hooks -----------------------------------------------------------------

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def string(self, text: str) -> str:
        if "\x00" in text:
            raise Unsupported("a NUL character in a string literal")
        return "'" + text.replace("'", "''") + "'"

    def member(self, expr: str, name: str) -> str:
        return f"{expr}.{self.quote(name)}"

    def any_element(self, lst: str, test: Callable[[str], str]) -> str:  # pragma: no cover - dialects
        raise NotImplementedError

    def transform(self, lst: str, fn: Callable[[str], str]) -> str:  # pragma: no cover - dialects
        raise NotImplementedError

    def flatten(self, lst: str) -> str:  # pragma: no cover - dialects
        raise NotImplementedError

    def lower(self, expr: str) -> str:
        return f"lower({expr})"

    def char_length(self, expr: str) -> str:
        """The number of characters (code points) of a string."""
        return f"length({expr})"

    def non_ascii(self, expr: str) -> str:
        """TRUE when the text holds a character outside ASCII (NULL for NULL): more bytes
        than characters, far cheaper than a regular expression."""
        return f"(strlen({expr}) <> length({expr}))"

    def like(self, expr: str, pattern: str) -> str:
        """``expr`` against an EQL wildcard pattern (``*``, ``?``; no escape character)."""
        out = []
        for ch in pattern:
            if ch == "*":
                out.append("%")
            elif ch == "?":
                out.append("_")
            elif ch in "%_\\":
                out.append("\\" + ch)
            else:
                out.append(ch)
        return f"{expr} LIKE {self.string(''.join(out))} ESCAPE '\\'"

    def lambda_var(self) -> str:
        self._lambda += 1
        return f"_v{self._lambda}"

    # --- entry points ----------------------------------------------------------------------

    def event_query(self, query: ast.EventQuery) -> str:
        """The SQL condition of an event query: its category and its condition."""
        parts = []
        if query.category is not None:
            cat = ast.Comparison("==", ast.Field(S.path_of(self.category_field)), ast.Literal(query.category))
            parts.append(self.condition(cat))
        parts.append(self.condition(query.condition))
        parts = [p for p in parts if p != "TRUE"]
        if "FALSE" in parts:
            return "FALSE"
        if not parts:
            return "TRUE"
        return parts[0] if len(parts) == 1 else " AND ".join(f"({p})" for p in parts)

    # --- two-valued conditions (vigil.eql.compiler._Compiler.pred) ------------------------

    def condition(self, expr: ast.Expr) -> str:
        """A SQL expression that is TRUE or FALSE; NULL only for "unknown" (see :meth:`_any`)."""
        match expr:
            case ast.Literal(value=v):
                if isinstance(v, bool):
                    return "TRUE" if v else "FALSE"
                return "FALSE"
            case ast.And(terms=ts):
                parts = [self.condition(t) for t in ts]
                if "FALSE" in parts:
                    return "FALSE"
                parts = [p for p in parts if p != "TRUE"]
                if not parts:
                    return "TRUE"
                return parts[0] if len(parts) == 1 else "(" + " AND ".join(f"({p})" for p in parts) + ")"
            case ast.Or(terms=ts):
                parts = [self.condition(t) for t in ts]
                if "TRUE" in parts:
                    return "TRUE"
                parts = [p for p in parts if p != "FALSE"]
                if not parts:
                    return "FALSE"
                return parts[0] if len(parts) == 1 else "(" + " OR ".join(f"({p})" for p in parts) + ")"
            case ast.Not(expr=e) if S.simplify_not(e) is not None:
                return self.condition(S.simplify_not(e))
            case ast.Not(expr=e):
                if not S.is_query_condition(e):
                    raise Unsupported("not of a script condition (three-valued)")
                inner = self.condition(e)
                if inner in ("TRUE", "FALSE"):
                    return "FALSE" if inner == "TRUE" else "TRUE"
                return f"NOT ({inner})"
            case ast.In(negated=True) as node:
                return self.condition(ast.Not(ast.In(node.value, node.items, node.insensitive, False)))
            case ast.Comparison() if S.simplify_bool_equals(expr) is not None:
                return self.condition(S.simplify_bool_equals(expr))
            case ast.Comparison(op=op, left=ast.Field() as fld, right=r) if S.is_constant(r):
                return self._compare(fld, op, r)
            case ast.Comparison(op=op, left=lft, right=ast.Field() as fld) if S.is_constant(lft):
                return self._compare(fld, _FLIP_OP[op], lft)
            case ast.Pattern(op=op, value=ast.Field() as fld, patterns=ps) if all(
                S.is_constant(p) for p in ps
            ):
                return self._pattern(fld, op, [_const(p) for p in ps])
            case ast.In(value=ast.Field() as fld, items=items, insensitive=ins) if all(
                S.is_constant(i) for i in items
            ):
                return self._in(fld, [_const(i) for i in items], ins)
            case ast.Field() as fld:
                # A field as a condition: true when any value is the boolean true.
                return self._any(fld, lambda v, t: f"{v} = TRUE" if t.kind == "boolean" else "FALSE")
        raise Unsupported(f"no SQL form for {type(expr).__name__}")

    # --- leaves ------------------------------------------------------------------------

    def _compare(self, fld: ast.Field, op: str, other: ast.Expr) -> str:
        if op in ("==", "!=") and S.is_null_literal(other, None):
            has = self._has_value(fld)
            if op == "!=":
                return has
            return "FALSE" if has == "TRUE" else "TRUE" if has == "FALSE" else f"NOT ({has})"
        _not_ip(fld)
        lit = _const(other)
        if lit is None:
            return "FALSE"
        caseless = _caseless(fld)
        if caseless:
            lit = S.literal_as(lit, S.CASELESS)
        if op == "!=":
            # Elasticsearch's must_not term: true on a missing field, false when any value is equal.
            eq = self._any(fld, lambda v, t: self._element_compare(v, t, "==", lit), caseless=caseless)
            return "TRUE" if eq == "FALSE" else "FALSE" if eq == "TRUE" else f"NOT ({eq})"
        return self._any(fld, lambda v, t: self._element_compare(v, t, op, lit), caseless=caseless)

    def _element_compare(self, v: str, t: SqlType, op: str, lit: Any) -> str:
        """``value op literal`` for one value of type ``t`` (semantics.compare)."""
        if t.kind == "string":
            if isinstance(lit, str):
                return f"{v} {_SQL_OP[op]} {self.string(lit)}"
            raise Unsupported("a number or boolean compared with a string column")
        if t.kind in ("integer", "float"):
            if isinstance(lit, bool):
                raise Unsupported("a boolean compared with a numeric column")
            if isinstance(lit, (int, float)):
                return f"{v} {_SQL_OP[op]} {_number(lit)}"
            if isinstance(lit, str) and op in ("==", "!=") and not S.NUMBER_TEXT.match(lit.strip()):
                # A numeric value's text never equals a string that is not a number.
                return "FALSE" if op == "==" else f"{v} IS NOT NULL"
            if isinstance(lit, str) and S.NUMBER_TEXT.match(lit.strip()) and lit.strip() == lit:
                return f"{v} {_SQL_OP[op]} {_number(float(lit))}"
            raise Unsupported("a string compared with a numeric column")
        if t.kind == "boolean":
            if isinstance(lit, bool) and op in ("==", "!="):
                return f"{v} {_SQL_OP[op]} {'TRUE' if lit else 'FALSE'}"
            raise Unsupported("a boolean column compared with a non-boolean")
        raise Unsupported(f"a comparison on a column of type {t.kind}")

    def _pattern(self, fld: ast.Field, op: str, pats: list) -> str:
        _not_ip(fld)
        if op in ("regex", "regex~"):
            raise Unsupported("Lucene regular expressions")
        caseless = _caseless(fld)
        pats = [S.normalize_pattern(p, S.CASELESS if caseless else None) for p in pats if p is not None]
        if not pats:
            return "FALSE"
        insensitive = op != "like"

        def test(v: str, t: SqlType) -> str:
            if t.kind != "string":
                if all(not isinstance(p, str) for p in pats) and t.kind in ("integer", "float"):
                    return " OR ".join(f"({self._element_compare(v, t, '==', p)})" for p in pats)
                raise Unsupported("a pattern on a non-string column")
            if not all(isinstance(p, str) for p in pats):
                raise Unsupported("a non-string pattern on a string column")
            val = self.lower(v) if insensitive else v
            exact = [p.lower() if insensitive else p for p in pats if not S.has_wildcard(p)]
            wild = [p.lower() if insensitive else p for p in pats if S.has_wildcard(p)]
            terms = []
            if exact:
                terms.append(self._in_list(val, exact))
            terms.extend(self.like(val, p) for p in wild)
            return " OR ".join(f"({x})" for x in terms) if len(terms) > 1 else terms[0]

        if insensitive:
            _ascii_only(pats)
        return self._any(fld, test, unknown_off_ascii=insensitive, caseless=caseless)

    def _in(self, fld: ast.Field, items: list, insensitive: bool) -> str:
        _not_ip(fld)
        caseless = _caseless(fld)
        items = [S.literal_as(i, S.CASELESS) if caseless else i for i in items if i is not None]
        if not items:
            return "FALSE"

        def test(v: str, t: SqlType) -> str:
            if t.kind == "string" and all(isinstance(i, str) for i in items):
                if insensitive:
                    return self._in_list(self.lower(v), [i.lower() for i in items])
                return self._in_list(v, items)
            return " OR ".join(f"({self._element_compare(v, t, '==', i)})" for i in items)

        if insensitive:
            _ascii_only(items)
        return self._any(fld, test, unknown_off_ascii=insensitive, caseless=caseless)

    def _in_list(self, v: str, texts: list[str]) -> str:
        uniq = list(dict.fromkeys(texts))
        if len(uniq) == 1:
            return f"{v} = {self.string(uniq[0])}"
        return f"{v} IN ({', '.join(self.string(x) for x in uniq)})"

    # --- fields ------------------------------------------------------------------------

    def routes(self, fld: ast.Field) -> list[Route]:
        """Every way the field reaches the table (fields.lookup: nested objects, dotted
        keys at any level, arrays of objects), each a scalar or a flat list."""
        out: list[Route] = []
        # A multi-field reads its parent (vigil.eql.multifields).
        parts = S.field_spec(fld, None).path
        self._walk(None, SqlType.struct(self.columns), parts, 0, False, out)
        return out

    def _walk(self, expr: str | None, typ: SqlType, parts: tuple, i: int, many: bool, out: list) -> None:
        while typ.kind == "list":
            expr = expr if not many else self.flatten(expr)
            many = True
            typ = typ.element
        if i == len(parts):
            if typ.kind == "struct":
                return  # an object is not a value
            out.append(Route(expr, many, typ))
            return
        if typ.kind != "struct":
            return  # a scalar on the way: nothing below it
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            child = typ.fields.get(key)
            if child is None:
                continue
            if expr is None:
                sub = self.quote(key)
            elif many:
                sub = self.transform(expr, lambda x, k=key: self.member(x, k))
            else:
                sub = self.member(expr, key)
            self._walk(sub, child, parts, j, many, out)

    def _any(
        self, fld: ast.Field, test: ElementTest, *, unknown_off_ascii: bool = False, caseless: bool = False
    ) -> str:
        """True when any value of the field passes ``test`` (given a SQL value and its type).

        With ``unknown_off_ascii`` (case-insensitive tests: the database's lower-casing
        may differ from Vigil's outside ASCII), a non-ASCII text value makes the answer
        NULL, "unknown", unless an ASCII value already passes. SQL's three-valued AND, OR
        and NOT carry the unknown up, and the caller keeps every row whose condition is
        not FALSE for the Python matcher to decide: a row is never dropped on a guess.

        With ``caseless`` (a field with the ``lowercase`` normalizer), text values are
        tested lower-cased, exact on ASCII and "unknown" outside it (LowerCaseFilter is
        Java's per-code-point lower-casing, which the database's need not be).
        """
        if caseless:
            unknown_off_ascii = True
            plain = test

            def test(v: str, t: SqlType) -> str:
                return plain(self.lower(v), t) if t.kind == "string" else plain(v, t)

        parts = []
        # A string longer than half its ignore_above may be unindexed (UTF-16 length):
        # "unknown" too, for the compiled matcher to judge (semantics.too_long).
        limit = S.field_spec(fld, None).limit
        for r in self.routes(fld):
            odd_tests = []
            if r.leaf.kind == "string":
                if unknown_off_ascii:
                    odd_tests.append(self.non_ascii)
                if limit is not None:
                    odd_tests.append(lambda x: f"{self.char_length(x)} > {limit // 2}")
            kleene = bool(odd_tests)

            def unsure(x: str, odd_tests=odd_tests) -> str:
                return " OR ".join(f"({t(x)})" for t in odd_tests)

            if r.many:
                if kleene:
                    sure = self.any_element(
                        r.expr, lambda x, r=r: f"NOT ({unsure(x)}) AND ({test(x, r.leaf)})"
                    )
                    odd = self.any_element(r.expr, unsure)
                    parts.append(f"(CASE WHEN {sure} THEN TRUE WHEN {odd} THEN NULL ELSE FALSE END)")
                    continue
                cond = self.any_element(r.expr, lambda x, r=r: test(x, r.leaf))
            else:
                cond = test(r.expr, r.leaf)
                if kleene and cond != "FALSE":
                    parts.append(f"(CASE WHEN {unsure(r.expr)} THEN NULL ELSE COALESCE({cond}, FALSE) END)")
                    continue
            if cond == "FALSE":
                continue
            parts.append(f"COALESCE({cond}, FALSE)")
        if not parts:
            return "FALSE"
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def _has_value(self, fld: ast.Field) -> str:
        return self._any(fld, lambda v, t: f"{v} IS NOT NULL")


class DuckDB(Generator):
    """DuckDB: lambdas over lists, ``flatten``, STRUCT member access."""

    def any_element(self, lst: str, test: Callable[[str], str]) -> str:
        x = self.lambda_var()
        return f"len(list_filter({lst}, lambda {x}: {test(x)})) > 0"

    def transform(self, lst: str, fn: Callable[[str], str]) -> str:
        x = self.lambda_var()
        return f"list_transform({lst}, lambda {x}: {fn(x)})"

    def flatten(self, lst: str) -> str:
        return f"flatten({lst})"


def _not_ip(fld: ast.Field) -> None:
    """An ip field's text is not its value: ``::ffff:10.1.2.3`` is ``10.1.2.3`` and
    ranges order 16-byte addresses (semantics.ip_key), so such a test runs in Python."""
    if S.field_spec(fld, None).ftype == "ip":
        raise Unsupported(f"a value test on the ip field {fld.name}")


def _caseless(fld: ast.Field) -> bool:
    """A keyword field with the lowercase normalizer (a ``caseless`` multi-field)."""
    return S.field_spec(fld, None).ftype == S.CASELESS


def _ascii_only(values: list) -> None:
    """A case-insensitive pattern outside ASCII is left to Python, whose lower-casing is Vigil's."""
    if any(isinstance(v, str) and not v.isascii() for v in values):
        raise Unsupported("a case-insensitive pattern outside ASCII")


def _const(expr: ast.Expr) -> Any:
    if isinstance(expr, ast.Literal):
        return expr.value
    from vigil.eql.interpreter import evaluate

    try:
        return evaluate(expr, None, None)
    except Exception as exc:  # noqa: BLE001 - a constant we cannot fold has no SQL form
        raise Unsupported(f"constant expression: {exc}") from None


def _number(x: int | float) -> str:
    if isinstance(x, float):
        if x != x or x in (float("inf"), float("-inf")):
            raise Unsupported("a non-finite number")
        return repr(x) if "e" not in repr(x) else f"{x:.17g}"
    return str(x)


def event_sql(
    query: ast.EventQuery | ast.Statement | str,
    columns: Mapping[str, SqlType],
    *,
    dialect: type[Generator] = DuckDB,
    category_field: str = "event.category",
) -> str:
    """The SQL condition of an event query over a table of ``columns``.

    Raises :class:`Unsupported` when the query (or any part of it) has no faithful
    SQL form, and EqlError for a query that does not parse or check.
    """
    if isinstance(query, str):
        from vigil import eql

        query = eql.compile(query).statement
    if isinstance(query, ast.Statement):
        query = query.query
    if not isinstance(query, ast.EventQuery):
        raise Unsupported("only event queries have a SQL form (sequences and samples run in Python)")
    return dialect(columns, category_field).event_query(query)
