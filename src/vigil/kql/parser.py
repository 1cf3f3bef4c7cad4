"""KQL text into a :mod:`vigil.kql.tree`, following Kibana's grammar
(``packages/kbn-es-query/src/kuery/grammar/grammar.peggy``):

- ``or`` binds looser than ``and``; both need whitespace on either side and are
  case-insensitive; ``not`` is a prefix that needs whitespace after it and
  applies to one parenthesised query, nested query or expression.
- ``field: value``, ``field: (v1 or v2 and not v3)``, ``field < value`` (also
  ``<=``, ``>``, ``>=``), ``field: { query }``; a field is itself a literal.
- An unquoted literal runs up to a special character (``\\ ( ) : < > " * { }``,
  ``*`` being the wildcard) or a keyword (``or``/``and`` between whitespace,
  ``not`` followed by whitespace: so ``cannot be`` stops before ``not``), may hold
  spaces, and is trimmed. Escapes: ``\\t \\r \\n``, ``\\uXXXX``, a backslash
  before a special character, and ``\\or``, ``\\and``, ``\\not``; any other
  backslash ends the literal. The bare words ``true``, ``false`` and ``null``
  are constants.
- A quoted string has no wildcard; ``\\"`` and ``\\\\`` are its escapes, with
  ``\\t \\r \\n \\uXXXX``; any other backslash is kept as written.
"""

from __future__ import annotations

from bisect import bisect_right

from vigil.kql import tree as T
from vigil.kql.errors import KqlSyntaxError

# Parentheses and nested queries deeper than this are a syntax error, not a crash of
# Python's stack (Kibana's parser is bounded by JavaScript's stack the same way).
MAX_NESTING = 64

_SPACE = " \t\r\n\u00a0"
_SPECIAL = '\\():<>"*{}'
_HEX = "0123456789abcdefABCDEF"
# What JavaScript's String.prototype.trim removes (Kibana trims unquoted literals).
_JS_TRIM = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_WILDCARD = object()
_ESCAPED_WS = {"t": "\t", "r": "\r", "n": "\n"}


def parse(text: str) -> T.Node:
    """Parse KQL text; raises :class:`KqlSyntaxError` with the line and column.
    Time is linear in the text's length."""
    parser = _Parser(text)
    try:
        return parser.query()
    except RecursionError:  # a caller already deep in its stack: still an error, not a crash
        raise parser.error("query nested too deeply", 0) from None


class _Parser:
    def __init__(self, text: str):
        self.t = text
        self.n = len(text)
        self.i = 0
        self.depth = 0
        self._line_starts: list[int] | None = None

    # --- helpers --------------------------------------------------------------------

    def loc(self, offset: int) -> T.Loc:
        # Line starts found once: a location costs a bisection, not a scan of the text.
        if self._line_starts is None:
            self._line_starts = [0] + [k + 1 for k, c in enumerate(self.t) if c == "\n"]
        line = bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def error(self, message: str, offset: int | None = None) -> KqlSyntaxError:
        line, col = self.loc(self.i if offset is None else offset)
        return KqlSyntaxError(message, line, col, self.t)

    def found(self) -> str:
        return f"{self.t[self.i]!r}" if self.i < self.n else "end of query"

    def peek(self) -> str:
        return self.t[self.i] if self.i < self.n else ""

    def spaces(self) -> None:
        while self.i < self.n and self.t[self.i] in _SPACE:
            self.i += 1

    def _spaces_at(self, j: int) -> int:
        while j < self.n and self.t[j] in _SPACE:
            j += 1
        return j

    def _word_at(self, j: int, word: str) -> bool:
        return self.t[j : j + len(word)].lower() == word

    def binary_keyword_end(self, j: int, word: str) -> int | None:
        """End of ``Space+ word Space+`` at ``j`` (Kibana's ``Or`` / ``And``), or None."""
        k = self._spaces_at(j)
        if k == j or not self._word_at(k, word):
            return None
        m = self._spaces_at(k + len(word))
        return m if m > k + len(word) else None

    def not_keyword_end(self, j: int) -> int | None:
        """End of ``not Space+`` at ``j`` (Kibana's ``Not``), or None."""
        if not self._word_at(j, "not"):
            return None
        m = self._spaces_at(j + 3)
        return m if m > j + 3 else None

    def keyword_at(self, j: int) -> bool:
        return (
            self.binary_keyword_end(j, "or") is not None
            or self.binary_keyword_end(j, "and") is not None
            or self.not_keyword_end(j) is not None
        )

    def expect(self, ch: str, what: str) -> None:
        if self.peek() != ch:
            raise self.error(f"expected {what} but found {self.found()}")
        self.i += 1

    # --- queries ---------------------------------------------------------------------

    def query(self) -> T.Node:
        self.spaces()
        if self.i >= self.n:
            return T.MatchAll(loc=(1, 1))
        q = self.or_query()
        self.spaces()
        if self.i < self.n:
            raise self.error(f"expected 'and', 'or' or the end of the query but found {self.found()}")
        return q

    def _joined(self, word: str, item, build):
        start = self.i
        terms = [item()]
        while (end := self.binary_keyword_end(self.i, word)) is not None:
            self.i = end
            terms.append(item())
        return terms[0] if len(terms) == 1 else build(tuple(terms), loc=self.loc(start))

    def or_query(self) -> T.Node:
        return self._joined("or", self.and_query, T.Or)

    def and_query(self) -> T.Node:
        return self._joined("and", self.not_query, T.And)

    def not_query(self) -> T.Node:
        start = self.i
        end = self.not_keyword_end(self.i)
        if end is not None:
            self.i = end
            return T.Not(self.sub_query(), loc=self.loc(start))
        return self.sub_query()

    def sub_query(self) -> T.Node:
        if self.peek() == "(":
            return self.enclosed(self.or_query, ")")
        return self.expression()

    def enclosed(self, inner, close: str) -> T.Node:
        """``inner`` between the opening character at the cursor and ``close``."""
        if self.depth >= MAX_NESTING:
            raise self.error(f"query nested deeper than {MAX_NESTING} levels")
        self.depth += 1
        self.i += 1
        self.spaces()
        q = inner()
        self.spaces()
        self.expect(close, f"'{close}'")
        self.depth -= 1
        return q

    def expression(self) -> T.Node:
        start = self.i
        first = self.literal("a field name, a value or '('")
        after = self.i
        self.spaces()
        ch = self.peek()
        if ch == ":":
            self.i += 1
            self.spaces()
            if self.peek() == "{":
                return T.Nested(first, self.enclosed(self.or_query, "}"), loc=self.loc(start))
            return self.values(first)
        if ch in ("<", ">"):
            self.i += 1
            op = ch
            if self.peek() == "=":
                self.i += 1
                op += "="
            self.spaces()
            value = self.literal("a value")
            return T.Range(first, op, value, loc=self.loc(start))  # type: ignore[arg-type]
        self.i = after
        return T.Is(None, first, loc=self.loc(start))

    # --- value lists -------------------------------------------------------------------

    def values(self, fld: T.Value) -> T.Node:
        if self.peek() == "(":
            return self.enclosed(lambda: self.or_values(fld), ")")
        start = self.i
        return T.Is(fld, self.literal("a value"), loc=self.loc(start))

    def or_values(self, fld: T.Value) -> T.Node:
        return self._joined("or", lambda: self.and_values(fld), T.Or)

    def and_values(self, fld: T.Value) -> T.Node:
        return self._joined("and", lambda: self.not_values(fld), T.And)

    def not_values(self, fld: T.Value) -> T.Node:
        start = self.i
        end = self.not_keyword_end(self.i)
        if end is not None:
            self.i = end
            return T.Not(self.values(fld), loc=self.loc(start))
        return self.values(fld)

    # --- literals ----------------------------------------------------------------------

    def literal(self, what: str) -> T.Value:
        if self.peek() == '"':
            return self.quoted()
        return self.unquoted(what)

    def _unicode_escape(self, j: int) -> str | None:
        """The character of ``uXXXX`` at ``j`` (after a backslash), or None."""
        digits = self.t[j + 1 : j + 5]
        if self.t[j : j + 1] == "u" and len(digits) == 4 and all(c in _HEX for c in digits):
            return chr(int(digits, 16))
        return None

    def quoted(self) -> T.Value:
        start = self.i
        self.i += 1
        out: list[str] = []
        while True:
            if self.i >= self.n:
                raise self.error("unterminated quoted string", start)
            ch = self.t[self.i]
            if ch == '"':
                self.i += 1
                return T.Value(("".join(out),), quoted=True, loc=self.loc(start))
            if ch == "\\" and self.i + 1 < self.n:
                nxt = self.t[self.i + 1]
                if nxt in _ESCAPED_WS:
                    out.append(_ESCAPED_WS[nxt])
                    self.i += 2
                    continue
                uni = self._unicode_escape(self.i + 1)
                if uni is not None:
                    out.append(uni)
                    self.i += 6
                    continue
                if nxt in '\\"':
                    out.append(nxt)
                    self.i += 2
                    continue
            out.append(ch)
            self.i += 1

    def unquoted(self, what: str) -> T.Value:
        start = self.i
        chars: list = []
        while self.i < self.n:
            ch = self.t[self.i]
            if ch == "\\":
                got = self.escape()
                if got is None:
                    break
                chars.extend(got)
                continue
            if ch == "*":
                chars.append(_WILDCARD)
                self.i += 1
                continue
            if ch in _SPECIAL or self.keyword_at(self.i):
                break
            if ch in _SPACE:
                # Every space of a run sees the same keyword after it, or none: the run
                # is taken at once, so a long run costs linear time.
                end = self._spaces_at(self.i)
                chars.extend(self.t[self.i : end])
                self.i = end
                continue
            chars.append(ch)
            self.i += 1
        first, last = 0, len(chars)
        while first < last and chars[first] is not _WILDCARD and chars[first] in _JS_TRIM:
            first += 1
        while last > first and chars[last - 1] is not _WILDCARD and chars[last - 1] in _JS_TRIM:
            last -= 1
        chars = chars[first:last]
        if not chars:
            self.i = start
            raise self.error(f"expected {what} but found {self.found()}")
        parts: list[str] = []
        run: list[str] = []
        for c in chars:
            if c is _WILDCARD:
                parts.append("".join(run))
                run = []
            else:
                run.append(c)
        parts.append("".join(run))
        constant: object = ...
        if len(parts) == 1:
            constant = {"true": True, "false": False, "null": None}.get(parts[0], ...)
        return T.Value(tuple(parts), constant=constant, loc=self.loc(start))

    def escape(self) -> str | None:
        """An escape sequence of an unquoted literal at a backslash; None when the
        backslash starts none (it then ends the literal)."""
        j = self.i + 1
        nxt = self.t[j : j + 1]
        if nxt in _ESCAPED_WS and nxt:
            self.i += 2
            return _ESCAPED_WS[nxt]
        if nxt and nxt in _SPECIAL:
            self.i += 2
            return nxt
        uni = self._unicode_escape(j)
        if uni is not None:
            self.i += 6
            return uni
        for word in ("or", "and", "not"):
            if self._word_at(j, word):
                self.i = j + len(word)
                return self.t[j : j + len(word)]
        return None
