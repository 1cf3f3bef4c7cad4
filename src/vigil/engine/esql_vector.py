"""The superset filter of an ES|QL query's leading ``WHERE``, for the engine core's batches.

As :mod:`vigil.engine.vector` does for EQL, a condition becomes a filter over a batch's
columns that every event the condition keeps passes, by construction, since the
translation only widens; :meth:`vigil.esql.evaluate.Program.keeps` has the last word on
each row that passes. A row is kept by ``WHERE`` only when the condition is true: null
(a missing field, a multi-valued one where one value is wanted) drops it
(``Filter``'s semantics in x-pack/plugin/esql).

- ``and``: the AND of its sides; ``or``: the OR (a side that says nothing makes it say
  nothing); ``not``: every row (negating a widened filter would narrow it).
- A field (or ``TO_LOWER``/``TO_UPPER`` of one) of a string type, compared with ASCII
  string constants by ``==``, ``=~`` (case-insensitive), ``IN``, ``LIKE`` (``*``, ``?``;
  a pattern with ``\\`` escapes is left to the program) or ``STARTS_WITH``/``ENDS_WITH``:
  the batch's lower-cased test (ASCII lower-casing is wider than ES|QL's binary
  comparison and equal to its ``=~``; values that are not ASCII strings pass).
- Any other comparison, ``NOT IN``, ``NOT LIKE``, ``RLIKE`` or ``IS NOT NULL`` of a field
  against non-null constants is null, so false, on a missing field: "the field has a value".
- Everything else (metadata fields, other functions, ``IS NULL``, full-text ``:``) is
  every row.
"""

from __future__ import annotations

from vigil.engine.vector import ALL, FieldTest, _patterns, conj, disj
from vigil.esql import tree as T
from vigil.esql.evaluate import METADATA_FIELDS, walk
from vigil.esql.values import field_type

_STRING = (None, "keyword", "text")  # None: not mapped, a JSON string reads as keyword
_CASE = ("to_lower", "to_upper")


def where_filter(program) -> object:
    """The superset filter of ``program``'s leading WHERE (ALL when it has none that reads
    only the event: :attr:`Program.leading_where`)."""
    if not program.leading_where:
        return ALL
    return condition(program.query.commands[0].condition)


def prefix_filter(program) -> object:
    """The superset filter of the WHEREs of ``program``'s local prefix (``Program.local``,
    up to its last WHERE): every event the prefix leaves a row of passes it. A WHERE
    conjunct counts only while no command before it has computed a column it reads (EVAL,
    RENAME; none past a DISSECT or GROK): the others read the event's fields. MV_EXPAND gives
    each row one of the field's values, which the filter's tests (any value of an array
    sufficing) accept; KEEP and DROP change no value."""
    defined: set[str] = set()
    terms = []
    for c in program.query.commands[: program.filter_end]:
        if isinstance(c, T.Where):
            # Each conjunct alone (leaving one out only widens).
            terms += [condition(x) for x in _conjuncts(c.condition) if not _columns(x) & defined]
        elif isinstance(c, T.Eval):
            defined |= {a.name for a in c.fields}
        elif isinstance(c, T.Rename):
            defined |= {new for _, new in c.pairs}
        elif isinstance(c, (T.Dissect, T.Grok)):
            break
    return conj(tuple(terms))


def _conjuncts(e: T.Expr) -> list[T.Expr]:
    out, stack = [], [e]
    while stack:
        x = stack.pop()
        if isinstance(x, T.Binary) and x.op == "and":
            stack += [x.right, x.left]
        else:
            out.append(x)
    return out


def _columns(e: T.Expr) -> set[str]:
    """The names of the columns an expression reads."""
    return {x.name for x in walk(e) if isinstance(x, T.Column)}


def condition(e: T.Expr) -> object:
    match e:
        case T.Binary(op="and", left=left, right=right):
            return conj((condition(left), condition(right)))
        case T.Binary(op="or", left=left, right=right):
            return disj((condition(left), condition(right)))
        case T.Binary(op="==" | "=~", left=left, right=right):
            if isinstance(left, T.Literal):
                left, right = right, left
            path, text = _string_field(left), _text(right)
            if path is not None and text is not None:
                return FieldTest(path, "in", (text,))
            return _exists(left, right)
        case T.Binary(op="!=" | "<" | "<=" | ">" | ">=", left=left, right=right):
            if isinstance(left, T.Literal):
                left, right = right, left
            return _exists(left, right)
        case T.In(value=value, items=items, negated=False):
            path, texts = _string_field(value), [_text(i) for i in items]
            if path is not None and texts and None not in texts:
                return FieldTest(path, "in", tuple(sorted(set(texts))))
            return _exists(value, *items)
        case T.In(value=value, items=items, negated=True):
            return _exists(value, *items)
        case T.IsNull(value=value, negated=True):
            return _exists(value, T.Literal(True, "boolean"))
        case T.Like(value=value, patterns=patterns, regex=False, negated=False):
            path = _string_field(value)
            texts = [p.lower() for p in patterns if p.isascii() and "\\" not in p]
            if path is None or not texts or len(texts) != len(patterns):
                return _exists(value, T.Literal(True, "boolean"))
            return _patterns(path, texts)
        case T.Like(value=value):
            return _exists(value, T.Literal(True, "boolean"))
        case T.Call(name="starts_with" | "ends_with" as name, args=(value, prefix)):
            path, text = _string_field(value), _text(prefix)
            if path is None or text is None or not text:
                return _exists(value, prefix)
            return FieldTest(path, "prefix" if name == "starts_with" else "suffix", (text,))
    return ALL


def _field(e: T.Expr) -> T.Column | None:
    """The field an expression reads, when the expression is null wherever the field is."""
    if isinstance(e, T.Call) and e.name in _CASE and len(e.args) == 1:
        e = e.args[0]
    if isinstance(e, T.Column) and e.name not in METADATA_FIELDS:
        return e
    return None


def _string_field(e: T.Expr) -> str | None:
    col = _field(e)
    if col is None or field_type(col.name) not in _STRING:
        return None
    return col.name


def _text(e: T.Expr) -> str | None:
    if isinstance(e, T.Literal) and e.type == "keyword" and isinstance(e.value, str) and e.value.isascii():
        return e.value.lower()
    return None


def _exists(e: T.Expr, *constants: T.Expr) -> object:
    """The field has a value: a test of it against non-null constants is null otherwise."""
    col = _field(e)
    if col is None or not constants:
        return ALL
    if any(not isinstance(c, T.Literal) or c.value is None or c.type == "null" for c in constants):
        return ALL
    return FieldTest(col.name, "exists", ())
