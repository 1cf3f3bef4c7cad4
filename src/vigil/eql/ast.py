"""The syntax tree of an EQL statement.

Every node is a small frozen dataclass. ``loc`` is the (line, column) of the
node's first character in the query text, 1-based, used for error messages;
it takes no part in equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cache
from typing import Literal as Lit

Loc = tuple[int, int]
NO_LOC: Loc = (0, 0)


@dataclass(frozen=True, slots=True)
class Node:
    def __reduce__(self):
        # Pickled as its constructor's arguments: the default of a slotted dataclass looks
        # its fields up again for every node, and the rule cache reads 100,000 of them.
        return self.__class__, tuple(getattr(self, name) for name in _init_fields(self.__class__))


@cache
def _init_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.init)


# --- expressions -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expr(Node):
    pass


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    """A string, integer, float, boolean or null (``None``)."""

    value: str | int | float | bool | None
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Field(Expr):
    """A field reference. ``path`` is the dotted name split into parts
    (``process.parent.name`` -> ("process", "parent", "name")), at every dot,
    back-quoted or not (```a.b/c``` is ("a", "b/c"), as in Elasticsearch).
    ``optional`` is set for ``?field``: an unknown optional field is null
    instead of an error."""

    path: tuple[str, ...]
    optional: bool = False
    loc: Loc = field(default=NO_LOC, compare=False)

    @property
    def name(self) -> str:
        return ".".join(self.path)


# Comparison operators: ==  !=  <  <=  >  >=
CompareOp = Lit["==", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class Comparison(Expr):
    op: CompareOp
    left: Expr
    right: Expr
    loc: Loc = field(default=NO_LOC, compare=False)


# String pattern operators. ``:`` is case-insensitive equality with wildcards;
# ``like``/``like~`` match wildcards (* and ?) case-sensitively / not;
# ``regex``/``regex~`` match a Lucene-style regular expression over the whole value.
PatternOp = Lit[":", "like", "like~", "regex", "regex~"]


@dataclass(frozen=True, slots=True)
class Pattern(Expr):
    """``value OP pattern`` or ``value OP (pattern, ...)``: true when any pattern matches."""

    op: PatternOp
    value: Expr
    patterns: tuple[Expr, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class In(Expr):
    """``value in (a, b)``, ``in~`` (insensitive) and ``not in`` (negated)."""

    value: Expr
    items: tuple[Expr, ...]
    insensitive: bool = False
    negated: bool = False
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Not(Expr):
    expr: Expr
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class And(Expr):
    terms: tuple[Expr, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Or(Expr):
    terms: tuple[Expr, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


ArithOp = Lit["+", "-", "*", "/", "%"]


@dataclass(frozen=True, slots=True)
class Arithmetic(Expr):
    op: ArithOp
    left: Expr
    right: Expr
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Negate(Expr):
    """Unary minus."""

    expr: Expr
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class FunctionCall(Expr):
    """``name(args)``; ``insensitive`` for the ``name~(args)`` variant.
    ``name`` is kept as written in the query's canonical case (e.g. ``startsWith``)."""

    name: str
    args: tuple[Expr, ...]
    insensitive: bool = False
    loc: Loc = field(default=NO_LOC, compare=False)


# --- queries -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventQuery(Node):
    """``<category> where <condition>``; ``category`` is None for ``any``."""

    category: str | None
    condition: Expr
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class SequenceStage(Node):
    """One ``[...]`` of a sequence. ``keys`` holds the join keys of this stage:
    the sequence's shared ``by`` keys first, then the stage's own.
    ``missing`` marks a ``![...]`` stage (an event that must NOT occur);
    ``runs`` is ``with runs=N`` (1 when absent)."""

    query: EventQuery
    keys: tuple[Expr, ...] = ()
    runs: int = 1
    missing: bool = False
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Sequence(Node):
    stages: tuple[SequenceStage, ...]
    maxspan_ms: int | None = None
    until: SequenceStage | None = None
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class SampleStage(Node):
    """One ``[...]`` of a sample, with its join keys (shared keys first)."""

    query: EventQuery
    keys: tuple[Expr, ...] = ()
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Sample(Node):
    stages: tuple[SampleStage, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Pipe(Node):
    """``| head N`` or ``| tail N``."""

    name: Lit["head", "tail"]
    count: int
    loc: Loc = field(default=NO_LOC, compare=False)


Query = EventQuery | Sequence | Sample


@dataclass(frozen=True, slots=True)
class Statement(Node):
    query: Query
    pipes: tuple[Pipe, ...] = ()
    text: str = field(default="", compare=False)


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-nodes of a node, in source order."""
    match node:
        case Comparison(left=a, right=b) | Arithmetic(left=a, right=b):
            return (a, b)
        case Pattern(value=v, patterns=ps):
            return (v, *ps)
        case In(value=v, items=items):
            return (v, *items)
        case Not(expr=e) | Negate(expr=e):
            return (e,)
        case And(terms=ts) | Or(terms=ts):
            return ts
        case FunctionCall(args=args):
            return args
        case EventQuery(condition=c):
            return (c,)
        case SequenceStage(query=q, keys=ks) | SampleStage(query=q, keys=ks):
            return (q, *ks)
        case Sequence(stages=st, until=u):
            return (*st, u) if u is not None else st
        case Sample(stages=st):
            return st
        case Statement(query=q, pipes=ps):
            return (q, *ps)
    return ()


def walk(node: Node):
    """Every node of the tree, depth first, the node itself first."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(children(n)))
