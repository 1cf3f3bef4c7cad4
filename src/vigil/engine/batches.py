"""Record batches: the fields the loaded rules test, read once per event into columns.

A :class:`Batch` holds, for each field path a superset filter reads (see
:mod:`vigil.engine.vector`), the field's string values in one dictionary of
distinct values (lower-cased in an Arrow array) with, per value, its row and its
code in the dictionary; rows holding a value that is not a string are marked
"odd" and pass every test of that field, so the filters stay supersets. A test is
run once over the dictionary (Arrow's string kernels) and spread to the rows.

Reading walks each document once (in C, ``_batchwalk.c``, when it was built), only
down the keys some rule reads, the way
:func:`vigil.eql.semantics.make_lookup` reads a field: nested objects and dotted
keys alike (``{"file.path": ...}`` is ``{"file": {"path": ...}}``), arrays of
objects walked, arrays of values kept as several values of one row.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil.engine.vector import ALL, AndF, FieldTest, OrF

try:
    from vigil.engine import _batchwalk
except ImportError:  # built without a C compiler: the Python walk is used
    _batchwalk = None


class Reader:
    """Reads the given field paths of documents into :class:`Batch` columns."""

    def __init__(self, paths: Iterable[str], native: bool = True) -> None:
        self.paths = sorted(set(paths))
        self.native = native  # the C walk when it was built (False: the Python one)
        # A trie of path segments: segment -> [children, field number or -1].
        self.trie: dict = {}
        for fid, path in enumerate(self.paths):
            node = None
            children = self.trie
            for seg in path.split("."):
                node = children.get(seg)
                if node is None:
                    node = children[seg] = [{}, -1]
                children = node[0]
            node[1] = fid

    def batch(self, docs: list) -> Batch:
        if _batchwalk is not None and self.native:
            values, rows, odd = _batchwalk.walk(list(docs), self.trie, len(self.paths))
        else:
            values, rows, odd = self.walk_python(docs)
        return Batch(len(docs), self.paths, values, rows, odd)

    def walk_python(self, docs: list) -> tuple[list, list, list]:
        """Per field: its string values, their rows, and the (row, value) pairs of values
        that are not strings (``_batchwalk.c`` does the same walk in C)."""
        n = len(self.paths)
        values: list[list] = [[] for _ in range(n)]
        rows: list[list[int]] = [[] for _ in range(n)]
        odd: list[list[int]] = [[] for _ in range(n)]
        walk = self._walk
        trie = self.trie
        for row, doc in enumerate(docs):
            if type(doc) is dict:
                walk(doc, trie, row, values, rows, odd)
        return values, rows, odd

    def _walk(self, obj: dict, children: dict, row: int, values, rows, odd) -> None:
        for key, v in obj.items():
            node = children.get(key)
            if node is None:
                if isinstance(key, str) and "." in key:
                    node = self._dotted(key, children)
                if node is None:
                    continue
            self._value(v, node, row, values, rows, odd)

    def _dotted(self, key: str, children: dict):
        node = None
        for seg in key.split("."):
            node = children.get(seg)
            if node is None:
                return None
            children = node[0]
        return node

    def _value(self, v, node, row: int, values, rows, odd) -> None:
        sub, fid = node
        t = type(v)
        if t is str:
            if fid >= 0:
                values[fid].append(v)
                rows[fid].append(row)
        elif t is dict:
            if sub:
                self._walk(v, sub, row, values, rows, odd)
        elif t is list:
            for item in v:
                if item is not None:
                    self._value(item, node, row, values, rows, odd)
        elif v is not None and fid >= 0:
            odd[fid].append((row, v))


class Column:
    """One field over a batch: distinct values (lower-cased), and per value its row."""

    __slots__ = (
        "_uniques",
        "distinct",
        "_originals",
        "_lowered",
        "codes",
        "rows",
        "odd",
        "odd_values",
        "nonascii",
    )

    def __init__(self, values: list[str], rows: list[int], odd: list[int], n: int) -> None:
        if _batchwalk is not None:
            found, raw = _batchwalk.encode(values)
            self.codes = np.frombuffer(raw, dtype=np.int32)
        else:
            index: dict[str, int] = {}
            self.codes = np.asarray([index.setdefault(v, len(index)) for v in values], dtype=np.int32)
            found = list(index)
        # A value that is not ASCII passes every test (nonascii), so Arrow holds it as
        # "": lone surrogates (which JSON escapes can carry) never reach its UTF-8.
        self.distinct = [v if v.isascii() else "" for v in found]
        self._originals = None
        self._lowered: tuple[list[str], dict[str, list[int]]] | None = None
        self._uniques = None  # Arrow's copy, made when a test first needs it
        self.nonascii = np.fromiter((not v.isascii() for v in found), bool, len(found))
        self.rows = np.asarray(rows, dtype=np.int32)
        # Rows holding a value that is not a string (numbers, booleans), with the value.
        self.odd = np.asarray([r for r, _ in odd], dtype=np.int32) if odd else None
        self.odd_values = odd

    @property
    def uniques(self) -> pa.Array:
        """The distinct values lower-cased, in Arrow (by code)."""
        if self._uniques is None:
            self._uniques = pc.utf8_lower(pa.array(self.distinct, pa.string()))
        return self._uniques

    def values(self, kind: str) -> pa.Array:
        """The distinct values a test of ``kind`` reads: as they are for a regular
        expression (whose case rules are its own), else lower-cased."""
        if kind != "regex":
            return self.uniques
        if self._originals is None:
            self._originals = pa.array(self.distinct, pa.string())
        return self._originals

    def lowered(self) -> list[str]:
        """The distinct values lower-cased, by code. They are ASCII (others are "" and
        pass through ``nonascii``), where ``str.lower`` is Arrow's ``utf8_lower``."""
        if self._lowered is None:
            lowered = [v.lower() for v in self.distinct]
            by_value: dict[str, list[int]] = {}
            for code, v in enumerate(lowered):
                by_value.setdefault(v, []).append(code)
            self._lowered = (lowered, by_value)
        return self._lowered[0]

    def plain_test(self, t: FieldTest) -> np.ndarray:
        """Which distinct values pass an ``in``, ``prefix``, ``suffix`` or ``contains``
        test, by Python's string methods: an ``in`` test at any size (a lookup per value
        it names: 3-5 µs, where Arrow's ``is_in`` took 30-100 µs), the others over a few
        values (a live micro-batch, or a field of few values), where a call to Arrow
        costs more than the test. The values are
        ASCII (others are "" and pass through ``nonascii``), where ``str.lower`` is
        Arrow's ``utf8_lower`` and both compare code points alike."""
        lowered = self.lowered()
        by_value = self._lowered[1]
        hit = np.zeros(len(lowered), dtype=bool)
        kind, values = t.kind, t.values
        if kind == "in":
            codes = [c for v in values for c in by_value.get(v, ())]
        elif kind == "prefix":
            codes = [c for c, u in enumerate(lowered) if u.startswith(values)]
        elif kind == "suffix":
            codes = [c for c, u in enumerate(lowered) if u.endswith(values)]
        else:  # one pass per value: no generator per distinct value
            codes = [c for v in values for c, u in enumerate(lowered) if v in u]
        hit[codes] = True
        return hit


# Columns of at most this many distinct values run their prefix, suffix and contains
# tests in Python (an ``in`` test always does).
SMALL = 128
_PLAIN = frozenset(("in", "prefix", "suffix", "contains"))


def _plain(col: Column, kind: str) -> bool:
    """Whether a test of ``kind`` over ``col`` runs in Python (Column.plain_test)."""
    return kind == "in" or (kind in _PLAIN and len(col.distinct) <= SMALL)


class Batch:
    """Columns of the fields the filters read, over ``n`` rows; test results cached."""

    def __init__(self, n: int, paths: list[str], values, rows, odd) -> None:
        self.n = n
        self._raw = {p: (values[i], rows[i], odd[i]) for i, p in enumerate(paths)}
        self._columns: dict[str, Column | None] = {}
        self._tests: dict[FieldTest, np.ndarray] = {}
        self.tests_run = 0

    def column(self, path: str) -> Column | None:
        if path not in self._columns:
            values, rows, odd = self._raw.get(path, ((), (), ()))
            self._columns[path] = Column(values, rows, odd, self.n) if values or odd else None
        return self._columns[path]

    def test(self, t: FieldTest) -> np.ndarray:
        """Rows that may pass ``t`` (a boolean mask)."""
        found = self._tests.get(t)
        if found is not None:
            return found
        self.tests_run += 1
        out = np.zeros(self.n, dtype=bool)
        col = self.column(t.path)
        if col is not None and t.kind == "num":
            # Strings may read as numbers, and booleans are the matcher's: they pass.
            out[col.rows] = True
            wanted = set(t.values)
            for row, v in col.odd_values:
                if type(v) not in (int, float) or v in wanted:
                    out[row] = True
        elif col is not None and t.kind == "exists":
            out[col.rows] = True
            if col.odd is not None:
                out[col.odd] = True
        elif col is not None:
            if col.distinct:
                try:
                    if _plain(col, t.kind):
                        hit = col.plain_test(t) | col.nonascii
                    else:
                        hit = _dictionary_test(col.values(t.kind), t) | col.nonascii
                except (pa.ArrowException, ValueError):
                    hit = np.ones(len(col.distinct), dtype=bool)  # a pattern RE2 refuses: every value
                out[col.rows[hit[col.codes]]] = True
            if col.odd is not None:
                out[col.odd] = True
        self._tests[t] = out
        return out

    def mask(self, node, start: np.ndarray) -> np.ndarray:
        """Rows of ``start`` (a mask, not changed) that may pass the filter ``node``."""
        if node is ALL:
            return start
        if isinstance(node, FieldTest):
            return start & self.test(node)
        if isinstance(node, AndF):
            m = start
            for term in node.terms:
                m = self.mask(term, m)
                if not m.any():
                    break
            return m
        assert isinstance(node, OrF)
        m = np.zeros(self.n, dtype=bool)
        for term in node.terms:
            m |= self.mask(term, start)
        return m


def _dictionary_test(uniques: pa.Array, t: FieldTest) -> np.ndarray:
    kind, values = t.kind, t.values
    if kind == "in":
        hit = pc.is_in(uniques, value_set=pa.array(values, pa.string()))
    else:
        hit = None
        for v in values:
            if kind == "prefix":
                h = pc.starts_with(uniques, pattern=v)
            elif kind == "suffix":
                h = pc.ends_with(uniques, pattern=v)
            elif kind == "contains":
                h = pc.match_substring(uniques, pattern=v)
            else:
                h = pc.match_substring_regex(uniques, pattern=v)
            hit = h if hit is None else pc.or_(hit, h)
    return hit.to_numpy(zero_copy_only=False)
