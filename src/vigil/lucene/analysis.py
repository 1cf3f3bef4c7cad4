"""Elasticsearch's ``standard`` analyzer, and the text queries KQL builds on analysed fields.

A ``text`` (or ``match_only_text``) field is indexed as the tokens its analyzer makes
of each value, and a query on it analyses its own value the same way. The default
analyzer is ``standard`` (Elasticsearch ``StandardAnalyzerProvider``: Lucene's
``StandardAnalyzer`` with no stop words and ``max_token_length`` 255), which is
Lucene's ``StandardTokenizer`` followed by ``LowerCaseFilter``.

The tokenizer (Lucene ``analysis/standard/StandardTokenizerImpl.jflex``) applies the
word-break rules of Unicode Standard Annex #29 and keeps only segments that hold a
letter, digit, ideograph or emoji: ``Invoke-Mimikatz`` is ``invoke``, ``mimikatz``
(a hyphen breaks); ``System.Management`` and ``env:ComSpec`` stay whole (WB6/WB7: a
full stop, colon or apostrophe between letters does not break); ``4,15`` and ``3.14``
stay whole (WB11/WB12); ``_`` joins (ExtendNumLet, WB13a/b); each CJK ideograph and
each hiragana is a token of its own; Thai, Lao, Khmer and Myanmar runs stay whole.
Rules compete by longest match (JFlex), and a token never exceeds the scanner's
buffer of ``max_token_length`` UTF-16 units: a longer word is cut there and the
scan resumes after it. ``LowerCaseFilter`` lower-cases each code point alone
(Java's ``Character.toLowerCase``), so ``İ`` is ``i`` and a final sigma stays ``σ``.

The character classes (:mod:`vigil.lucene.wordbreak_data`) are the Unicode 9.0
properties the grammar is compiled with (``%unicode 9``) and the Unicode 11.0 emoji
properties it includes. Text made of ASCII takes a regular expression equal to the
grammar on ASCII; anything else runs the grammar itself, as a small automaton.

The queries, as Kibana builds them for a KQL value on a field (``kbn-es-query``
``kuery/functions/is.ts``, with no field list) and Elasticsearch runs them:

- unquoted ``f: v``: ``match`` (``MatchQueryParser``, default operator ``OR``): the
  value's tokens, any of which in the field's tokens matches; no token, no match
  (``zero_terms_query: none``).
- quoted ``f: "v w"``: ``match_phrase``: the tokens in a row (slop 0).
- ``f: a*b``: ``query_string`` (``node_types/wildcard.ts`` escapes every reserved
  character but ``*``); Lucene's classic parser makes ``a*`` a prefix query and any
  other shape a wildcard query, and Elasticsearch's ``QueryStringQueryParser``
  (``getPossiblyAnalyzedPrefixQuery``, ``getWildcardQuerySingle`` ->
  ``StringFieldType.normalizedWildcardQuery``) lower-cases the literal parts with the
  analyzer's ``normalize`` and does not tokenize them: the pattern matches one token
  (``*mimikatz*`` finds ``invoke-mimikatz``; ``invoke-mimi*`` finds nothing, no
  standard token holds a hyphen).

A field's mapping may name another analyzer, and then both the value and the query
use it: Elastic's Windows package maps ``powershell.file.script_block_text`` with its
``powershell_script_analyzer`` (:func:`analyze_powershell`), so a script is split
differently from prose and ``Invoke-Mimikatz`` is one token there.

A multi-valued field is indexed with a position gap (``position_increment_gap``
100) between values, so a phrase never spans two values: each value is tested alone.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from vigil.lucene import wordbreak_data as _data

MAX_TOKEN_LENGTH = 255  # StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH, ES max_token_length's default

_F = _data.FLAGS
_STARTS: list[int] = []
_ENDS: list[int] = []
_VALUES: list[int] = []
for _row in _data.RANGES.split("\n"):
    if _row:
        _lo, _hi, _fl = (int(x, 16) for x in _row.split())
        _STARTS.append(_lo)
        _ENDS.append(_hi)
        _VALUES.append(_fl)


@lru_cache(maxsize=65536)
def char_flags(cp: int) -> int:
    """The word-break classes of a code point (bits of ``wordbreak_data.FLAGS``)."""
    i = bisect.bisect_right(_STARTS, cp) - 1
    return _VALUES[i] if i >= 0 and cp <= _ENDS[i] else 0


# --- the grammar as a small NFA -----------------------------------------------------------
#
# Each rule of StandardTokenizerImpl.jflex, written with the same macros. Only the text
# of a token matters here (not its type), so the token rules form one alternation and
# the token is its longest match.


class _Nfa:
    def __init__(self) -> None:
        self.edges: list[list[tuple[Callable[[int, int], bool], int]]] = []
        self.eps: list[list[int]] = []

    def node(self) -> int:
        self.edges.append([])
        self.eps.append([])
        return len(self.edges) - 1


_N = _Nfa()
Frag = tuple[int, int]


def _sym(test: Callable[[int, int], bool]) -> Callable[[], Frag]:
    def build() -> Frag:
        a, b = _N.node(), _N.node()
        _N.edges[a].append((test, b))
        return a, b

    return build


def _flag(name: str, *, without: int = 0, except_cps: frozenset = frozenset()) -> Callable[[], Frag]:
    bit = _F[name]
    return _sym(lambda cp, f: bool(f & bit) and not f & without and cp not in except_cps)


def _cps(chars: str | range) -> Callable[[], Frag]:
    cps = frozenset(ord(c) for c in chars) if isinstance(chars, str) else frozenset(chars)
    return _sym(lambda cp, f: cp in cps)


def _seq(*parts: Callable[[], Frag]) -> Callable[[], Frag]:
    def build() -> Frag:
        frags = [p() for p in parts]
        for (_, end), (start, _) in zip(frags, frags[1:], strict=False):
            _N.eps[end].append(start)
        return frags[0][0], frags[-1][1]

    return build


def _alt(*parts: Callable[[], Frag]) -> Callable[[], Frag]:
    def build() -> Frag:
        a, b = _N.node(), _N.node()
        for p in parts:
            s, e = p()
            _N.eps[a].append(s)
            _N.eps[e].append(b)
        return a, b

    return build


def _star(part: Callable[[], Frag]) -> Callable[[], Frag]:
    def build() -> Frag:
        a, b = _N.node(), _N.node()
        s, e = part()
        _N.eps[a] += [s, b]
        _N.eps[e] += [s, b]
        return a, b

    return build


def _plus(part: Callable[[], Frag]) -> Callable[[], Frag]:
    return _seq(part, _star(part))


def _opt(part: Callable[[], Frag]) -> Callable[[], Frag]:
    def build() -> Frag:
        a, b = _N.node(), _N.node()
        s, e = part()
        _N.eps[a] += [s, b]
        _N.eps[e].append(b)
        return a, b

    return build


_PRES_SELECTORS = frozenset({0xFE0E, 0xFE0F})
_KEYCAP_BASE = "0123456789#*"
_ACCIDENTAL = "\u00a9\u00ae\u2122\u3030\u303d"  # AccidentalEmoji: © ® ™ 〰 〽

# UAX#29 WB4: X (Extend | Format | ZWJ)* -> X
_ExtFmtZwj = _star(_flag("ExtFmtZwj"))
_ExtFmtZwjSansPresSel = _star(_flag("ExtFmtZwj", except_cps=_PRES_SELECTORS))


def _ex(name: str) -> Callable[[], Frag]:
    return _seq(_flag(name), _ExtFmtZwj)


# Emoji (UTS #51 emoji_sequence, as the grammar spells it).
_KeyCapBaseCharEx = _seq(_cps(_KEYCAP_BASE), _ExtFmtZwjSansPresSel)
_KeyCapEx = _seq(_cps("\u20e3"), _ExtFmtZwjSansPresSel)
_EmojiChar = _alt(
    _flag("Extended_Pictographic"),
    # EmojiSansRKAM: Emoji but not Regional_Indicator, a keycap base, an accidental emoji, a modifier.
    _flag(
        "Emoji",
        without=_F["Regional_Indicator"] | _F["Emoji_Modifier"],
        except_cps=frozenset(ord(c) for c in _KEYCAP_BASE + _ACCIDENTAL),
    ),
)
_EmojiCharEx = _seq(_EmojiChar, _ExtFmtZwjSansPresSel)
_EmojiModifierBaseEx = _seq(_flag("Emoji_Modifier_Base"), _ExtFmtZwjSansPresSel)
_EmojiModifierEx = _seq(_flag("Emoji_Modifier"), _ExtFmtZwjSansPresSel)
_ZWJ = _flag("ZWJ")
_EmojiCharOrPresSeqOrModSeq = _alt(
    _seq(_star(_ZWJ), _EmojiCharEx, _opt(_cps("\ufe0f"))),
    _seq(_opt(_seq(_star(_ZWJ), _EmojiModifierBaseEx)), _EmojiModifierEx),
)
_EMOJI = _alt(
    _seq(
        _EmojiCharOrPresSeqOrModSeq,
        _alt(
            _star(_seq(_ZWJ, _EmojiCharOrPresSeqOrModSeq)),
            _seq(_plus(_cps(range(0xE0020, 0xE007F))), _cps("\U000e007f")),
        ),
    ),
    _seq(_KeyCapBaseCharEx, _opt(_cps("\ufe0f")), _KeyCapEx),
    _seq(_ex("Regional_Indicator"), _ex("Regional_Indicator")),
)

# Letters and numbers (WB5-WB13b).
_ExtendNumLetEx = _ex("ExtendNumLet")
_NumericEx = _ex("Numeric")
_AHLetterEx = _ex("ALetter")
_HebrewLetterEx = _ex("Hebrew_Letter")
_KatakanaEx = _ex("Katakana")
_NUMERIC = _seq(
    _star(_ExtendNumLetEx),
    _NumericEx,
    _star(_seq(_alt(_star(_ExtendNumLetEx), _ex("MidNumericEx")), _NumericEx)),
    _star(_ExtendNumLetEx),
)


def _word_body() -> Callable[[], Frag]:
    return _alt(
        _seq(_KatakanaEx, _star(_seq(_star(_ExtendNumLetEx), _KatakanaEx))),
        _plus(
            _alt(
                _seq(_HebrewLetterEx, _alt(_ex("Single_Quote"), _seq(_ex("Double_Quote"), _HebrewLetterEx))),
                _seq(_NumericEx, _star(_seq(_alt(_star(_ExtendNumLetEx), _ex("MidNumericEx")), _NumericEx))),
                _seq(_AHLetterEx, _star(_seq(_alt(_star(_ExtendNumLetEx), _ex("MidLetterEx")), _AHLetterEx))),
            )
        ),
    )


_WORD = _seq(
    _star(_ExtendNumLetEx),
    _word_body(),
    _star(_seq(_plus(_ExtendNumLetEx), _word_body())),
    _star(_ExtendNumLetEx),
)
_TOKEN = _alt(
    _EMOJI,
    _NUMERIC,
    _plus(_ex("Hangul")),
    _plus(_KatakanaEx),
    _WORD,
    _plus(_ex("Complex_Context")),  # South East Asian runs
    _ex("Han"),  # one ideograph
    _ex("Hiragana"),  # one hiragana
)
_START, _ACCEPT = _TOKEN()


def _closure(states: set[int]) -> frozenset[int]:
    stack = list(states)
    seen = set(states)
    while stack:
        for t in _N.eps[stack.pop()]:
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return frozenset(seen)


_START_SET = _closure({_START})
_STEPS: dict[tuple[frozenset[int], int], frozenset[int]] = {}  # (states, code point) -> next states


def _longest(text: str, start: int, end: int, *, astral: bool) -> int:
    """The end of the longest token at ``start`` (``start`` when none), seeing no further
    than ``end`` nor past the scanner's buffer (counted in UTF-16 units when ``astral``)."""
    states = _START_SET
    best = start
    i = start
    edges = _N.edges
    step = _STEPS
    if not astral:
        end = min(end, start + MAX_TOKEN_LENGTH)
    units = 0
    while i < end and states:
        cp = ord(text[i])
        if astral:
            units += 2 if cp > 0xFFFF else 1
            if units > MAX_TOKEN_LENGTH:
                break
        key = (states, cp)
        nxt = step.get(key)
        if nxt is None:
            f = char_flags(cp)
            found = {t for s in states for test, t in edges[s] if test(cp, f)}
            nxt = _closure(found) if found else frozenset()
            if len(step) > 100_000:
                step.clear()
            step[key] = nxt
        if not nxt:
            break
        states = nxt
        i += 1
        if _ACCEPT in states:
            best = i
    return best


# On ASCII the grammar is: letters, digits and ``_`` always join (WB5, WB8-WB10,
# WB13a/b); ``:`` ``.`` ``'`` join two letters (WB6/WB7), ``,`` ``;`` ``.`` ``'`` two
# digits (WB11/WB12); a run of ``_`` alone is no token; and there is no emoji (keycaps
# and the like need non-ASCII marks).
_ASCII_BODY = (
    r"_*[A-Za-z0-9][A-Za-z0-9_]*"
    r"(?:(?:(?<=[A-Za-z])[:.'](?=[A-Za-z])|(?<=[0-9])[,;.'](?=[0-9]))[A-Za-z0-9_]+)*"
)
_ASCII_TOKEN = re.compile(_ASCII_BODY)
# A token never starts right after a word character (it would have joined), which
# keeps a scan linear over long runs of ``_``.
_ASCII_SCAN = re.compile(r"(?<![A-Za-z0-9_])" + _ASCII_BODY)


def _starter_class() -> str:
    """The non-ASCII characters of the BMP a token rule can begin with, and every
    supplementary one, as a regex class (a class of many supplementary ranges is
    searched range by range, one of BMP ranges by a table)."""
    starts = ~(_F["ExtFmtZwj"] | _F["MidLetterEx"] | _F["MidNumericEx"] | _F["Double_Quote"]) | _F["ZWJ"]
    parts = []
    for lo, hi, f in zip(_STARTS, _ENDS, _VALUES, strict=True):
        lo, hi = max(lo, 0x80), min(hi, 0xFFFF)
        if hi >= lo and f & starts:
            parts.append(re.escape(chr(lo)) + ("-" + re.escape(chr(hi)) if hi > lo else ""))
    return "[" + "".join(parts) + "\U00010000-\U0010ffff]"


# Where a token may start: an ASCII word character (the ASCII rule decides, unless a
# non-ASCII character follows), a keycap base before a non-ASCII mark, or a non-ASCII
# character that begins some rule. Everything else is skipped by the scan itself.
_CANDIDATE = re.compile(r"(?P<ascii>[A-Za-z0-9_])|[#*](?=[^\x00-\x7f])|" + _starter_class())
_MID = frozenset(".:',;")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _window(text: str, start: int, astral: bool) -> int:
    """The scanner's buffer from ``start``: ``MAX_TOKEN_LENGTH`` UTF-16 units (a pair is never cut)."""
    end = min(start + MAX_TOKEN_LENGTH, len(text))
    if not astral or _ASTRAL.search(text, start, end) is None:
        return end
    units, i = 0, start
    while i < len(text):
        units += 2 if ord(text[i]) > 0xFFFF else 1
        if units > MAX_TOKEN_LENGTH:
            break
        i += 1
    return i


def _ascii_token_end(text: str, start: int, end: int) -> int | None:
    """The token's end when the ASCII rule decides it alone; None when a non-ASCII
    character just after it could extend it."""
    m = _ASCII_TOKEN.match(text, start, end)
    if m is None:
        return None
    e = m.end()
    if e < end:
        c = text[e]
        if not c.isascii():
            return None
        if c in _MID and e + 1 < end and not text[e + 1].isascii():
            return None
    return e


def tokenize(text: str) -> list[str]:
    """Lucene's StandardTokenizer: the token texts of ``text``, in order (not lower-cased)."""
    if text.isascii():
        return _tokenize_ascii(text)
    return _tokenize(text, 0, [])


def _tokenize_ascii(text: str) -> list[str]:
    out: list[str] = []
    for m in _ASCII_SCAN.finditer(text):
        if m.end() - m.start() <= MAX_TOKEN_LENGTH:
            out.append(m.group())
        else:  # a word longer than the scanner's buffer: cut, then on as usual
            return _tokenize(text, m.start(), out)
    return out


def _tokenize(text: str, pos: int, out: list[str]) -> list[str]:
    n = len(text)
    astral = not text.isascii() and _ASTRAL.search(text) is not None
    while pos < n:
        m = _CANDIDATE.search(text, pos)
        if m is None:
            break
        s = m.start()
        if m.lastgroup == "ascii":
            end = _window(text, s, astral)
            e = _ascii_token_end(text, s, end)
            if e is None:
                e = _longest(text, s, end, astral=False)
        else:
            e = _longest(text, s, len(text), astral=astral)
        if e > s:
            out.append(text[s:e])
            pos = e
        else:
            pos = _skip_failed_prefix(text, s)
    return out


_ENL, _ZWJ_BIT = _F["ExtendNumLet"], _F["ZWJ"]
_EXT_NOT_ZWJ = _F["ExtFmtZwj"]


def _skip_failed_prefix(text: str, s: int) -> int:
    """Where to look next when no token starts at ``s``. Only two rules begin with a
    loop: ``ExtendNumLet*`` (words, numbers) and ``ZWJ*`` (emoji). When the scan from
    an ExtendNumLet (or a ZWJ) failed, it fails from every later one of the same run,
    which leads to the same next character: skip the run, so a long run costs its
    length once and not its square."""
    f = char_flags(ord(text[s]))
    i = s + 1
    n = len(text)
    if f & _ENL:
        # ExtendNumLet, and Extend/Format that are no ZWJ (no rule starts with those).
        while i < n and (g := char_flags(ord(text[i]))) & (_ENL | _EXT_NOT_ZWJ) and not g & _ZWJ_BIT:
            i += 1
    elif f & _ZWJ_BIT:
        while i < n and char_flags(ord(text[i])) & _ZWJ_BIT:
            i += 1
    return i


def lowercase(text: str) -> str:
    """Lucene's ``LowerCaseFilter``: each code point alone (Java ``Character.toLowerCase``)."""
    if text.isascii():
        return text.lower()
    return "".join(_lower_char(c) for c in text)


def _lower_char(c: str) -> str:
    low = c.lower()
    # Python applies SpecialCasing (İ -> i̇); Java's simple mapping gives one code point.
    return low if len(low) == 1 else "i" if c == "\u0130" else c


@lru_cache(maxsize=256)
def analyze(text: str) -> tuple[str, ...]:
    """The ``standard`` analyzer: the lower-cased tokens of ``text``."""
    return tuple(lowercase(t) for t in tokenize(text))


def normalize(text: str) -> str:
    """``Analyzer.normalize`` of the standard analyzer (used on the literal parts of
    prefix and wildcard terms): lower-cased, not tokenized."""
    return lowercase(text)


# Elastic's Windows package (packages/windows/data_stream/powershell*/manifest.yml)
# defines `powershell_script_analyzer` as `type: pattern, pattern: '[\W&&[^-]]+'`.
# Elasticsearch's pattern analyzer (analysis-common PatternAnalyzer) is a
# PatternTokenizer emitting the non-empty text between matches, then LowerCaseFilter
# (`lowercase` defaults to true) and no stop words. Java's \W without
# UNICODE_CHARACTER_CLASS is [^a-zA-Z_0-9], so a token is a run of ASCII letters,
# digits, `_` and `-`, and every other character (non-ASCII letters included) splits.
_POWERSHELL_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


@lru_cache(maxsize=256)
def analyze_powershell(text: str) -> tuple[str, ...]:
    """``powershell_script_analyzer``: lower-cased runs of ``[A-Za-z0-9_-]``."""
    return tuple(t.lower() for t in _POWERSHELL_TOKEN.findall(text))


# The analyzers a field's mapping may name, each with its `normalize` (the pattern
# analyzer's only multi-term-aware filter is LowerCaseFilter, as the standard one's).
ANALYZERS: dict[str, tuple[Callable[[str], tuple[str, ...]], Callable[[str], str]]] = {
    "standard": (analyze, normalize),
    "powershell_script": (analyze_powershell, lowercase),
}

# Fields whose mapping names an analyzer other than `standard`: the Windows
# package's fields.yml gives powershell.file.script_block_text
# `analyzer: powershell_script_analyzer` (powershell and powershell_operational).
FIELD_ANALYZERS: dict[str, str] = {
    "powershell.file.script_block_text": "powershell_script",
}


def field_analyzer(field: str) -> str:
    """The name of the analyzer a ``text`` field's mapping gives it."""
    return FIELD_ANALYZERS.get(field, "standard")


# --- the queries ----------------------------------------------------------------------------


def match(value: str, query: str, analyzer: str = "standard") -> bool:
    """``match`` with operator OR: a token of the query is a token of the value."""
    tokens_of = ANALYZERS[analyzer][0]
    terms = tokens_of(query)
    if not terms:
        return False
    tokens = tokens_of(value)
    if len(terms) == 1:
        return terms[0] in tokens
    have = set(tokens)
    return any(t in have for t in terms)


def match_phrase(value: str, query: str, analyzer: str = "standard") -> bool:
    """``match_phrase``: the query's tokens occur in a row among the value's tokens."""
    tokens_of = ANALYZERS[analyzer][0]
    terms = tokens_of(query)
    if not terms:
        return False
    tokens = tokens_of(value)
    k = len(terms)
    first = terms[0]
    for i in range(len(tokens) - k + 1):
        if tokens[i] == first and tokens[i : i + k] == terms:
            return True
    return False


def wildcard(value: str, parts: Sequence[str], analyzer: str = "standard") -> bool:
    """A KQL wildcard value (its literal ``parts`` between ``*``) as ``query_string``
    runs it on an analysed field: the normalized pattern matches one whole token."""
    tokens_of, norm = ANALYZERS[analyzer]
    pattern = [norm(p) for p in parts]
    return any(_glob(t, pattern) for t in tokens_of(value))


def _glob(token: str, parts: Sequence[str]) -> bool:
    """``parts[0]*parts[1]*...*parts[-1]`` matches the whole token (leftmost placement
    of each middle part is always right for a pattern with only ``*``)."""
    first, last = parts[0], parts[-1]
    if len(token) < len(first) + len(last) or not token.startswith(first) or not token.endswith(last):
        return False
    pos, stop = len(first), len(token) - len(last)
    for p in parts[1:-1]:
        i = token.find(p, pos, stop)
        if i < 0:
            return False
        pos = i + len(p)
    return True
