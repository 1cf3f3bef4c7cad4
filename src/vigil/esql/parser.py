"""A hand-written parser of ES|QL, following Elasticsearch's ANTLR grammar.

The reference is x-pack/plugin/esql/src/main/antlr in Elasticsearch: the lexer
(``EsqlBaseLexer.g4`` and ``lexer/*.g4``: case-insensitive keywords, ``"..."``
strings with the escapes ``\\t \\n \\r \\" \\\\``, triple-quoted raw strings,
backquoted identifiers, ``//`` and ``/* */`` comments) and the parser
(``EsqlBaseParser.g4``, ``parser/Expression.g4``). Operator precedence is the
grammar's: ``NOT`` binds tighter than ``AND``, which binds tighter than ``OR``; one
comparison per value expression; ``* / %`` before ``+ -``; ``::`` casts last.

The lexer has the grammar's modes where the parser asks for them: index patterns
after FROM (``logs-*``, ``.alerts-security.*``), name patterns after KEEP/DROP
(``Esql.*``), everything else in expression mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.esql import tree as T
from vigil.esql.errors import EsqlSyntaxError

KEYWORDS = frozenset("and or not in is like rlike null true false by asc desc nulls first last".split())
# Time-span units (EsqlDataTypeConverter.parseTemporalAmount, which takes ``m`` for
# minutes in current Elasticsearch): name -> canonical unit.
SPAN_UNITS = {
    **dict.fromkeys(("millisecond", "milliseconds", "ms"), "millisecond"),
    **dict.fromkeys(("second", "seconds", "sec", "s"), "second"),
    **dict.fromkeys(("minute", "minutes", "min", "m"), "minute"),
    **dict.fromkeys(("hour", "hours", "h"), "hour"),
    **dict.fromkeys(("day", "days", "d"), "day"),
    **dict.fromkeys(("week", "weeks", "w"), "week"),
    **dict.fromkeys(("month", "months", "mo"), "month"),
    **dict.fromkeys(("quarter", "quarters", "q"), "quarter"),
    **dict.fromkeys(("year", "years", "yr", "y"), "year"),
}
# Deepest nesting of parentheses, NOT and signs: deeper text is refused, never a crash.
MAX_DEPTH = 50
_OPERATORS = ("==", "!=", "=~", "<=", ">=", "::", "<", ">", "=", ":", ",", ".", "+", "-", "*", "/", "%")
_OPERATORS += ("(", ")", "[", "]", "{", "}", "|", "?")
# The operators by their first character, in the order above (longest first).
_OPERATORS_AT: dict[str, tuple[str, ...]] = {}
for _op in _OPERATORS:
    _OPERATORS_AT[_op[0]] = (*_OPERATORS_AT.get(_op[0], ()), _op)
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}
_ID_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ID_BODY = _ID_START | frozenset("0123456789_")
_DIGITS = frozenset("0123456789")
# Characters an unquoted index pattern stops at (lexer/From.g4 UNQUOTED_SOURCE_PART).
_SOURCE_STOP = frozenset(' \t\r\n|,"=[]():')
_PATTERN_CHARS = _ID_BODY | frozenset("@*.")


@dataclass(slots=True)
class Token:
    kind: str  # "id", "qid" (backquoted), "kw", "str", "int", "dec", "op", "eof", "src", "pat"
    text: str  # the value (keyword lower-cased, string unescaped)
    start: int
    end: int


def parse(text: str) -> T.Query:
    """Parse an ES|QL query; raises :class:`EsqlSyntaxError` with a line and column."""
    if not isinstance(text, str):
        raise EsqlSyntaxError("the query must be text", 1, 1, "")
    return _Parser(text).query()


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str, pos: int) -> EsqlSyntaxError:
        line = self.text.count("\n", 0, pos) + 1
        column = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return EsqlSyntaxError(message, line, column, self.text)

    def skip(self) -> None:
        text, n = self.text, len(self.text)
        i = self.pos
        while i < n:
            c = text[i]
            if c in " \t\r\n":
                i += 1
            elif text.startswith("//", i):
                j = text.find("\n", i)
                i = n if j < 0 else j + 1
            elif text.startswith("/*", i):
                j = text.find("*/", i + 2)
                if j < 0:
                    raise self.error("unterminated comment", i)
                i = j + 2
            else:
                break
        self.pos = i

    def next(self) -> Token:
        self.skip()
        text, i = self.text, self.pos
        if i >= len(text):
            return Token("eof", "", i, i)
        c = text[i]
        if c == '"':
            return self._string(i)
        if c == "`":
            return self._quoted_id(i)
        if c in _DIGITS or (c == "." and i + 1 < len(text) and text[i + 1] in _DIGITS):
            return self._number(i)
        if c in _ID_START or (c in "_@" and i + 1 < len(text) and text[i + 1] in _ID_BODY):
            j = i + 1
            while j < len(text) and text[j] in _ID_BODY:
                j += 1
            word = text[i:j]
            self.pos = j
            low = word.lower()
            if low in KEYWORDS:
                return Token("kw", low, i, j)
            return Token("id", word, i, j)
        for op in _OPERATORS_AT.get(c, ()):
            if text.startswith(op, i):
                self.pos = i + len(op)
                return Token("op", op, i, self.pos)
        raise self.error(f"token recognition error at: {_show(c)}", i)

    def _string(self, i: int) -> Token:
        text = self.text
        if text.startswith('"""', i):
            j = text.find('"""', i + 3)
            if j < 0:
                raise self.error("unterminated string", i)
            end = j + 3
            # '"""' (~[\r\n])*? '"""' '"'? '"'?: up to two more quotes belong to the value.
            extra = 0
            while extra < 2 and end < len(text) and text[end] == '"':
                end += 1
                extra += 1
            self.pos = end
            return Token("str", text[i + 3 : j] + '"' * extra, i, end)
        out = []
        j = i + 1
        while True:
            if j >= len(text) or text[j] in "\r\n":
                raise self.error("unterminated string", i)
            c = text[j]
            if c == '"':
                break
            if c == "\\":
                nxt = text[j + 1] if j + 1 < len(text) else ""
                if nxt not in _ESCAPES:
                    raise self.error(f"token recognition error at: {_show(text[i : j + 2])}", i)
                out.append(_ESCAPES[nxt])
                j += 2
                continue
            out.append(c)
            j += 1
        self.pos = j + 1
        return Token("str", "".join(out), i, j + 1)

    def _quoted_id(self, i: int) -> Token:
        text = self.text
        out = []
        j = i + 1
        while True:
            k = text.find("`", j)
            if k < 0:
                raise self.error("unterminated quoted identifier", i)
            out.append(text[j:k])
            if text.startswith("``", k):
                out.append("`")
                j = k + 2
                continue
            break
        name = "".join(out)
        if not name:
            raise self.error("empty quoted identifier", i)
        self.pos = k + 1
        return Token("qid", name, i, k + 1)

    def _number(self, i: int) -> Token:
        text, n = self.text, len(self.text)
        j = i
        while j < n and text[j] in _DIGITS:
            j += 1
        kind = "int"
        if j < n and text[j] == "." and not (j + 1 < n and text[j + 1] in _ID_START):
            kind = "dec"
            j += 1
            while j < n and text[j] in _DIGITS:
                j += 1
        if j < n and text[j] in "eE":
            k = j + 1
            if k < n and text[k] in "+-":
                k += 1
            if k < n and text[k] in _DIGITS:
                while k < n and text[k] in _DIGITS:
                    k += 1
                kind, j = "dec", k
        self.pos = j
        return Token(kind, text[i:j], i, j)

    def source(self) -> Token:
        """An index pattern (lexer/From.g4): a quoted string or a run of other characters."""
        self.skip()
        i = self.pos
        if i < len(self.text) and self.text[i] == '"':
            return self._string(i)
        j = i
        while j < len(self.text) and self.text[j] not in _SOURCE_STOP:
            if self.text.startswith("//", j) or self.text.startswith("/*", j):
                break
            j += 1
        self.pos = j
        if j == i:
            return self.next()
        return Token("src", self.text[i:j], i, j)

    def name_pattern(self) -> Token:
        """A column name pattern (lexer/Project.g4 ID_PATTERN): letters, digits, ``_ @ * .``
        and backquoted parts."""
        self.skip()
        i = j = self.pos
        out = []
        while j < len(self.text):
            c = self.text[j]
            if c == "`":
                self.pos = j
                tok = self._quoted_id(j)
                out.append(tok.text)
                j = self.pos
            elif c in _PATTERN_CHARS:
                out.append(c)
                j += 1
            else:
                break
        self.pos = j
        if j == i:
            return self.next()
        return Token("pat", "".join(out), i, j)


_COMMANDS = {
    "where",
    "eval",
    "stats",
    "inlinestats",
    "inline",
    "keep",
    "drop",
    "rename",
    "sort",
    "limit",
    "dissect",
    "grok",
    "mv_expand",
    "completion",
}
# Commands of the grammar Vigil parses no further than their name.
_UNSUPPORTED_COMMANDS = {
    "enrich",
    "lookup",
    "fork",
    "sample",
    "change_point",
    "rerank",
    "fuse",
    "insist_🐔",
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.lex = _Lexer(text)
        self._prev_end = 0
        self._depth = 0
        self.tok = self.lex.next()

    # --- tokens ----------------------------------------------------------------------

    def advance(self) -> Token:
        tok = self.tok
        self.tok = self.lex.next()
        return tok

    def relex(self, how) -> Token:
        """Read the current token again in another lexer mode."""
        self.lex.pos = self.tok.start
        tok = how()
        self.tok = self.lex.next()
        return tok

    def loc(self, pos: int | None = None) -> T.Loc:
        pos = self.tok.start if pos is None else pos
        line = self.text.count("\n", 0, pos) + 1
        return line, pos - (self.text.rfind("\n", 0, pos) + 1) + 1

    def error(self, message: str, tok: Token | None = None) -> EsqlSyntaxError:
        tok = tok or self.tok
        line, column = self.loc(tok.start)
        return EsqlSyntaxError(message, line, column, self.text)

    def unexpected(self, expecting: str) -> EsqlSyntaxError:
        found = "end of query" if self.tok.kind == "eof" else repr(self._tok_text(self.tok))
        return self.error(f"mismatched input {_show(found)} expecting {expecting}")

    def _tok_text(self, tok: Token) -> str:
        return self.text[tok.start : tok.end]

    def at(self, kind: str, text: str | None = None) -> bool:
        return self.tok.kind == kind and (text is None or self.tok.text == text)

    def at_op(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def at_kw(self, text: str) -> bool:
        return self.tok.kind == "kw" and self.tok.text == text

    def expect_op(self, text: str) -> Token:
        if not self.at_op(text):
            raise self.unexpected(repr(text))
        return self.advance()

    def expect_kw(self, text: str) -> Token:
        if not self.at_kw(text):
            raise self.unexpected(text.upper())
        return self.advance()

    def word(self) -> str | None:
        """The current token as a lower-case command word, if it is one."""
        return self.tok.text.lower() if self.tok.kind in ("id", "kw") else None

    # --- query -------------------------------------------------------------------------

    def query(self) -> T.Query:
        source = self.source_command()
        commands = []
        while self.at_op("|"):
            self.advance()
            commands.append(self.processing_command())
        if self.tok.kind != "eof":
            raise self.unexpected("'|' or end of query")
        return T.Query(source, tuple(commands), self.text)

    def source_command(self) -> T.From | T.Row:
        word = self.word()
        loc = self.loc()
        if word == "from":
            self.advance()
            return self.from_command(loc)
        if word == "row":
            self.advance()
            return T.Row(self.fields(), loc)
        raise self.unexpected("FROM or ROW")

    def from_command(self, loc: T.Loc) -> T.From:
        indices = [self.index_pattern()]
        while self.at_op(","):
            self.advance()
            indices.append(self.index_pattern())
        metadata: list[str] = []
        if self.tok.kind == "id" and self.tok.text.lower() == "metadata":
            self.advance()
            metadata.append(self.metadata_name())
            while self.at_op(","):
                self.advance()
                metadata.append(self.metadata_name())
        return T.From(tuple(indices), tuple(metadata), loc)

    def index_pattern(self) -> str:
        tok = self.relex(self.lex.source)
        if tok.kind not in ("src", "str"):
            raise self.error(
                f"mismatched input {_show(repr(self._tok_text(tok)))} expecting an index pattern", tok
            )
        if tok.kind == "src" and tok.text.lower() == "metadata":
            raise self.error("an index pattern is missing before METADATA", tok)
        return tok.text

    def metadata_name(self) -> str:
        tok = self.relex(self.lex.source)
        if tok.kind != "src":
            raise self.error("expecting a metadata field name", tok)
        return tok.text

    def processing_command(self) -> T.Command:
        word = self.word()
        loc = self.loc()
        tok = self.tok
        if word is None or (word not in _COMMANDS):
            if word in _UNSUPPORTED_COMMANDS or (word and word.startswith("lookup")):
                raise self.error(f"the {word.upper()} command is not supported")
            raise self.unexpected("a processing command (WHERE, EVAL, STATS, KEEP, ...)")
        self.advance()
        if word == "where":
            return T.Where(self.boolean(), loc)
        if word == "eval":
            return T.Eval(self.fields(), loc)
        if word == "stats":
            return self.stats(loc, inline=False)
        if word in ("inline", "inlinestats"):
            if word == "inline":
                if self.word() != "stats":
                    raise self.error("expecting STATS after INLINE", tok)
                self.advance()
            return self.stats(loc, inline=True)
        if word in ("keep", "drop"):
            patterns = [self.name_pattern()]
            while self.at_op(","):
                self.advance()
                patterns.append(self.name_pattern())
            return (T.Keep if word == "keep" else T.Drop)(tuple(patterns), loc)
        if word == "rename":
            return self.rename(loc)
        if word == "sort":
            orders = [self.order()]
            while self.at_op(","):
                self.advance()
                orders.append(self.order())
            return T.Sort(tuple(orders), loc)
        if word == "limit":
            if not self.at("int"):
                raise self.unexpected("an integer")
            return T.Limit(int(self.advance().text), loc)
        if word == "dissect":
            return self.dissect(loc)
        if word == "grok":
            source = self.postfix()
            patterns = [self.string()]
            while self.at_op(","):
                self.advance()
                patterns.append(self.string())
            return T.Grok(source, tuple(patterns), loc)
        if word == "mv_expand":
            return T.MvExpand(self.qualified_name(), loc)
        return self.completion(loc)

    def stats(self, loc: T.Loc, *, inline: bool) -> T.Stats:
        aggs: list[T.Assign] = []
        if not self.at_kw("by") and not self.at_op("|") and self.tok.kind != "eof":
            aggs.append(self.field(allow_where=True))
            while self.at_op(","):
                self.advance()
                aggs.append(self.field(allow_where=True))
        groups: list[T.Assign] = []
        if self.at_kw("by"):
            self.advance()
            groups = [self.field()]
            while self.at_op(","):
                self.advance()
                groups.append(self.field())
        if not aggs and not groups:
            raise self.unexpected("an aggregation or BY")
        return T.Stats(tuple(aggs), tuple(groups), inline, loc)

    def rename(self, loc: T.Loc) -> T.Rename:
        pairs = []
        while True:
            first = self.name_pattern()
            if self.tok.kind == "id" and self.tok.text.lower() == "as":
                self.advance()
                pairs.append((first, self.name_pattern()))
            elif self.at_op("="):
                self.advance()
                pairs.append((self.name_pattern(), first))
            else:
                raise self.unexpected("AS or '='")
            if not self.at_op(","):
                return T.Rename(tuple(pairs), loc)
            self.advance()

    def order(self) -> T.Order:
        expr = self.boolean()
        desc = False
        if self.at_kw("asc") or self.at_kw("desc"):
            desc = self.advance().text == "desc"
        nulls_first = None
        if self.at_kw("nulls"):
            self.advance()
            if not (self.at_kw("first") or self.at_kw("last")):
                raise self.unexpected("FIRST or LAST")
            nulls_first = self.advance().text == "first"
        return T.Order(expr, desc, nulls_first)

    def dissect(self, loc: T.Loc) -> T.Dissect:
        source = self.postfix()
        pattern = self.string()
        sep = ""
        while self.tok.kind == "id":
            name_tok = self.advance()
            if name_tok.text.lower() != "append_separator":
                raise self.error(f"Invalid option for dissect: [{_show(name_tok.text)}]", name_tok)
            self.expect_op("=")
            if not self.at("str"):
                raise self.unexpected("a string")
            sep = self.advance().text
            if not self.at_op(","):
                break
            self.advance()
        return T.Dissect(source, pattern, sep, loc)

    def completion(self, loc: T.Loc) -> T.Completion:
        target = "completion"
        start = (self.lex.pos, self.tok)
        if self.tok.kind in ("id", "qid"):
            name = self.qualified_name()
            if self.at_op("="):
                self.advance()
                target = name
            else:
                self.lex.pos, self.tok = start
        prompt = self.postfix()
        options: tuple = ()
        if self.tok.kind == "id" and self.tok.text.lower() == "with":
            self.advance()
            if self.at_op("{"):
                options = self.map_expression()
            else:
                options = (("inference_id", self.qualified_name()),)
        return T.Completion(target, prompt, options, loc)

    # --- names -------------------------------------------------------------------------

    def identifier(self) -> str:
        if self.tok.kind in ("id", "qid"):
            return self.advance().text
        raise self.unexpected("an identifier")

    def qualified_name(self) -> str:
        parts = [self.identifier()]
        while self.at_op(".") and self.lex.text[self.tok.end : self.tok.end + 1] not in ("", " "):
            self.advance()
            if self.tok.kind == "kw":
                # a keyword after a dot is a name part (``event.first``) only when backquoted
                raise self.unexpected("an identifier")
            parts.append(self.identifier())
        return ".".join(parts)

    def name_pattern(self) -> str:
        tok = self.relex(self.lex.name_pattern)
        if tok.kind != "pat":
            raise self.error(
                f"mismatched input {_show(repr(self._tok_text(tok)))} expecting a column name", tok
            )
        return tok.text

    def string(self) -> str:
        if not self.at("str"):
            raise self.unexpected("a string")
        return self.advance().text

    # --- fields and expressions --------------------------------------------------------

    def fields(self) -> tuple[T.Assign, ...]:
        out = [self.field()]
        while self.at_op(","):
            self.advance()
            out.append(self.field())
        return tuple(out)

    def field(self, allow_where: bool = False) -> T.Assign:
        start = self.tok.start
        loc = self.loc()
        if self.tok.kind in ("id", "qid"):
            saved = (self.lex.pos, self.tok)
            name = self.qualified_name()
            if self.at_op("="):
                self.advance()
                expr = self.boolean()
                return T.Assign(name, expr, self._where(allow_where), loc)
            self.lex.pos, self.tok = saved
        expr = self.boolean()
        # An unnamed field is named by its text, as Elasticsearch names it.
        name = self.text[start : self._last_end].strip()
        if isinstance(expr, T.Column):
            name = expr.name
        return T.Assign(name, expr, self._where(allow_where), loc)

    def _where(self, allow: bool) -> T.Expr | None:
        if allow and self.word() == "where" and self.tok.kind == "id":
            self.advance()
            return self.boolean()
        return None

    @property
    def _last_end(self) -> int:
        return self._prev_end

    def _deeper(self) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self.error(f"the query nests more than {MAX_DEPTH} levels deep")

    def boolean(self) -> T.Expr:
        self._deeper()
        left = self.conjunction()
        while self.at_kw("or"):
            loc = self.loc()
            self.advance()
            left = T.Binary("or", left, self.conjunction(), loc)
        self._depth -= 1
        return left

    def conjunction(self) -> T.Expr:
        left = self.negation()
        while self.at_kw("and"):
            loc = self.loc()
            self.advance()
            left = T.Binary("and", left, self.negation(), loc)
        return left

    def negation(self) -> T.Expr:
        if self.at_kw("not"):
            loc = self.loc()
            self.advance()
            self._deeper()
            operand = self.negation()
            self._depth -= 1
            return T.Unary("not", operand, loc)
        return self.predicate()

    def predicate(self) -> T.Expr:
        loc = self.loc()
        value = self.value_expression()
        negated = False
        if self.at_kw("not"):
            self.advance()
            negated = True
            if not (self.at_kw("in") or self.at_kw("like") or self.at_kw("rlike")):
                raise self.unexpected("IN, LIKE or RLIKE")
        if self.at_kw("in"):
            self.advance()
            self.expect_op("(")
            items = [self.value_expression()]
            while self.at_op(","):
                self.advance()
                items.append(self.value_expression())
            self._close()
            return T.In(value, tuple(items), negated, loc)
        if self.at_kw("like") or self.at_kw("rlike"):
            regex = self.advance().text == "rlike"
            if self.at_op("("):
                self.advance()
                patterns = [self.string()]
                while self.at_op(","):
                    self.advance()
                    patterns.append(self.string())
                self._close()
            else:
                patterns = [self.string()]
            return T.Like(value, tuple(patterns), regex, negated, loc)
        if self.at_kw("is"):
            self.advance()
            neg = False
            if self.at_kw("not"):
                self.advance()
                neg = True
            self.expect_kw("null")
            return T.IsNull(value, neg, loc)
        if self.at_op(":"):
            column = value.value if isinstance(value, T.Cast) else value
            if not isinstance(column, T.Column):
                raise self.error("the left side of ':' must be a field name")
            self.advance()
            query = self.constant()
            return T.Match(column, query, loc)
        return value

    def _close(self) -> None:
        self._prev_end = self.tok.end
        self.expect_op(")")

    def value_expression(self) -> T.Expr:
        left = self.additive()
        if self.tok.kind == "op" and self.tok.text in ("==", "!=", "<", "<=", ">", ">=", "=~"):
            loc = self.loc()
            op = self.advance().text
            return T.Binary(op, left, self.additive(), loc)
        return left

    def additive(self) -> T.Expr:
        left = self.multiplicative()
        while self.at_op("+") or self.at_op("-"):
            loc = self.loc()
            op = self.advance().text
            left = T.Binary(op, left, self.multiplicative(), loc)
        return left

    def multiplicative(self) -> T.Expr:
        left = self.unary()
        while self.at_op("*") or self.at_op("/") or self.at_op("%"):
            loc = self.loc()
            op = self.advance().text
            left = T.Binary(op, left, self.unary(), loc)
        return left

    def unary(self) -> T.Expr:
        if self.at_op("-") or self.at_op("+"):
            loc = self.loc()
            op = self.advance().text
            self._deeper()
            operand = self.unary()
            self._depth -= 1
            if op == "-" and isinstance(operand, T.Literal) and operand.type in ("integer", "long", "double"):
                return T.Literal(-operand.value, operand.type, loc)
            if op == "-" and isinstance(operand, T.Literal) and isinstance(operand.value, T.Span):
                span = operand.value
                return T.Literal(T.Span(-span.amount, span.unit), operand.type, loc)
            return operand if op == "+" else T.Unary("-", operand, loc)
        return self.postfix()

    def postfix(self) -> T.Expr:
        expr = self.primary()
        while self.at_op("::"):
            loc = self.loc()
            self.advance()
            self._prev_end = self.tok.end
            type_name = self.identifier().lower()
            expr = T.Cast(expr, type_name, loc)
        return expr

    def primary(self) -> T.Expr:
        tok = self.tok
        loc = self.loc()
        self._prev_end = tok.end
        if tok.kind == "op" and tok.text == "(":
            self.advance()
            inner = self.boolean()
            self._close()
            return inner
        if tok.kind in ("id", "qid"):
            if tok.kind == "id" and self.lex.text[tok.end : tok.end + 1] == "(":
                return self.call()
            if tok.kind == "id":
                saved = (self.lex.pos, self.tok)
                self.advance()
                if self.at_op("("):
                    self.lex.pos, self.tok = saved
                    return self.call()
                self.lex.pos, self.tok = saved
            name = self.qualified_name()
            self._prev_end = self._end_of_name()
            return T.Column(name, loc)
        if tok.kind == "kw" and tok.text in ("first", "last") and self.lex.text[tok.end : tok.end + 1] == "(":
            return self.call()
        return self.constant()

    def _end_of_name(self) -> int:
        # The end of the last token consumed: the current token starts after whitespace.
        end = self.tok.start
        while end > 0 and self.text[end - 1] in " \t\r\n":
            end -= 1
        return end

    def call(self) -> T.Call:
        name_tok = self.advance()
        loc = self.loc(name_tok.start)
        self.expect_op("(")
        args: list[T.Expr] = []
        star = False
        options: tuple = ()
        if self.at_op("*"):
            self.advance()
            star = True
        elif not self.at_op(")"):
            while True:
                if self.at_op("{"):
                    options = self.map_expression()
                    break
                args.append(self.boolean())
                if not self.at_op(","):
                    break
                self.advance()
        self._close()
        return T.Call(name_tok.text.lower(), tuple(args), star, options, loc)

    def map_expression(self) -> tuple[tuple[str, object], ...]:
        self.expect_op("{")
        entries = []
        if not self.at_op("}"):
            while True:
                key = self.string()
                self.expect_op(":")
                entries.append((key, self.constant().value))
                if not self.at_op(","):
                    break
                self.advance()
        self._prev_end = self.tok.end
        self.expect_op("}")
        return tuple(entries)

    def constant(self) -> T.Literal:
        tok = self.tok
        loc = self.loc()
        self._prev_end = tok.end
        if tok.kind == "kw" and tok.text in ("null", "true", "false"):
            self.advance()
            if tok.text == "null":
                return T.Literal(None, "null", loc)
            return T.Literal(tok.text == "true", "boolean", loc)
        if tok.kind == "str":
            self.advance()
            return T.Literal(tok.text, "keyword", loc)
        if tok.kind in ("int", "dec") or (tok.kind == "op" and tok.text in ("+", "-")):
            sign = 1
            if tok.kind == "op":
                sign = -1 if self.advance().text == "-" else 1
                tok = self.tok
                self._prev_end = tok.end
                if tok.kind not in ("int", "dec"):
                    raise self.unexpected("a number")
            self.advance()
            if tok.kind == "dec":
                return T.Literal(sign * float(tok.text), "double", loc)
            value = sign * int(tok.text)
            if self.tok.kind == "id" and self.tok.text.lower() in SPAN_UNITS:
                unit = SPAN_UNITS[self.advance().text.lower()]
                self._prev_end = self._end_of_name()
                span = T.Span(value, unit)
                return T.Literal(span, "date_period" if span.calendar else "time_duration", loc)
            if self.tok.kind == "id":
                raise self.error(f"unexpected time duration qualifier: {_show(self.tok.text)}")
            return T.Literal(value, "integer" if -(2**31) <= value < 2**31 else "long", loc)
        if tok.kind == "op" and tok.text == "[":
            self.advance()
            items = [self.constant()]
            while self.at_op(","):
                self.advance()
                items.append(self.constant())
            self._prev_end = self.tok.end
            self.expect_op("]")
            kinds = {i.type for i in items}
            kind = (
                kinds.pop()
                if len(kinds) == 1
                else ("double" if kinds <= {"integer", "long", "double"} else "")
            )
            if not kind or kind in ("null", "time_duration", "date_period"):
                raise self.error("a list literal holds numbers, booleans or strings of one type")
            return T.Literal(tuple(i.value for i in items), kind, loc)
        if tok.kind == "op" and tok.text == "?":
            raise self.error("query parameters ('?') are not supported")
        raise self.unexpected("an expression")


def _show(text: str, limit: int = 60) -> str:
    """``text`` safe to show: control characters escaped, long text cut."""
    out = text if len(text) <= limit else text[:limit] + "..."
    return "".join(
        c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in out
    )
