"""The syntax tree of a KQL (Kibana Query Language) query.

Kibana's grammar builds function nodes (``or``, ``and``, ``not``, ``is``,
``range``, ``nested``); these small frozen dataclasses mirror them. A value
list (``field: (a or b)``) is already spread into one ``Is`` per value, as
Kibana does. ``loc`` is the (line, column) of the node's first character,
1-based, and takes no part in equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal as Lit

Loc = tuple[int, int]
NO_LOC: Loc = (0, 0)


@dataclass(frozen=True, slots=True)
class Value:
    """A literal as written. ``parts`` are the text between unescaped ``*``
    wildcards: ``a*b`` is ("a", "b"), ``*`` alone is ("", ""), a value with no
    wildcard has one part. ``quoted`` for a ``"..."`` string (never a wildcard).
    ``constant`` is True/False/None for the bare words ``true``, ``false``,
    ``null``; it is ``...`` for any other value."""

    parts: tuple[str, ...]
    quoted: bool = False
    constant: object = ...
    loc: Loc = field(default=NO_LOC, compare=False)

    @property
    def is_wildcard(self) -> bool:
        return len(self.parts) > 1

    @property
    def text(self) -> str:
        """The value with each wildcard written as ``*``."""
        return "*".join(self.parts)


@dataclass(frozen=True, slots=True)
class Node:
    pass


@dataclass(frozen=True, slots=True)
class Is(Node):
    """``field: value``; ``field`` is None for a bare value (all fields)."""

    field: Value | None
    value: Value
    loc: Loc = field(default=NO_LOC, compare=False)


RangeOp = Lit["<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class Range(Node):
    field: Value
    op: RangeOp
    value: Value
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Nested(Node):
    """``field: { query }``."""

    field: Value
    query: Node
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Not(Node):
    query: Node
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class And(Node):
    terms: tuple[Node, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class Or(Node):
    terms: tuple[Node, ...]
    loc: Loc = field(default=NO_LOC, compare=False)


@dataclass(frozen=True, slots=True)
class MatchAll(Node):
    """An empty query: Kibana's ``is(*, *)``, every document."""

    loc: Loc = field(default=NO_LOC, compare=False)
