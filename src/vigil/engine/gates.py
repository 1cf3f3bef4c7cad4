"""Which filters a batch can reach: an index of the values the filters require.

Each superset filter (:mod:`vigil.engine.vector`) that is an ``and`` of tests has
terms every passing row must pass. One of them is the filter's *gate*: a test of
``in`` kind gives the field's values a row must hold (``process.name in (...)``),
any other test at least says the field must have a value. Before the filters run
over a batch, one look at the batch's distinct values of each gated field tells
which gates some row may pass; a filter whose gate no row may pass has no row, and
is not run. Nothing changes in what passes: a gate is a term of its filter, read
with the batch's own rules (a value that is not an ASCII string passes every test,
as in :meth:`vigil.engine.batches.Batch.test`).

Live micro-batches and small windows hold a few dozen distinct values: most of a
thousand rules are then left out at the cost of a few dictionary lookups, instead of a
mask each (Falco indexes its rules by event type for the same reason).
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from vigil.engine.batches import SMALL
from vigil.engine.vector import COMMON_FIELDS, AndF, FieldTest, OrF

# A gate: alternatives, each a field path with the (lower-cased) values one of which it
# must hold, or None when any value will do.
Gate = tuple[tuple[str, tuple[str, ...] | None], ...]


def _score(gate: Gate) -> float:
    return max(
        (2.0 if path in COMMON_FIELDS else 0.0) + (1.0 if values is None else len(values) / 1000)
        for path, values in gate
    )


def _best(node) -> Gate | None:
    """The one gate of a filter likeliest to fail, or None."""
    found = conjuncts(node)
    return min(found, key=_score) if found else None


def conjuncts(node) -> list[Gate]:
    """The gates of a filter: every row that passes it passes each of them."""
    if isinstance(node, FieldTest):
        return [((node.path, node.values if node.kind == "in" else None),)]
    if isinstance(node, AndF):
        return [g for t in node.terms for g in conjuncts(t)]
    if isinstance(node, OrF):
        alts = [_best(t) for t in node.terms]
        if any(a is None for a in alts):
            return []
        return [tuple(alt for a in alts for alt in a)]
    return []  # ALL


class Gates:
    """The gates of numbered filters, and which numbers a batch may reach. Several
    filters may share a number (the stages of a sequence): it is reached when one of
    them may be, that is when some row may pass each gate of that filter."""

    def __init__(self, filters: Iterable[tuple[int, object]]) -> None:
        self.filters: dict[int, list[tuple[int, ...]]] = {}  # number -> its filters' gate ids
        ids: dict[Gate, int] = {}
        self.by_value: dict[str, dict[str, list[int]]] = {}  # path -> value -> gate ids
        self.by_field: dict[str, list[int]] = {}  # path -> every gate id on it
        self.present: dict[str, list[int]] = {}  # path -> ids of "has a value" gates
        self._keys: dict[str, pa.Array] = {}  # path -> the values of by_value, in Arrow
        for k, node in filters:
            own = []
            for gate in conjuncts(node):
                gid = ids.get(gate)
                if gid is None:
                    gid = ids[gate] = len(ids)
                    for path, values in gate:
                        self.by_field.setdefault(path, []).append(gid)
                        if values is None:
                            self.present.setdefault(path, []).append(gid)
                        else:
                            index = self.by_value.setdefault(path, {})
                            for v in values:
                                index.setdefault(v, []).append(gid)
                own.append(gid)
            self.filters.setdefault(k, []).append(tuple(sorted(set(own))))

    def reached(self, batch) -> set[int]:
        """The numbers whose filters some row of ``batch`` may pass."""
        passed: set[int] = set()  # gates some row may pass
        for path, gids in self.by_field.items():
            col = batch.column(path)
            if col is None:
                continue
            if col.odd is not None or col.nonascii.any():
                passed.update(gids)  # such a value passes every test of its field
                continue
            passed.update(self.present.get(path, ()))
            index = self.by_value.get(path)
            if not index:
                continue
            if len(col.distinct) <= SMALL:
                values = col.lowered()
            else:  # many values: Arrow finds those the index holds
                keys = self._keys.get(path)
                if keys is None:
                    keys = self._keys[path] = pa.array(list(index), pa.string())
                values = col.uniques.filter(pc.is_in(col.uniques, value_set=keys)).to_pylist()
            for v in values:
                found = index.get(v)
                if found:
                    passed.update(found)
        return {
            k
            for k, filters in self.filters.items()
            if any(all(g in passed for g in gids) for gids in filters)
        }
