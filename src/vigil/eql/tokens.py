"""The EQL tokenizer: query text to a list of tokens with line and column.

The lexical rules follow Elasticsearch's ``EqlBase.g4`` grammar
(x-pack/plugin/eql/src/main/antlr/EqlBase.g4):

* keywords are lower case only (``AND: 'and'``; the grammar is case-sensitive,
  so ``AND`` is an identifier);
* ``IDENTIFIER: (LETTER | '_' | '@') (LETTER | DIGIT | '_')*`` ("make @timestamp
  not require escaping"); back-quoted identifiers (``ESCAPED_IDENTIFIER``), where a
  doubled quote does not end the name and is kept as written (ES's
  ``IdentifierBuilder.unquoteIdentifier`` only turns a backslash and a quote into
  a quote);
* strings: ``"..."`` with the escapes ``\\b \\t \\n \\f \\r \\" \\' \\\\`` and
  ``\\u{XX}`` (2 to 8 hex digits), other escapes kept as written; triple-quoted
  raw strings ``\"\"\"...\"\"\"``; single-quoted and ``?"..."``
  strings are recognised only to be rejected with a helpful message, as
  Elasticsearch's AbstractBuilder does;
* numbers: ``DIGIT+``, decimals (``1.``, ``.5``) and exponents (``1e3``);
* ``//`` line comments and ``/* */`` comments, which nest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vigil.eql.errors import EqlSyntaxError

KEYWORDS = frozenset(
    {
        "and",
        "any",
        "by",
        "false",
        "in",
        "join",
        "like",
        "maxspan",
        "not",
        "null",
        "of",
        "or",
        "regex",
        "sample",
        "sequence",
        "true",
        "until",
        "where",
        "with",
    }
)
# Keywords that take a ``~`` suffix for their case-insensitive form.
TILDE_KEYWORDS = frozenset({"in", "like", "regex"})

# Longest first so that ``==`` wins over ``=``.
OPERATORS = (
    "![",
    "!=",
    "==",
    "<=",
    ">=",
    "!:",
    ":",
    "=",
    "<",
    ">",
    "+",
    "-",
    "*",
    "/",
    "%",
    ".",
    ",",
    "[",
    "]",
    "(",
    ")",
    "|",
    "?",
)

_SPACE = re.compile(r"[ \t\r\n]+")
_WORD_TAIL = re.compile(r"[A-Za-z0-9_]*")
_PLAIN = re.compile(r'[^"\\\r\n]+')

# Operators by their first character, longest first.
_OPS_BY_FIRST: dict[str, tuple[str, ...]] = {}
for _op in OPERATORS:
    _OPS_BY_FIRST[_op[0]] = (*_OPS_BY_FIRST.get(_op[0], ()), _op)

ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "'": "'", "\\": "\\"}


@dataclass(frozen=True, slots=True)
class Token:
    """``kind`` is one of: ``keyword`` (value is the keyword, ``like~`` etc. included),
    ``ident``, ``tilde_ident`` (``name~`` of a function), ``quoted_ident``, ``string``,
    ``int``, ``float``, ``op`` (value is the operator text), ``eof``."""

    kind: str
    value: object
    line: int
    column: int
    text: str

    @property
    def loc(self) -> tuple[int, int]:
        return (self.line, self.column)


def _is_letter(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.col = 1

    def error(self, message: str, line: int | None = None, column: int | None = None) -> EqlSyntaxError:
        return EqlSyntaxError(message, line or self.line, column or self.col, self.text)

    def advance(self, n: int) -> str:
        chunk = self.text[self.pos : self.pos + n]
        newlines = chunk.count("\n")
        if newlines:
            self.line += newlines
            self.col = n - chunk.rfind("\n")
        else:
            self.col += n
        self.pos += n
        return chunk

    def peek(self, k: int = 0) -> str:
        i = self.pos + k
        return self.text[i] if i < len(self.text) else ""

    def skip_space_and_comments(self) -> None:
        t = self.text
        while self.pos < len(t):
            c = t[self.pos]
            if c in " \t\r\n":
                end = _SPACE.match(t, self.pos).end()
                self.advance(end - self.pos)
            elif t.startswith("//", self.pos):
                end = t.find("\n", self.pos)
                self.advance((len(t) if end < 0 else end) - self.pos)
            elif t.startswith("/*", self.pos):
                self.skip_block_comment()
            else:
                return

    def skip_block_comment(self) -> None:
        # BRACKETED_COMMENT is recursive in the grammar: comments nest.
        line, col = self.line, self.col
        depth = 0
        t = self.text
        while self.pos < len(t):
            if t.startswith("/*", self.pos):
                depth += 1
                self.advance(2)
            elif t.startswith("*/", self.pos):
                depth -= 1
                self.advance(2)
                if depth == 0:
                    return
            else:
                self.advance(1)
        raise self.error("unterminated comment: '/*' is never closed by '*/'", line, col)

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        end = (1, 1)
        while True:
            self.skip_space_and_comments()
            if self.pos >= len(self.text):
                # The end is placed right after the last token, so a caret lands on a visible line.
                out.append(Token("eof", None, end[0], end[1], ""))
                return out
            out.append(self.next_token())
            end = (self.line, self.col)

    def next_token(self) -> Token:
        c = self.peek()
        line, col, start = self.line, self.col, self.pos
        if _is_letter(c) or c in "_@":
            return self.word(line, col, start)
        if _is_digit(c) or (c == "." and _is_digit(self.peek(1))):
            return self.number(line, col, start)
        if c == '"':
            return self.string(line, col, start)
        if c == "'":
            raise self.error("single quotes are not allowed for strings; use double quotes")
        if c == "`":
            return self.quoted_ident(line, col, start)
        if c == "?" and self.peek(1) in "\"'":
            # ES's ?"..." raw strings were removed in favour of triple quotes.
            raise self.error(
                'the ?"..." string form is not supported; use triple double quotes """...""" instead'
            )
        for op in _OPS_BY_FIRST.get(c, ()):
            if self.text.startswith(op, self.pos):
                self.advance(len(op))
                return Token("op", op, line, col, op)
        raise self.error(f"unexpected character {c!r}")

    def word(self, line: int, col: int, start: int) -> Token:
        end = _WORD_TAIL.match(self.text, self.pos + 1).end()
        self.advance(end - self.pos)
        word = self.text[start : self.pos]
        if self.peek() == "~":
            if word in TILDE_KEYWORDS:
                self.advance(1)
                return Token("keyword", word + "~", line, col, word + "~")
            if word not in KEYWORDS:
                self.advance(1)
                return Token("tilde_ident", word, line, col, word + "~")
        if word in KEYWORDS:
            return Token("keyword", word, line, col, word)
        return Token("ident", word, line, col, word)

    def number(self, line: int, col: int, start: int) -> Token:
        is_float = False
        while _is_digit(self.peek()):
            self.advance(1)
        after_dot = self.peek(1)
        exponent_next = after_dot in ("e", "E") and self._exponent_at(2)
        if self.peek() == "." and (
            exponent_next or not (after_dot and (_is_letter(after_dot) or after_dot in "_@"))
        ):
            is_float = True
            self.advance(1)
            while _is_digit(self.peek()):
                self.advance(1)
        if self.peek() in ("e", "E") and self._exponent_at(1):
            is_float = True
            self.advance(2)
            while _is_digit(self.peek()):
                self.advance(1)
        text = self.text[start : self.pos]
        if is_float:
            return Token("float", float(text), line, col, text)
        return Token("int", int(text), line, col, text)

    def _exponent_at(self, k: int) -> bool:
        """Digits, optionally signed, start at offset ``k`` (after an ``e``)."""
        c = self.peek(k)
        return _is_digit(c) or (c != "" and c in "+-" and _is_digit(self.peek(k + 1)))

    def quoted_ident(self, line: int, col: int, start: int) -> Token:
        self.advance(1)
        parts: list[str] = []
        while True:
            ch = self.peek()
            if ch == "":
                raise self.error("unterminated back-quoted name: missing closing '`'", line, col)
            if ch == "`":
                if self.peek(1) == "`":
                    parts.append("``")
                    self.advance(2)
                    continue
                self.advance(1)
                break
            parts.append(ch)
            self.advance(1)
        # As ES's IdentifierBuilder.unquoteIdentifier: the quotes go, "\`" becomes "`",
        # and a doubled "``" (which the grammar lets through) stays as written.
        name = "".join(parts).replace("\\`", "`")
        if not name:
            raise self.error("empty back-quoted name", line, col)
        return Token("quoted_ident", name, line, col, self.text[start : self.pos])

    def string(self, line: int, col: int, start: int) -> Token:
        if self.text.startswith('"""', self.pos):
            return self.raw_string(line, col, start)
        self.advance(1)
        parts: list[str] = []
        while True:
            ch = self.peek()
            if ch == "" or ch in "\r\n":
                raise self.error("unterminated string: missing closing '\"'", line, col)
            if ch == '"':
                self.advance(1)
                break
            if ch == "\\":
                parts.append(self.escape())
                continue
            end = _PLAIN.match(self.text, self.pos).end()
            parts.append(self.advance(end - self.pos))
        return Token("string", "".join(parts), line, col, self.text[start : self.pos])

    def escape(self) -> str:
        # As Elasticsearch's AbstractBuilder.unquoteString: known escapes are decoded,
        # \\u{XX} takes 2 to 8 hex digits, and an unknown escape such as \\w passes
        # through as written (it is often meant for a regex).
        line, col = self.line, self.col
        nxt = self.peek(1)
        if nxt == "":
            raise self.error("unterminated string: missing closing '\"'", line, col)
        if nxt in ESCAPES:
            self.advance(2)
            return ESCAPES[nxt]
        if nxt == "u" and self.peek(2) == "{":
            end = self.text.find("}", self.pos + 3)
            newline = min(
                (i for i in (self.text.find("\n", self.pos), self.text.find('"', self.pos + 3)) if i >= 0),
                default=-1,
            )
            if end < 0 or (0 <= newline < end):
                raise self.error("unicode escape \\u{ is not closed by '}'", line, col)
            digits = self.text[self.pos + 3 : end]
            if not 2 <= len(digits) <= 8:
                raise self.error(
                    f"unicode sequence should use [2-8] hex digits, [\\u{{{digits}}}] has [{len(digits)}]",
                    line,
                    col,
                )
            if any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.error(f"invalid unicode character code [{digits}]", line, col)
            code = int(digits, 16)
            if 0xD800 <= code <= 0xDFFF:
                raise self.error(f"invalid unicode character code, [{digits}] is a surrogate code", line, col)
            if code > 0x10FFFF:
                raise self.error(f"invalid unicode character code [{digits}]", line, col)
            self.advance(end + 1 - self.pos)
            return chr(code)
        self.advance(2)
        return "\\" + nxt

    def raw_string(self, line: int, col: int, start: int) -> Token:
        # '"""' .*? '"""' '"'? '"'? : up to two quotes right before the close belong to the value.
        end = self.text.find('"""', self.pos + 3)
        if end < 0:
            raise self.error('unterminated string: missing closing \'"""\'', line, col)
        extra = 0
        while extra < 2 and self.text.startswith('"', end + 3 + extra):
            extra += 1
        end += extra
        value = self.text[self.pos + 3 : end]
        self.advance(end + 3 - self.pos)
        return Token("string", value, line, col, self.text[start : self.pos])


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``eof`` token; raises :class:`EqlSyntaxError`."""
    return _Lexer(text).tokens()
