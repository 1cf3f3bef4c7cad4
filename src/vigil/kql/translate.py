"""A KQL tree as an EQL event query (``any where <condition>``) with the meaning
Elasticsearch gives the query DSL Kibana builds for it.

Kibana's detection engine turns KQL into the query DSL with an index pattern
that lists no fields (security_solution ``get_query_filter.ts``: ``fields: []``,
``allowLeadingWildcards: true``), so the query Kibana writes never depends on
field types (``kbn-es-query`` ``functions/is.ts``, ``range.ts``, ``exists.ts``):

- ``f: v`` is ``match`` (``match_phrase`` when quoted), ``f: *`` is ``exists``,
  ``f: a*b`` is ``query_string`` with the non-wildcard parts escaped
  (``node_types/wildcard.ts``: ``?`` and every other reserved character are
  literal; whitespace is not escaped), ``f < v`` is ``range``;
  ``and``/``or``/``not`` are ``bool`` ``filter``/``should``/``must_not``.

What a query matches then depends on the field's type in Elasticsearch's mapping,
which Vigil takes from ECS (:func:`vigil.eql.ecs.ecs_type`; any other field is
keyword, as ECS and dynamic mapping make strings):

- keyword (and ``wildcard``): ``match`` and ``match_phrase`` analyse the value with
  the keyword analyzer, one exact, case-sensitive term; ``query_string``
  wildcards on keyword are case-sensitive too (no normalizer in ECS). Here: a
  one-item ``in`` (exact, case-sensitive, any value of an array) and ``like``
  (or an anchored ``regex`` when the text holds a literal ``*`` or ``?``).
- a multi-field (``process.name.caseless``, ``process.command_line.text``) is its
  parent's values indexed as the sub-field (:mod:`vigil.eql.multifields`);
  ``*.caseless`` (Elastic Defend's keyword multi-fields with the ``lowercase``
  normalizer, which ``match`` and ``query_string`` apply to the value too) compares
  exactly after Lucene's LowerCaseFilter on both sides, which the field's reader
  and the literal's reading do (:data:`vigil.eql.semantics.CASELESS`).
- an unquoted number stays text (grammar.peggy: only ``true``/``false``/``null`` are
  constants): on keyword the exact text (``1.50`` is not ``1.5``); on long the number
  ES reads from it (``007`` is 7, ``1e3`` 1000, a decimal part matches nothing); ip: an address
  or a CIDR block (``IpFieldMapper`` term queries take ``a.b.c.d/n``), here
  ``cidrMatch``, or a range of addresses, all on 16 bytes (``::ffff:10.1.2.3`` is
  ``10.1.2.3``); boolean: ``true``/``false``.
- ``text`` and ``match_only_text`` (analysed by the ``standard`` analyzer): the
  value is analysed too; ``match`` is any of its tokens, ``match_phrase`` its tokens
  in a row, and a ``query_string`` wildcard is a prefix or wildcard query on one
  token, its literal parts lower-cased and not tokenized
  (:mod:`vigil.lucene.analysis`). Here: the internal query functions
  ``text.match``, ``text.match_phrase`` and ``text.wildcard``, which test each value
  of the field (a phrase never spans two values: ``position_increment_gap``).
- ``f*: *`` (a wildcard in the field name, the value ``*``) is ``exists`` on the
  pattern, which Elasticsearch expands to the mapped fields it matches, or else to
  the fields under it (``ExistsQueryBuilder.getMappedField``: the pattern, then
  ``pattern.*``); here the fields of the mapping Vigil knows (:mod:`vigil.eql.ecs`).
- a range on a date field, given the time of a run (``now_ms``): ``now`` date math
  read as Elasticsearch reads a range bound (:mod:`vigil.kql.datemath`), or an
  absolute date (a partial one rounded per bound), in UTC (``dateFormatTZ: 'Zulu'``).
- Everything whose exact meaning needs more (dates with no run time, floats, ranges on strings,
  ``nested`` mappings, other wildcards in field names, a value with no field) raises
  :class:`KqlUnsupported`: the rule is reported and not run.

Every EQL construct used holds on arrays (any value matches) and is false on a
missing field, and its ``not`` is the complement, as ``must_not`` is. Two EQL
rewrites that KQL does not have are kept out on purpose: same-field comparisons
joined by ``and`` (EQL makes them one query on one value) and ``not`` of a range
(EQL flips it into the opposite range, false on a missing field): equality is
written as ``in`` and a range as a one-term ``or``, which neither rewrite touches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache

from vigil.eql import ast, ecs
from vigil.eql import semantics as S
from vigil.eql.ecs import ecs_type
from vigil.eql.fields import split_path
from vigil.eql.semantics import DateValue
from vigil.kql import datemath
from vigil.kql import tree as T
from vigil.kql.errors import KqlUnsupported
from vigil.lucene.analysis import field_analyzer

# Fields mapped as `text` (analysed by the standard analyzer) in ECS and in the
# integrations the prebuilt rules read; `*.text` are ECS multi-fields.
TEXT_FIELDS = frozenset(
    {
        "message",
        "error.message",
        "error.stack_trace.text",
        "powershell.file.script_block_text",
        "powershell.command.value",
        "winlog.event_data.ScriptBlockText",
    }
)
_INTEGER = re.compile(r"-?\d+\Z")
# What Java's BigDecimal (and Double.parseDouble) read as a decimal number.
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_BOOL_TEXT = {"true": True, "false": False}


_ANALYSED = frozenset({"text", "match_only_text"})


def field_type(name: str) -> str:
    """The mapping type a query on ``name`` meets: ``text`` (any analysed type), an
    ECS type, or keyword."""
    if name in TEXT_FIELDS or name.endswith(".text"):
        return "text"
    if name.endswith(".caseless"):
        return "caseless"
    ftype = ecs_type(name) or "keyword"
    return "text" if ftype in _ANALYSED else ftype


@lru_cache(maxsize=1)
def known_fields() -> tuple[str, ...]:
    """Every field of the mapping Vigil knows (ECS and the packages' fields), sorted."""
    return tuple(sorted(ecs._table()))


def pattern_fields(parts: Sequence[str]) -> list[str]:
    """The known fields a field-name pattern names: its literal ``parts`` in order,
    ``*`` between them matching any run of characters, dots included
    (Regex.simpleMatch, as SearchExecutionContext.getMatchingFieldNames reads it)."""
    first, last, middle = parts[0], parts[-1], parts[1:-1]
    out = []
    for name in known_fields():
        if len(name) < len(first) + len(last) or not name.startswith(first) or not name.endswith(last):
            continue
        i, end = len(first), len(name) - len(last)
        for p in middle:
            i = name.find(p, i, end)
            if i < 0:
                break
            i += len(p)
        else:
            out.append(name)
    return out


def glob_condition(
    fld: ast.Field, literals: Sequence[str], wilds: str, *, insensitive: bool = False, loc: T.Loc = T.NO_LOC
) -> ast.Expr:
    """``fld`` against a wildcard pattern given as its literal runs with, between
    each two, one wildcard of ``wilds`` (``*`` any run of characters, ``?`` one).
    EQL's ``like`` has no escape character, so a literal ``*`` or ``?`` makes the
    pattern an anchored Lucene regex, every character but letters and digits
    escaped. ``insensitive`` folds ASCII letters (``like~``/``regex~``), as
    Elasticsearch's ``case_insensitive`` wildcard queries do."""
    if not any("*" in p or "?" in p for p in literals):
        text = "".join(p + w for p, w in zip(literals, wilds, strict=False)) + literals[-1]
        op = "like~" if insensitive else "like"
        return ast.Pattern(op, fld, (ast.Literal(text, loc=loc),), loc=fld.loc)
    escaped = ["".join(c if c.isalnum() else "\\" + c for c in p) for p in literals]
    regex = (
        "".join(p + (".*" if w == "*" else ".") for p, w in zip(escaped, wilds, strict=False)) + escaped[-1]
    )
    op = "regex~" if insensitive else "regex"
    return ast.Pattern(op, fld, (ast.Literal(regex, loc=loc),), loc=fld.loc)


def value_condition(name: str, text: str, *, quoted: bool, constant: object = ...) -> ast.Expr:
    """``name: text`` as KQL translates it: ``match_phrase`` when ``quoted``, else
    ``match``, with the meaning the field's type gives it; ``constant`` is a JSON
    ``true``/``false``. Raises :class:`KqlUnsupported`."""
    node = T.Is(T.Value((name,)), T.Value((text,), quoted=quoted, constant=constant))
    return _Translator("").is_(node)


def range_condition(name: str, op: T.RangeOp, text: str) -> ast.Expr:
    """``name op text`` as KQL translates it (long and ip fields); raises :class:`KqlUnsupported`."""
    return _Translator("").range(T.Range(T.Value((name,)), op, T.Value((text,), quoted=True)))


def to_eql(node: T.Node, text: str = "", *, now_ms: int | None = None) -> ast.Statement:
    """The EQL statement with the KQL query's meaning; raises :class:`KqlUnsupported`.
    ``now_ms`` is the time of the run date math is read at (none: date ranges are
    not supported)."""
    return ast.Statement(ast.EventQuery(None, _Translator(text, now_ms).expr(node)), text=text)


class _Translator:
    def __init__(self, text: str, now_ms: int | None = None):
        self.text = text
        self.now_ms = now_ms

    def unsupported(self, loc: T.Loc, message: str) -> KqlUnsupported:
        line, col = loc if loc != T.NO_LOC else (None, None)
        return KqlUnsupported(message, line, col, self.text or None)

    def expr(self, node: T.Node) -> ast.Expr:
        match node:
            case T.Or(terms=ts):
                return ast.Or(tuple(self.expr(t) for t in ts), loc=node.loc)
            case T.And(terms=ts):
                return ast.And(tuple(self.expr(t) for t in ts), loc=node.loc)
            case T.Not(query=q):
                return ast.Not(self.expr(q), loc=node.loc)
            case T.Is():
                return self.is_(node)
            case T.Range():
                return self.range(node)
            case T.Nested():
                # ES runs `nested` only on a field mapped as nested, which ECS does not use.
                raise self.unsupported(node.loc, "a nested query (needs a nested mapping)")
            case T.MatchAll():
                raise self.unsupported(node.loc, "an empty query (matches every document)")
        raise AssertionError(f"unknown KQL node {node!r}")

    def field(self, value: T.Value | None, loc: T.Loc) -> tuple[ast.Field, str]:
        if value is None:
            raise self.unsupported(loc, "a value with no field (a search of all fields)")
        if value.is_wildcard:
            raise self.unsupported(value.loc, f"a wildcard in the field name {value.text!r}")
        if value.constant is not ...:
            raise self.unsupported(value.loc, f"the field name {value.text!r}")
        name = value.parts[0]
        return ast.Field(split_path(name), loc=value.loc), field_type(name)

    def is_(self, node: T.Is) -> ast.Expr:
        if node.field is not None and node.field.is_wildcard and node.value.parts == ("", ""):
            return self.exists_pattern(node.field, node.loc)
        fld, ftype = self.field(node.field, node.loc)
        value = node.value
        loc = value.loc
        if value.is_wildcard and all(p == "" for p in value.parts):
            if value.parts == ("", ""):
                # `f: *` is an `exists` query: the field has a value (is.ts isExistsQuery).
                return ast.Comparison("!=", fld, ast.Literal(None), loc=node.loc)
        if value.constant is None:
            raise self.unsupported(loc, f"null as the value of {fld.name}")
        if ftype == "text":
            return self.analysed(fld, value, node.loc)
        if value.is_wildcard:
            return self.wildcard(fld, ftype, value)
        text = value.text
        if ftype in ("keyword", "caseless"):
            # A `true`/`false` word is sent as a JSON boolean; a keyword field searches its text.
            lit = text if value.constant is ... else ("true" if value.constant else "false")
            return ast.In(fld, (ast.Literal(lit, loc=loc),), loc=node.loc)
        if ftype == "long" and value.constant is ... and _DECIMAL.match(text.strip()):
            return self.long_term(fld, text.strip(), node.loc)
        if ftype == "boolean":
            b = value.constant if isinstance(value.constant, bool) else _BOOL_TEXT.get(text)
            if b is not None:
                return ast.In(fld, (ast.Literal(b, loc=loc),), loc=node.loc)
        if ftype == "ip" and value.constant is ... and S.is_cidr(text):
            # A term query on an ip field takes an address or a CIDR block, on 16 bytes:
            # ::ffff:10.1.2.3 is 10.1.2.3 (IpFieldMapper.termQuery, InetAddressPoint).
            return ast.FunctionCall("cidrMatch", (fld, ast.Literal(text, loc=loc)), loc=node.loc)
        raise self.unsupported(loc, f"the value {text!r} on the {ftype} field {fld.name}")

    def long_term(self, fld: ast.Field, text: str, loc: T.Loc) -> ast.Expr:
        """A number's text against a long field. Kibana's grammar keeps an unquoted
        number as text (grammar.peggy UnquotedLiteral: only null/true/false become
        constants), and Elasticsearch's long term query reads it: a decimal part
        matches nothing (NumberFieldMapper LONG.termQuery, hasDecimalPart), else the
        value as BigDecimal (Numbers.toLong: ``007`` is 7, ``1e3`` 1000, ``2.0`` 2)."""
        number = Decimal(text)
        if not _LONG_MIN - 1 < number < _LONG_MAX + 1:
            # ES fails the query ("out of range for a long"), or matches nothing past a double.
            raise self.unsupported(loc, f"the value {text!r} out of range for the long field {fld.name}")
        if number % 1 != 0:
            return ast.Literal(False, loc=loc)
        return ast.In(fld, (ast.Literal(int(number)),), loc=loc)

    def analysed(self, fld: ast.Field, value: T.Value, loc: T.Loc) -> ast.Expr:
        """A value on an analysed field: ``match``, ``match_phrase`` or ``query_string``
        (is.ts), run by :mod:`vigil.lucene.analysis` on each value of the field with
        the analyzer its mapping names."""
        analyzer = ast.Literal(field_analyzer(fld.name), loc=loc)
        if value.is_wildcard:
            if any(c.isspace() for p in value.parts for c in p):
                # query_string splits unescaped whitespace into separate terms.
                raise self.unsupported(value.loc, f"a wildcard value with whitespace on {fld.name}")
            parts = tuple(ast.Literal(p, loc=value.loc) for p in value.parts)
            return ast.FunctionCall("text.wildcard", (fld, analyzer, *parts), loc=loc)
        # `true`/`false` are sent as JSON booleans, which the analyzer reads as their text.
        name = "text.match_phrase" if value.quoted else "text.match"
        query = ast.Literal(value.text, loc=value.loc)
        return ast.FunctionCall(name, (fld, analyzer, query), loc=loc)

    def wildcard(self, fld: ast.Field, ftype: str, value: T.Value) -> ast.Expr:
        if ftype not in ("keyword", "caseless"):
            raise self.unsupported(value.loc, f"a wildcard on the {ftype} field {fld.name}")
        if any(c.isspace() for p in value.parts for c in p):
            # query_string splits unescaped whitespace into separate terms.
            raise self.unsupported(value.loc, f"a wildcard value with whitespace on {fld.name}")
        # query_string's wildcard: `*` between the parts, `?` and every other character literal.
        return glob_condition(fld, value.parts, "*" * (len(value.parts) - 1), loc=value.loc)

    def exists_pattern(self, pattern: T.Value, loc: T.Loc) -> ast.Expr:
        """``f*: *``: any known field the pattern names has a value."""
        names = pattern_fields(pattern.parts) or pattern_fields(
            (*pattern.parts[:-1], pattern.parts[-1] + ".", "")
        )
        if not names:
            raise self.unsupported(pattern.loc, f"the field pattern {pattern.text!r} names no known field")
        return ast.Or(
            tuple(
                ast.Comparison("!=", ast.Field(split_path(n), loc=pattern.loc), ast.Literal(None))
                for n in names
            ),
            loc=loc,
        )

    def date_range(self, fld: ast.Field, node: T.Range) -> ast.Expr:
        value = node.value
        if self.now_ms is None:
            raise self.unsupported(
                node.loc, f"a range on the date field {fld.name} (outside a scheduled run)"
            )
        if value.is_wildcard or value.constant is not ...:
            raise self.unsupported(value.loc, f"the range bound {value.text!r} on {fld.name}")
        if datemath.is_date_math(value.text):
            try:
                lit: object = DateValue(datemath.bound(node.op, value.text, self.now_ms))
            except datemath.DateMathError as exc:
                raise self.unsupported(value.loc, f"the date math {value.text!r}: {exc}") from None
        else:
            lit = S.date_literal(value.text) if "||" not in value.text else None
            if lit is None:
                raise self.unsupported(value.loc, f"the date {value.text!r} on {fld.name}")
        # A one-term `or`, as for the other ranges.
        return ast.Or(
            (ast.Comparison(node.op, fld, ast.Literal(lit, loc=value.loc), loc=node.loc),), loc=node.loc
        )

    def range(self, node: T.Range) -> ast.Expr:
        fld, ftype = self.field(node.field, node.loc)
        value = node.value
        if ftype == "date":
            return self.date_range(fld, node)
        if (
            ftype == "ip"
            and value.constant is ...
            and not value.is_wildcard
            and S.ip_key(value.text) is not None
        ):
            # An ip range query compares 16-byte addresses (IpFieldMapper.rangeQuery); the
            # field reads as ip (semantics.field_spec), so the comparison does too.
            return ast.Or((ast.Comparison(node.op, fld, ast.Literal(value.text)),), loc=node.loc)
        if ftype != "long":
            raise self.unsupported(node.loc, f"a range on the {ftype} field {fld.name}")
        if value.is_wildcard or value.constant is not ... or not _INTEGER.match(value.text.strip()):
            raise self.unsupported(value.loc, f"the range bound {value.text!r} on {fld.name}")
        cmp = ast.Comparison(node.op, fld, ast.Literal(int(value.text)), loc=node.loc)
        # A one-term `or`: kept apart from EQL's same-field merging and `not` flipping.
        return ast.Or((cmp,), loc=node.loc)
