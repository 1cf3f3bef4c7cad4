"""Which lines of an NDJSON block a batch scan must parse.

A line must be parsed when it holds one of the rules' literals (lower-cased), or
when the literal test could be wrong for it, which makes it *unclean*:

- a JSON escape (``\\/``, ``\\u0064``) spells characters without the characters;
- a non-ASCII byte: lower-casing bytes is not lower-casing text;
- a vendor marker: a SentinelOne or Endgame document is rewritten by its normalizer
  (see :mod:`vigil.events.vendors`), so its raw text is not what the rules see;
- a line that is not one ``{...}`` object: parsing it reports it as malformed.

:class:`BlockScanner` answers in one pass in C (``_blockscan.c``) when that module
was built, and otherwise with :meth:`BlockScanner.scan_python`, a few passes of
``bytes`` methods over the whole block. Both give the same answer; a test holds
them to it.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from importlib import resources
from typing import NamedTuple

try:
    from vigil.engine import _blockscan
except ImportError:  # built without a C compiler: the Python scan is used
    _blockscan = None

# Raw markers of documents a vendor normalizer rewrites (see vigil.events.vendors).
VENDOR_MARKERS = (b'"meta.event.name"', b'"src.process.', b'"tgt.', b'"endgame"', b'"event_type"')
ESCAPES = (b"\\u", b"\\/")
LITERAL, MARKER, ESCAPE = 0, 1, 2
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_ESCAPE = re.compile(rb"\\[u/]")


class Lines(NamedTuple):
    """A block's lines to parse: their start and end offsets and their numbers in the
    block (from 0), in order; the unclean ones among them (by start); the block's
    blank lines (not counting the empty end after the last newline), its newline
    bytes and its lines."""

    starts: list[int]
    ends: list[int]
    numbers: list[int]
    unclean: set[int]
    blank: int
    newlines: int
    count: int


class BlockScanner:
    """Finds the lines to parse for a fixed set of lower-cased literals."""

    def __init__(
        self, literals: tuple[bytes, ...] | list[bytes], *, vendor: bool = True, native: bool = True
    ):
        # A literal holding another is found wherever that one is: only the shorter is looked for.
        kept: list[bytes] = []
        for lit in sorted(set(literals), key=len):
            if not any(k in lit for k in kept):
                kept.append(lit)
        self.literals = tuple(kept)
        self.markers = VENDOR_MARKERS if vendor else ()
        self._native = None
        if native and _blockscan is not None and all(len(x) >= 2 for x in self.literals):
            self._native = _native_tables(self.literals, self.markers)

    @property
    def is_native(self) -> bool:
        return self._native is not None

    def scan(self, block: bytes | memoryview) -> Lines:
        """The lines of ``block`` (whole lines, bytes or a memoryview of them) to parse."""
        if self._native is None:
            return self.scan_python(bytes(block))
        starts, ends, numbers, unclean, blank, newlines = _blockscan.scan(block, *self._native)
        return Lines(starts, ends, numbers, set(unclean), blank, newlines, _line_count(block, newlines))

    def scan_python(self, block: bytes) -> Lines:
        low = block.lower()
        unclean = self._unclean(block, low)
        blank, newlines = _misshapen(block, unclean)
        starts = set(unclean)
        rfind = low.rfind
        for lit in self.literals:
            pos = low.find(lit)
            while pos >= 0:
                starts.add(rfind(b"\n", 0, pos) + 1)
                end = low.find(b"\n", pos)
                pos = low.find(lit, end) if end >= 0 else -1
        ordered = sorted(starts)
        ends, numbers = [], []
        number, at = 0, 0
        for s in ordered:
            number += block.count(b"\n", at, s)
            at = s
            end = block.find(b"\n", s)
            ends.append(len(block) if end < 0 else end)
            numbers.append(number)
        return Lines(ordered, ends, numbers, unclean, blank, newlines, _line_count(block, newlines))

    def _unclean(self, block: bytes, low: bytes) -> set[int]:
        starts: set[int] = set()
        rfind = block.rfind
        for m in _ESCAPE.finditer(block):
            pos = m.start()
            # A real escape has an odd run of backslashes before the letter.
            run = 1
            while pos - run >= 0 and block[pos - run] == 92:
                run += 1
            if run % 2 == 1:
                starts.add(rfind(b"\n", 0, pos) + 1)
        if not block.isascii():
            for m in _NON_ASCII.finditer(block):
                starts.add(rfind(b"\n", 0, m.start()) + 1)
        for marker in self.markers:
            pos = low.find(marker)
            while pos >= 0:
                starts.add(rfind(b"\n", 0, pos) + 1)
                pos = low.find(marker, pos + 1)
        return starts


def _line_count(block: bytes | memoryview, newlines: int) -> int:
    return newlines + (1 if len(block) and block[len(block) - 1] != 10 else 0)


def _misshapen(block: bytes, unclean: set[int]) -> tuple[int, int]:
    """Add to ``unclean`` the lines that are not one ``{...}`` object each; return the
    blank lines and the newlines. Counting ``}\\n{`` settles a clean block at once."""
    newlines = block.count(b"\n")
    lines = newlines + (0 if block.endswith(b"\n") else 1)
    # Every line one object: "{" first, "}" last, and each line end between them "}\n{".
    if block.startswith(b"{") and block.endswith((b"}\n", b"}")) and block.count(b"}\n{") == lines - 1:
        return 0, newlines
    blank = 0
    start = 0
    for raw in block.split(b"\n"):
        text = raw.strip()
        if not text:
            if start < len(block):
                blank += 1
        elif text[:1] != b"{" or text[-1:] != b"}":
            unclean.add(start)
        start += len(raw) + 1
    return blank, newlines


def _native_tables(literals: tuple[bytes, ...], markers: tuple[bytes, ...]) -> tuple[bytes, tuple]:
    """The C scanner's arguments: the byte-pair table and the needles, each looked up
    by its rarest pair so that few positions need a closer look."""
    needles = [(lit, _rarest_pair(lit), LITERAL) for lit in literals]
    needles += [(m, _rarest_pair(m), MARKER) for m in markers]
    needles += [(e, 0, ESCAPE) for e in ESCAPES]
    table = bytearray(1 << 16)
    for text, off, _ in needles:
        for a in {text[off], ord(bytes([text[off]]).upper())}:
            for b in {text[off + 1], ord(bytes([text[off + 1]]).upper())}:
                table[a << 8 | b] = 1
    return bytes(table), tuple(needles)


def _rarest_pair(text: bytes) -> int:
    counts = _pair_counts()
    return min(range(len(text) - 1), key=lambda i: (counts[text[i : i + 2]], i))


@cache
def _pair_counts() -> Counter:
    """Byte pairs of the bundled sample of endpoint events: how common each is in ECS JSON."""
    sample = (
        resources.files("vigil").joinpath("data/samples/linux-endpoint-events.ndjson").read_bytes().lower()
    )
    return Counter(sample[i : i + 2] for i in range(len(sample) - 1))
