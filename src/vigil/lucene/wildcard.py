"""Wildcard patterns (``*`` any run of characters, ``?`` one character) matched in
time linear in the value.

Elasticsearch runs a wildcard as a Lucene automaton, so its cost grows with the
value and never explodes with the pattern's shape. Python's backtracking ``re``
does explode (``.*a.*b`` against a long run of ``a`` is quadratic, each further
``*`` one more power), so a pattern is matched here as a glob: the text between
``*`` is a list of segments, the first anchored at the start, the last at the
end, and each middle one found at its leftmost place after the previous one.
Taking the leftmost place is always right for globs (any later place leaves less
room for what follows), so each segment is searched once, left to right. Plain
segments use ``str.startswith``/``endswith``/``find``; a segment holding ``?`` is
a fixed-length regular expression with no repetition, which costs at most its own
length per position of the value.

Case-insensitive matching folds ASCII letters only, as Elasticsearch does for a
``case_insensitive`` wildcard or term query: ``AutomatonQueries.toCaseInsensitiveChar``
(server/src/main/java/org/elasticsearch/common/lucene/search/AutomatonQueries.java)
adds the other case for code points up to 128 and leaves every other character as
it is, so ``É`` never matches ``é`` and a value never changes length.

Two syntaxes: EQL's ``:``/``like`` (no escape character, ``\\`` is a plain
character) and Lucene's ``WildcardQuery`` (``\\`` escapes the next character; a
trailing ``\\`` is itself, as Lucene's parser is lenient there).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache

Matcher = Callable[[str], bool]
# A segment (the text between two ``*``) as its literal pieces between ``?``:
# ``a?b`` is ("a", "b"), ``ab`` is ("ab",), ``?`` is ("", "").
Segment = tuple[str, ...]


def ascii_lower(text: str) -> str:
    """``text`` with ASCII ``A``-``Z`` lowered and every other character kept, in C:
    UTF-8 bytes of non-ASCII characters are all >= 0x80, which ``bytes.lower`` keeps."""
    if text.isascii():
        return text.lower()
    return text.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


def parse(pattern: str, *, escapes: bool = False) -> list[Segment]:
    """The segments between ``*`` (at least one; ``*`` alone gives two empty ones)."""
    segments: list[Segment] = []
    pieces: list[str] = []
    buf: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if escapes and ch == "\\" and i + 1 < n:
            buf.append(pattern[i + 1])
            i += 2
            continue
        if ch == "*":
            segments.append((*pieces, "".join(buf)))
            pieces, buf = [], []
        elif ch == "?":
            pieces.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    segments.append((*pieces, "".join(buf)))
    return segments


class _Segment:
    """One segment: a literal, or a fixed-length regex when it holds ``?`` (no
    repetition, so at most its own length in steps per start position)."""

    __slots__ = ("text", "size", "rx")

    def __init__(self, pieces: Segment) -> None:
        self.size = sum(map(len, pieces)) + len(pieces) - 1
        self.text = pieces[0] if len(pieces) == 1 else None
        self.rx = None if len(pieces) == 1 else re.compile(".".join(map(re.escape, pieces)), re.DOTALL)

    def at(self, value: str, pos: int) -> bool:
        if self.rx is None:
            return value.startswith(self.text, pos)
        return self.rx.match(value, pos) is not None

    def find(self, value: str, start: int, end: int) -> int:
        """The leftmost place >= start where the segment lies wholly before ``end``, or -1."""
        if self.rx is None:
            return value.find(self.text, start, end)
        m = self.rx.search(value, start, end)
        return -1 if m is None else m.start()


def _general(segments: list[_Segment]) -> Matcher:
    first, last, middle = segments[0], segments[-1], segments[1:-1]
    least = sum(s.size for s in segments)
    head = first.size

    def match(value: str) -> bool:
        n = len(value)
        if n < least or not first.at(value, 0):
            return False
        end = n - last.size
        if not last.at(value, end):
            return False
        pos = head
        for seg in middle:
            i = seg.find(value, pos, end)
            if i < 0:
                return False
            pos = i + seg.size
        return True

    return match


def _matcher(segments: list[Segment]) -> Matcher:
    if len(segments) == 1:
        if len(segments[0]) == 1:
            return segments[0][0].__eq__
        seg = _Segment(segments[0])
        size = seg.size
        return lambda value: len(value) == size and seg.at(value, 0)
    # Runs of '*' are one '*'.
    segments = [segments[0], *(s for s in segments[1:-1] if s != ("",)), segments[-1]]
    if all(len(s) == 1 for s in segments):
        # The shapes rules use most, each one C call.
        texts = [s[0] for s in segments]
        if len(texts) == 2:
            pre, suf = texts
            if not suf:
                return lambda value: value.startswith(pre)
            if not pre:
                return lambda value: value.endswith(suf)
        elif len(texts) == 3 and not texts[0] and not texts[2]:
            needle = texts[1]
            return lambda value: needle in value
    return _general([_Segment(s) for s in segments])


@lru_cache(maxsize=8192)
def compile_wildcard(pattern: str, case_insensitive: bool = False, escapes: bool = False) -> Matcher:
    """A test of a whole value against ``pattern``, linear in the value.

    ``escapes``: Lucene ``WildcardQuery`` syntax (``\\`` escapes the next character);
    otherwise EQL's, where ``\\`` is a plain character. ``case_insensitive`` folds
    ASCII letters only, as Elasticsearch does."""
    if not case_insensitive:
        return _matcher(parse(pattern, escapes=escapes))
    match = _matcher(parse(ascii_lower(pattern), escapes=escapes))
    return lambda value: match(ascii_lower(value))


def wildcard_match(value: str, pattern: str, case_insensitive: bool = False, escapes: bool = False) -> bool:
    """``value`` against ``pattern`` (see :func:`compile_wildcard`)."""
    return compile_wildcard(pattern, case_insensitive, escapes)(value)


def any_wildcard(patterns: Iterable[str], case_insensitive: bool = False) -> Matcher:
    """One test for several EQL wildcard patterns: exact values in a set, ``x*``,
    ``*x`` and ``*x*`` as one C call each kind, the rest each its own matcher.
    ``case_insensitive`` folds the value once for all."""
    fold = ascii_lower if case_insensitive else None
    exact: set[str] = set()
    prefixes: list[str] = []
    suffixes: list[str] = []
    contains: list[str] = []
    others: list[Matcher] = []
    for p in dict.fromkeys(patterns):
        if fold is not None:
            p = fold(p)
        if "*" not in p and "?" not in p:
            exact.add(p)
            continue
        core = p.strip("*")
        if "?" in p or "*" in core:
            others.append(_matcher(parse(p)))
        elif p.startswith("*") and p.endswith("*") and len(p) >= 2:
            contains.append(core)
        elif p.endswith("*"):
            prefixes.append(core)
        else:
            suffixes.append(core)
    pre, suf = tuple(prefixes), tuple(suffixes)

    def test(value: str) -> bool:
        if fold is not None:
            value = fold(value)
        if value in exact:
            return True
        if pre and value.startswith(pre):
            return True
        if suf and value.endswith(suf):
            return True
        for c in contains:
            if c in value:
                return True
        for m in others:
            if m(value):
                return True
        return False

    return test
