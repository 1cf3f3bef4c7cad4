"""Lucene regular expressions, as Elasticsearch's ``regexp`` query reads them,
matched in time linear in the value.

The syntax is Lucene 9's ``RegExp`` (lucene/core/src/java/org/apache/lucene/util/
automaton/RegExp.java) with every optional operator on: Elasticsearch's EQL
``regex``/``regex~`` become a ``regexp`` query (x-pack/plugin/ql ``RegexQuery``)
with the builder's default flags, ``RegexpFlag.ALL`` (server/src/main/java/org/
elasticsearch/index/query/RegexpFlag.java), and KQL's wildcards with a literal
``*`` are written here as such a query. So:

- the whole value must match; ``^`` and ``$`` are plain characters;
- ``.`` is any character, newlines included; ``@`` any string; ``#`` nothing;
- ``"..."`` literal text; ``()`` the empty string; ``<n-m>`` a decimal interval
  (any number of leading zeros, or exactly the width of both bounds when they
  have the same number of digits); ``<name>`` a named automaton, which
  Elasticsearch never defines (an error);
- ``\\d \\D \\s \\S \\w \\W`` are ``[0-9]``, ``[ \\t\\n\\r]``, ``[a-zA-Z_0-9]`` and their
  complements; ``\\`` before any other ASCII letter is an error; before anything
  else it makes that character plain, inside classes too;
- ``*``, ``+``, ``?``, ``{n}``, ``{n,}``, ``{n,m}`` repeat; where an operand is
  expected they are plain characters (``*a`` is the text ``*a``);
- ``&`` (intersection) and ``~`` (complement) parse but are reported unsupported:
  no prebuilt rule uses them, and they have no linear-time form in RE2.

Case-insensitive (``regex~``): Elasticsearch passes ``RegExp.ASCII_CASE_INSENSITIVE``
(``RegexpQueryBuilder.doToQuery``), under which Lucene 9 folds single characters
and quoted strings, ASCII letters only, and leaves ranges as written: ``[a-z]``
still matches only lower case, ``[abc]`` and ``[^a]`` fold.

The parsed expression is written in RE2's syntax (Google RE2, an automaton engine
whose time is linear in the input) with full-match anchoring. Every character is
written as a code point, every repetition wraps its operand in a group, so no
Lucene text is ever read by Python's backtracking ``re``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache

import re2

# Elasticsearch refuses longer patterns: index.max_regex_length defaults to 1000
# (IndexSettings.MAX_REGEX_LENGTH_SETTING, checked in RegexpQueryBuilder.doToQuery).
MAX_LENGTH = 1000
# Groups nested deeper than this are refused rather than risk Python's recursion limit.
MAX_DEPTH = 100
_MAX_CP = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
_RE2_MAX_REPEAT = 1000  # RE2's largest repetition count


class RegexpError(ValueError):
    """A pattern Elasticsearch would refuse (or Vigil cannot run), with the 0-based
    position in the pattern where Lucene's parser would say it went wrong."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        super().__init__(message if position is None else f"{message} at position {position}")


# --- the syntax tree: small tuples, (kind, ...) ---------------------------------------
# ("union", [n..]) ("concat", [n..]) ("inter", a, b, pos) ("compl", a, pos)
# ("repeat", a, lo, hi|None) ("class", items, negated) ("char", cp) ("string", text)
# ("any",) ("anystring",) ("empty",) ("interval", lo, hi, digits) ("pre", letter)
# class items: ("char", cp) ("range", lo, hi) ("pre", letter)

_DIGITS = "0123456789"
_BAD_ESCAPES = frozenset("abcefghijklmnopqrtuvxyzABCEFGHIJKLMNOPQRTUVXYZ")


class _Parser:
    """Lucene 9's recursive-descent grammar, with loops where it recurses on length."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.pos = 0
        self.depth = 0

    def more(self) -> bool:
        return self.pos < len(self.s)

    def peek(self, chars: str) -> bool:
        return self.pos < len(self.s) and self.s[self.pos] in chars

    def match(self, ch: str) -> bool:
        if self.pos < len(self.s) and self.s[self.pos] == ch:
            self.pos += 1
            return True
        return False

    def next(self) -> str:
        if not self.more():
            raise RegexpError("unexpected end-of-string", self.pos)
        ch = self.s[self.pos]
        self.pos += 1
        return ch

    def parse(self) -> tuple:
        if not self.s:
            return ("string", "")
        node = self.union()
        if self.more():
            raise RegexpError("end-of-string expected", self.pos)
        return node

    def union(self) -> tuple:
        alts = [self.inter()]
        while self.match("|"):
            alts.append(self.inter())
        return alts[0] if len(alts) == 1 else ("union", alts)

    def inter(self) -> tuple:
        # Lucene nests a & (b & c); intersection is associative, so a loop does.
        node = self.concat()
        while self.peek("&"):
            at = self.pos
            self.pos += 1
            node = ("inter", node, self.concat(), at)
        return node

    def concat(self) -> tuple:
        items = [self.repeat()]
        while self.more() and not self.peek(")|&"):
            items.append(self.repeat())
        return items[0] if len(items) == 1 else ("concat", items)

    def repeat(self) -> tuple:
        node = self.compl()
        while self.peek("?*+{"):
            if self.match("?"):
                node = ("repeat", node, 0, 1)
            elif self.match("*"):
                node = ("repeat", node, 0, None)
            elif self.match("+"):
                node = ("repeat", node, 1, None)
            else:
                self.pos += 1
                lo = self.integer()
                hi: int | None = lo
                if self.match(","):
                    hi = self.integer() if self.peek(_DIGITS) else None
                if not self.match("}"):
                    raise RegexpError("expected '}'", self.pos)
                node = ("repeat", node, lo, hi)
        return node

    def integer(self) -> int:
        start = self.pos
        while self.peek(_DIGITS):
            self.pos += 1
        if start == self.pos:
            raise RegexpError("integer expected", self.pos)
        value = int(self.s[start : self.pos])
        if value > 2**31 - 1:
            raise RegexpError("number too large", start)
        return value

    def compl(self) -> tuple:
        marks = []
        while self.peek("~"):
            marks.append(self.pos)
            self.pos += 1
        node = self.char_class_exp()
        for at in reversed(marks):
            node = ("compl", node, at)
        return node

    def char_class_exp(self) -> tuple:
        if not self.match("["):
            return self.simple()
        negated = self.match("^")
        items = [self.class_item()]
        while self.more() and not self.peek("]"):
            items.append(self.class_item())
        if not self.match("]"):
            raise RegexpError("unterminated character class: expected ']'", self.pos)
        return ("class", items, negated)

    def class_item(self) -> tuple:
        pre = self.predefined()
        if pre is not None:
            return pre
        lo = self.char_exp()
        if self.match("-"):
            hi = self.char_exp()
            if ord(lo) > ord(hi):
                raise RegexpError(f"invalid range: from ({ord(lo)}) cannot be > to ({ord(hi)})", self.pos)
            return ("range", ord(lo), ord(hi))
        return ("char", ord(lo))

    def predefined(self) -> tuple | None:
        # Lucene consumes the backslash here even when no class follows.
        if not self.match("\\"):
            return None
        if self.peek("dDwWsS"):
            return ("pre", self.next())
        if self.peek("\\"):
            return ("char", ord(self.next()))
        if self.more() and self.s[self.pos] in _BAD_ESCAPES:
            raise RegexpError(f"invalid character class \\{self.s[self.pos]}", self.pos)
        return None

    def char_exp(self) -> str:
        self.match("\\")
        return self.next()

    def simple(self) -> tuple:
        if self.match("."):
            return ("any",)
        if self.match("#"):
            return ("empty",)
        if self.match("@"):
            return ("anystring",)
        if self.match('"'):
            start = self.pos
            while self.more() and not self.peek('"'):
                self.pos += 1
            if not self.match('"'):
                raise RegexpError("unterminated string: expected '\"'", self.pos)
            return ("string", self.s[start : self.pos - 1])
        if self.match("("):
            if self.match(")"):
                return ("string", "")
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise RegexpError(f"groups nested more than {MAX_DEPTH} deep", self.pos - 1)
            node = self.union()
            self.depth -= 1
            if not self.match(")"):
                raise RegexpError("unterminated group: expected ')'", self.pos)
            return node
        if self.match("<"):
            return self.interval()
        pre = self.predefined()
        if pre is not None:
            return pre
        return ("char", ord(self.char_exp()))

    def interval(self) -> tuple:
        start = self.pos
        while self.more() and not self.peek(">"):
            self.pos += 1
        if not self.match(">"):
            raise RegexpError("unterminated interval: expected '>'", self.pos)
        body = self.s[start : self.pos - 1]
        dash = body.find("-")
        if dash < 0:
            # A named automaton: Elasticsearch's regexp query has none to offer.
            raise RegexpError(f"the named automaton <{body}> is not defined", start - 1)
        lo_text, hi_text = body[:dash], body[dash + 1 :]
        if dash == 0 or dash == len(body) - 1 or "-" in hi_text:
            raise RegexpError("interval syntax error", self.pos - 1)
        lo, hi = _java_int(lo_text), _java_int(hi_text)
        if lo is None or hi is None:
            raise RegexpError("interval syntax error", self.pos - 1)
        digits = len(lo_text) if len(lo_text) == len(hi_text) else 0
        lo, hi = min(lo, hi), max(lo, hi)
        return ("interval", lo, hi, digits)


def _java_int(text: str) -> int | None:
    """Integer.parseInt: an optional sign, ASCII digits, within 32 bits."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not all(c in _DIGITS for c in body):
        return None
    value = int(text)
    return value if -(2**31) <= value <= 2**31 - 1 else None


def parse(pattern: str) -> tuple:
    """The syntax tree of a Lucene regular expression (RegexpError when Lucene refuses it)."""
    if len(pattern) > MAX_LENGTH:
        raise RegexpError(
            f"the regular expression is {len(pattern)} characters long, over Elasticsearch's "
            f"index.max_regex_length of {MAX_LENGTH}"
        )
    return _Parser(pattern).parse()


# --- RE2 text -------------------------------------------------------------------------

Ranges = list[tuple[int, int]]

_PRE: dict[str, Ranges] = {
    "d": [(0x30, 0x39)],
    "s": [(0x09, 0x0A), (0x0D, 0x0D), (0x20, 0x20)],
    "w": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
}


def _normalize(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _complement(ranges: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in _normalize(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_CP:
        out.append((nxt, _MAX_CP))
    return out


def _pre_ranges(letter: str) -> Ranges:
    base = _PRE[letter.lower()]
    return base if letter.islower() else _complement(base)


def _char_ranges(cp: int, fold: bool) -> Ranges:
    # Lucene's toCaseInsensitiveChar: the other case of code points up to 128 only.
    if fold and cp <= 128:
        ch = chr(cp)
        other = ch.upper() if ch.islower() else ch.lower()
        if other != ch and len(other) == 1:
            return _normalize([(cp, cp), (ord(other), ord(other))])
    return [(cp, cp)]


def _cp(cp: int) -> str:
    ch = chr(cp)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{cp:x}}}"


_NOTHING = r"[^\x00-\x{10ffff}]"


def _class(ranges: Ranges) -> str:
    parts = []
    for lo, hi in _normalize(ranges):
        # UTF-8 text never holds a surrogate (values are cleaned before matching).
        for a, b in ((lo, min(hi, _SURROGATES[0] - 1)), (max(lo, _SURROGATES[1] + 1), hi)):
            if a <= b:
                parts.append(_cp(a) if a == b else f"{_cp(a)}-{_cp(b)}")
    if not parts:
        return _NOTHING
    if len(parts) == 1 and "-" not in parts[0]:
        return parts[0]
    return "[" + "".join(parts) + "]"


def _fixed_width(lo: str, hi: str) -> str:
    """Digit strings of one width from ``lo`` to ``hi`` (both that width)."""
    if lo == hi:
        return lo
    if len(lo) == 1:
        return f"[{lo}-{hi}]"
    if lo[0] == hi[0]:
        return lo[0] + _fixed_width(lo[1:], hi[1:])
    rest = len(lo) - 1
    alts = [lo[0] + _fixed_width(lo[1:], "9" * rest)]
    if int(hi[0]) - int(lo[0]) > 1:
        alts.append(f"[{int(lo[0]) + 1}-{int(hi[0]) - 1}][0-9]{{{rest}}}")
    alts.append(hi[0] + _fixed_width("0" * rest, hi[1:]))
    return "(?:" + "|".join(alts) + ")"


def _interval(lo: int, hi: int, digits: int) -> str:
    """Lucene's Automata.makeDecimalInterval as RE2 text."""
    if digits > 0:
        if len(str(hi)) > digits:
            return _NOTHING
        return _fixed_width(str(lo).zfill(digits), str(hi).zfill(digits))
    alts = []
    for width in range(len(str(lo)), len(str(hi)) + 1):
        a = max(lo, 10 ** (width - 1) if width > 1 else 0)
        b = min(hi, 10**width - 1)
        alts.append(_fixed_width(str(a), str(b)))
    return "0*(?:" + "|".join(alts) + ")"


def _repeat(inner: str, lo: int, hi: int | None) -> str:
    if hi is not None and lo > hi:
        return _NOTHING  # Operations.repeat(a, min, max) with min > max: the empty language
    group = f"(?:{inner})"
    if (lo, hi) == (0, 1):
        return group + "?"
    if (lo, hi) == (0, None):
        return group + "*"
    if (lo, hi) == (1, None):
        return group + "+"
    out = []
    # RE2 counts to 1000: longer counts as a chain of exact repeats.
    while lo > _RE2_MAX_REPEAT:
        out.append(f"{group}{{{_RE2_MAX_REPEAT}}}")
        lo -= _RE2_MAX_REPEAT
        if hi is not None:
            hi -= _RE2_MAX_REPEAT
    if hi is None:
        out.append(f"{group}{{{lo},}}")
    else:
        while hi - lo > _RE2_MAX_REPEAT:
            out.append(f"{group}{{0,{_RE2_MAX_REPEAT}}}")
            hi -= _RE2_MAX_REPEAT
        out.append(f"{group}{{{lo},{hi}}}")
    return "".join(out)


def to_re2(node: tuple, fold: bool = False) -> str:
    """RE2 text for a parsed expression (to be matched against the whole value).
    ``fold``: ASCII case-insensitive as Lucene's ASCII_CASE_INSENSITIVE."""
    kind = node[0]
    if kind == "char":
        return _class(_char_ranges(node[1], fold))
    if kind == "string":
        return "".join(_class(_char_ranges(ord(c), fold)) for c in node[1])
    if kind == "concat":
        return "".join(to_re2(n, fold) for n in node[1])
    if kind == "union":
        return "(?:" + "|".join(to_re2(n, fold) for n in node[1]) + ")"
    if kind == "repeat":
        return _repeat(to_re2(node[1], fold), node[2], node[3])
    if kind == "any":
        return "(?s:.)"
    if kind == "anystring":
        return "(?s:.*)"
    if kind == "empty":
        return _NOTHING
    if kind == "pre":
        return _class(_pre_ranges(node[1]))
    if kind == "class":
        ranges: Ranges = []
        for item in node[1]:
            if item[0] == "char":
                ranges += _char_ranges(item[1], fold)
            elif item[0] == "range":
                ranges.append((item[1], item[2]))
            else:
                ranges += _pre_ranges(item[1])
        return _class(_complement(ranges) if node[2] else ranges)
    if kind == "interval":
        return _interval(node[1], node[2], node[3])
    if kind == "inter":
        raise RegexpError("the intersection operator '&' is not supported", node[3])
    if kind == "compl":
        raise RegexpError("the complement operator '~' is not supported", node[2])
    raise AssertionError(f"unknown node {kind}")


# --- matching -------------------------------------------------------------------------


def _options() -> re2.Options:
    opts = re2.Options()
    opts.never_capture = True
    opts.dot_nl = True
    opts.log_errors = False
    return opts


_OPTIONS = _options()


def clean(value: str) -> str:
    """``value`` as valid Unicode: a lone surrogate (which JSON escapes can carry)
    becomes U+FFFD, one character for one, so lengths and positions stay."""
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Regexp:
    """A compiled Lucene regular expression; :meth:`fullmatch` tests a whole value."""

    __slots__ = ("pattern", "case_insensitive", "re2_pattern", "_full")

    def __init__(self, pattern: str, case_insensitive: bool = False) -> None:
        self.pattern = pattern
        self.case_insensitive = case_insensitive
        self.re2_pattern = to_re2(parse(pattern), case_insensitive)
        try:
            self._full = re2.compile(self.re2_pattern, _OPTIONS).fullmatch
        except re2.error as exc:
            raise RegexpError(f"the regular expression is too complex to run ({exc})") from None

    def fullmatch(self, value: str) -> bool:
        """Whether the whole of ``value`` matches, in time linear in its length."""
        try:
            return self._full(value) is not None
        except UnicodeEncodeError:
            return self._full(clean(value)) is not None

    def __repr__(self) -> str:
        return f"Regexp({self.pattern!r}, case_insensitive={self.case_insensitive})"


@lru_cache(maxsize=4096)
def compile_regexp(pattern: str, case_insensitive: bool = False) -> Regexp:
    """A Lucene regular expression, compiled once (RegexpError when Elasticsearch would
    refuse it or Vigil cannot run it)."""
    return Regexp(pattern, case_insensitive)


def regexp_match(value: str, pattern: str, case_insensitive: bool = False) -> bool:
    return compile_regexp(pattern, case_insensitive).fullmatch(value)


# --- any of several literals ----------------------------------------------------------

# Under this length Python's ``re`` is the faster search (RE2's call costs a few
# microseconds); its alternation of literals costs at most the literals' total
# length per position, so a short text bounds it.
_SHORT = 256


def any_literal(literals: Iterable[str]) -> Callable[[str], bool]:
    """A search for any of ``literals`` in a text, linear in the text."""
    lits = sorted(set(literals), key=len)
    if not lits:
        return lambda text: False
    short = re.compile("|".join(re.escape(lit) for lit in lits)).search
    long = re2.compile("|".join(re2.escape(lit) for lit in lits), _OPTIONS).search

    def search(text: str) -> bool:
        if len(text) <= _SHORT:
            return short(text) is not None
        try:
            return long(text) is not None
        except UnicodeEncodeError:
            return long(clean(text)) is not None

    return search
