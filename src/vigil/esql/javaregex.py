"""Java regular expressions (REPLACE) run in linear time through RE2.

REPLACE compiles its pattern with ``java.util.regex.Pattern`` and replaces with
``Matcher.replaceAll`` (x-pack/plugin/esql/.../scalar/string/Replace.java): ``$1``
and ``${name}`` in the replacement insert groups, ``\\`` makes the next character
plain. RE2 reads the same syntax for everything the prebuilt rules write (classes,
``(?i)``, groups, repetitions); Java constructs with no linear-time form
(lookaround, backreferences, possessive and atomic groups) are refused with a clear
error rather than run by a backtracking engine.
"""

from __future__ import annotations

import re
from functools import lru_cache

import re2

from vigil.lucene.regexp import clean


class JavaRegexError(ValueError):
    pass


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_NAMED = re.compile(r"\(\?<([A-Za-z][A-Za-z0-9]*)>")
_REFUSED = (
    ("(?=", "lookahead"),
    ("(?!", "negative lookahead"),
    ("(?<=", "lookbehind"),
    ("(?<!", "negative lookbehind"),
    ("(?>", "atomic groups"),
)


# A possessive repetition of a class, and the character after it.
_POSSESSIVE = re.compile(r"(\\[dwsDWS]|\[(?:\\.|[^\]\\])+\])([*+?])\+(\\?.)?")


def _unpossess(pattern: str) -> str:
    """Possessive repetitions (``\\d++``) read as greedy ones where that changes nothing:
    when the character that must follow is one the repeated class cannot match, giving
    back a character never helps, so both forms match the same text."""

    def plain(m: re.Match) -> str:
        cls, q, nxt = m.group(1), m.group(2), m.group(3)
        if nxt is None or nxt == "\\" or (nxt.startswith("\\") and nxt[1:].isalnum()):
            raise JavaRegexError("possessive quantifiers have no linear-time form (RE2)")
        char = nxt[-1]
        if re.fullmatch(cls, char):
            raise JavaRegexError("possessive quantifiers have no linear-time form (RE2)")
        return cls + q + nxt

    out = _POSSESSIVE.sub(plain, pattern)
    if re.search(r"(?<!\\)[*+?}]\+", out.replace("\\\\", "")):
        raise JavaRegexError("possessive quantifiers have no linear-time form (RE2)")
    return out


# ``(?!a|b|...)[class]``: a negative lookahead of single characters before an ASCII class.
_LOOKAHEAD_CLASS = re.compile(
    r"\(\?!((?:\[(?:\\.|[^\]\\])+\]|\\[A-Za-z]|[^|()\\\[\]])(?:\|(?:\[(?:\\.|[^\]\\])+\]|\\[A-Za-z]|[^|()\\\[\]]))*)\)(\[[^\]^\\]*(?:\\.[^\]\\]*)*\])"
)


def _subtract_lookahead(pattern: str) -> str:
    """``(?!x|y)[class]`` written as the one class it means: the characters of ``[class]``
    that none of the single-character alternatives match. Only for a class of ASCII
    characters (so the set is written out exactly); anything else stays a lookahead."""

    def subtract(m: re.Match) -> str:
        alternatives, cls = m.group(1).split("|"), m.group(2)
        if any(ord(c) > 127 for c in cls):
            return m.group(0)
        keep = [
            chr(c)
            for c in range(128)
            if re.fullmatch(cls, chr(c)) and not any(re.fullmatch(a, chr(c)) for a in alternatives)
        ]
        if not keep:
            return "[^\\x00-\\x{10FFFF}]"
        return "[" + "".join(re.escape(c) if not c.isalnum() else c for c in keep) + "]"

    return _LOOKAHEAD_CLASS.sub(subtract, pattern)


class JavaRegex:
    def __init__(self, pattern: str) -> None:
        pattern = _subtract_lookahead(pattern)
        for token, what in _REFUSED:
            if token in pattern:
                raise JavaRegexError(f"{what} has no linear-time form (RE2)")
        if re.search(r"(?<!\\)(?:\\\\)*\\[1-9]", pattern):
            raise JavaRegexError("backreferences have no linear-time form (RE2)")
        pattern = _unpossess(pattern)
        self.names = _NAMED.findall(pattern)
        translated = _NAMED.sub(lambda m: f"(?P<{m.group(1)}>", pattern)
        try:
            self.rx = re2.compile(translated, _OPTIONS)
        except re2.error as exc:
            raise JavaRegexError(f"invalid pattern: {exc}") from None

    def replace_all(self, text: str, replacement: str) -> str:
        def expand(m) -> str:
            out = []
            i, n = 0, len(replacement)
            while i < n:
                c = replacement[i]
                if c == "\\":
                    if i + 1 >= n:
                        raise ValueError("character to be escaped is missing")
                    out.append(replacement[i + 1])
                    i += 2
                elif c == "$":
                    if replacement.startswith("${", i):
                        j = replacement.find("}", i)
                        if j < 0:
                            raise ValueError("named capturing group is missing trailing '}'")
                        out.append(m.group(replacement[i + 2 : j]) or "")
                        i = j + 1
                        continue
                    j = i + 1
                    if j >= n or not replacement[j].isdigit():
                        raise ValueError("Illegal group reference")
                    # Java reads as many digits as still name a group.
                    k = j + 1
                    while (
                        k < n and replacement[k].isdigit() and int(replacement[j : k + 1]) <= self.rx.groups
                    ):
                        k += 1
                    g = int(replacement[j:k])
                    if g > self.rx.groups:
                        raise IndexError(f"No group {g}")
                    out.append(m.group(g) or "")
                    i = k
                else:
                    out.append(c)
                    i += 1
            return "".join(out)

        try:
            return self.rx.sub(expand, text)
        except UnicodeEncodeError:
            return self.rx.sub(expand, clean(text))


@lru_cache(maxsize=1024)
def compile_java(pattern: str) -> JavaRegex:
    return JavaRegex(pattern)
