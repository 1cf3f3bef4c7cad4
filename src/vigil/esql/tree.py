"""The syntax tree of an ES|QL query.

The node names follow Elasticsearch's grammar (``EsqlBaseParser.g4`` and
``parser/Expression.g4`` in x-pack/plugin/esql/src/main/antlr). ``loc`` is the
(line, column) of the node's first character, 1-based, and takes no part in
equality. Names are the dotted column names as written (backquotes removed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Loc = tuple[int, int]
NO_LOC: Loc = (0, 0)


# --- expressions --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expr:
    pass


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    """A constant. ``type`` is ``null``, ``integer``/``long``, ``double``, ``boolean``,
    ``keyword`` (a string) or ``time_duration``/``date_period`` (``value`` is then a
    :class:`Span`). A list literal ``[1, 2]`` has a tuple ``value``."""

    value: object
    type: str
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Span:
    """A time-span literal: ``5 minutes`` is Span(5, "minute")."""

    amount: int
    unit: str  # millisecond second minute hour day week month quarter year

    @property
    def calendar(self) -> bool:
        """A ``date_period`` (days and up: calendar arithmetic) rather than a ``time_duration``."""
        return self.unit in ("day", "week", "month", "quarter", "year")


@dataclass(frozen=True, slots=True)
class Column(Expr):
    name: str
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A function call; ``star`` for ``COUNT(*)``; ``options`` for a trailing ``{...}`` map."""

    name: str  # lower case
    args: tuple[Expr, ...]
    star: bool = False
    options: tuple[tuple[str, object], ...] = ()
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: str  # "-", "+", "not"
    operand: Expr
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    """Arithmetic (+ - * / %), comparison (== != < <= > >= =~) or logic (and, or)."""

    op: str
    left: Expr
    right: Expr
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class In(Expr):
    value: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class IsNull(Expr):
    value: Expr
    negated: bool = False  # IS NOT NULL
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Like(Expr):
    """``LIKE``/``RLIKE`` with one pattern or a list of them (any may match)."""

    value: Expr
    patterns: tuple[str, ...]
    regex: bool = False  # RLIKE
    negated: bool = False
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Match(Expr):
    """The full-text operator ``field : "query"``."""

    column: Column
    query: Literal
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Cast(Expr):
    """``value::type``."""

    value: Expr
    type: str
    loc: Loc = field(default=NO_LOC, compare=False)


# --- commands -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    pass


@dataclass(frozen=True, slots=True)
class Assign:
    """``name = expr`` (or a bare ``expr``, named by its text as Elasticsearch does)."""

    name: str
    expr: Expr
    where: Expr | None = None  # STATS ... agg(...) WHERE cond
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class From(Command):
    indices: tuple[str, ...]
    metadata: tuple[str, ...] = ()
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Row(Command):
    fields: tuple[Assign, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Where(Command):
    condition: Expr
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Eval(Command):
    fields: tuple[Assign, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Stats(Command):
    aggregates: tuple[Assign, ...]
    groups: tuple[Assign, ...] = ()
    inline: bool = False  # INLINE STATS: every row kept, aggregates appended
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Keep(Command):
    patterns: tuple[str, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Drop(Command):
    patterns: tuple[str, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Rename(Command):
    pairs: tuple[tuple[str, str], ...]  # (old, new)
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Order:
    expr: Expr
    descending: bool = False
    nulls_first: bool | None = None  # None: the default (nulls last ascending, first descending)


@dataclass(frozen=True, slots=True)
class Sort(Command):
    orders: tuple[Order, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Limit(Command):
    count: int
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Dissect(Command):
    input: Expr
    pattern: str
    append_separator: str = ""
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Grok(Command):
    input: Expr
    patterns: tuple[str, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class MvExpand(Command):
    column: str
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Completion(Command):
    """``COMPLETION [target =] prompt WITH {...}``: a call to a language model."""

    target: str
    prompt: Expr
    options: tuple[tuple[str, object], ...] = ()
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Query:
    source: From | Row
    commands: tuple[Command, ...]
    text: str = field(default="", compare=False)

    @property
    def aggregating(self) -> bool:
        """Kibana's rule: a query is aggregating when it holds a (non-inline) STATS command
        (``computeIsESQLQueryAggregating``, kbn-securitysolution-utils/src/esql)."""
        return any(isinstance(c, Stats) and not c.inline for c in self.commands)
