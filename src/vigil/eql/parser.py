"""The EQL parser: tokens to the syntax tree of :mod:`vigil.eql.ast`.

Recursive descent for statements and a precedence climber for expressions,
following Elasticsearch's ``EqlBase.g4`` and the checks of its
``LogicalPlanBuilder`` / ``ExpressionBuilder``:

    booleanExpression : NOT booleanExpression | valueExpression
                      | booleanExpression AND booleanExpression
                      | booleanExpression OR booleanExpression
    valueExpression   : operatorExpression (comparisonOperator operatorExpression)?
    operatorExpression: primaryExpression predicate?
                      | (MINUS | PLUS) operatorExpression
                      | operatorExpression (* | / | %) operatorExpression
                      | operatorExpression (+ | -) operatorExpression
    predicate         : NOT? IN (...) | IN~ (...) | (: | like | like~ | regex | regex~) constant-or-list

So ``not`` binds tighter than ``and``, which binds tighter than ``or``;
comparisons do not chain; a predicate (``in``, ``:``, ``like``...) applies to the
primary expression right before it.
"""

from __future__ import annotations

from vigil.eql import ast
from vigil.eql.errors import EqlSyntaxError
from vigil.eql.fields import split_path
from vigil.eql.tokens import Token, tokenize

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
PATTERN_KEYWORDS = ("like", "like~", "regex", "regex~")
SUPPORTED_PIPES = ("head", "tail")
# Pipes of the original EQL that Elasticsearch knows by name but does not run.
KNOWN_PIPES = ("count", "filter", "sort", "unique", "unique_count")
TIME_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_NESTING = 60  # deeper trees would exhaust Python's stack here or in the compiler
MAX_RUNS = 100  # Elasticsearch refuses to repeat a sequence stage more than 100 times.

_CLOSERS = {"(": ")", "[": "]", "![": "]"}


def _describe(tok: Token) -> str:
    if tok.kind == "eof":
        return "the end of the query"
    if tok.kind == "string":
        return f"string {tok.text}"
    return f"'{tok.text}'"


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.depth = 0

    # --- token helpers ---------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Token:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.value in words

    def error(self, message: str, at: Token | ast.Loc | None = None) -> EqlSyntaxError:
        if at is None:
            at = self.tok
        line, col = at.loc if isinstance(at, Token) else at
        return EqlSyntaxError(message, line, col, self.text)

    def expect_op(self, op: str, what: str = "") -> Token:
        if not self.is_op(op):
            raise self.error(f"expected '{op}'{what} but found {_describe(self.tok)}")
        return self.next()

    def expect_close(self, opener: Token, what: str) -> Token:
        close = _CLOSERS[opener.value]
        if not self.is_op(close):
            raise self.error(
                f"expected '{close}' to close the {what} opened at line {opener.line}, column {opener.column} "
                f"but found {_describe(self.tok)}"
            )
        return self.next()

    def expect_kw(self, word: str, what: str = "") -> Token:
        if not self.is_kw(word):
            raise self.error(f"expected '{word}'{what} but found {_describe(self.tok)}")
        return self.next()

    # --- statements ------------------------------------------------------

    def statement(self) -> ast.Statement:
        query = self.query()
        pipes = []
        while self.is_op("|"):
            pipes.append(self.pipe())
        if self.tok.kind != "eof":
            expected = (
                "'and', 'or', a pipe '|'" if isinstance(query, ast.EventQuery) and not pipes else "a pipe '|'"
            )
            raise self.error(f"expected {expected} or the end of the query but found {_describe(self.tok)}")
        return ast.Statement(query, tuple(pipes), text=self.text)

    def query(self) -> ast.Query:
        if self.is_kw("sequence"):
            return self.sequence()
        if self.is_kw("sample"):
            return self.sample()
        if self.is_kw("join"):
            raise self.error("queries using [join] are not supported")
        if self.tok.kind == "eof":
            raise self.error("empty query: expected '<category> where <condition>', a sequence or a sample")
        return self.event_filter()

    def event_filter(self) -> ast.EventQuery:
        tok = self.tok
        if self.is_kw("any"):
            self.next()
            category = None
        elif tok.kind in ("ident", "quoted_ident", "string"):
            self.next()
            category = tok.value
        elif tok.kind == "keyword":
            raise self.error(
                f"'{tok.value}' is a keyword and cannot be an event category; back-quote it: `{tok.value}`"
            )
        else:
            raise self.error(f"expected an event category (or 'any') but found {_describe(tok)}")
        if not self.is_kw("where"):
            raise self.error(f"expected 'where' after the event category but found {_describe(self.tok)}")
        self.next()
        condition = self.expression()
        return ast.EventQuery(category, condition, loc=tok.loc)

    def join_keys(self) -> list[ast.Expr]:
        self.expect_kw("by")
        keys = [self.expression()]
        while self.is_op(","):
            self.next()
            keys.append(self.expression())
        return keys

    def subquery(self, what: str) -> tuple[Token, ast.EventQuery]:
        opener = self.tok
        if not self.is_op("[", "!["):
            raise self.error(f"expected '[' to open a {what} but found {_describe(opener)}")
        self.next()
        query = self.event_filter()
        self.expect_close(opener, what)
        return opener, query

    def sequence(self) -> ast.Sequence:
        start = self.next()
        shared: list[ast.Expr] = []
        maxspan = None
        if self.is_kw("by"):
            shared = self.join_keys()
            if self.is_kw("with"):
                maxspan = self.maxspan()
        elif self.is_kw("with"):
            maxspan = self.maxspan()
            if self.is_kw("by"):
                # LogicalPlanBuilder.visitSequence rejects this order.
                raise self.error("please specify sequence [by] before [with] not after")
        stages: list[ast.SequenceStage] = []
        key_count: int | None = None
        while self.is_op("[", "!["):
            stage, own = self.sequence_stage(shared)
            key_count = self._check_keys(key_count, own)
            stages.append(stage)
        # ``with runs=N`` repeats a stage N times: ES counts the repetitions.
        total = sum(s.runs for s in stages)
        if total < 2:
            raise self.error(f"a sequence requires a minimum of 2 queries, found [{total}]")
        until = None
        if self.is_kw("until"):
            self.next()
            if self.is_op("!["):
                raise self.error("an until query cannot be a missing event query", self.tok)
            until, own = self.sequence_stage(shared, allow_runs=False)
            self._check_keys(key_count, own)
        self._check_missing(stages, maxspan, start)
        return ast.Sequence(tuple(stages), maxspan, until, loc=start.loc)

    def _check_keys(self, expected: int | None, own: tuple[int, Token]) -> int:
        """Every stage (and until) must have as many join keys as the first (LogicalPlanBuilder)."""
        count, at = own
        if expected is not None and count != expected:
            raise self.error(
                f"inconsistent number of join keys specified; expected [{expected}] but found [{count}]", at
            )
        return count

    def _check_missing(self, stages: list[ast.SequenceStage], maxspan: int | None, start: Token) -> None:
        if all(s.missing for s in stages):
            raise self.error("a sequence requires at least one positive event query; found none", start)
        if maxspan is None:
            for s in (stages[0], stages[-1]):
                if s.missing:
                    raise self.error(
                        "a missing event query at the start or end of a sequence requires 'with maxspan'",
                        s.loc,
                    )

    def sequence_stage(
        self, shared: list[ast.Expr], allow_runs: bool = True
    ) -> tuple[ast.SequenceStage, tuple]:
        opener, query = self.subquery("sequence stage")
        own: list[ast.Expr] = []
        keys_at = opener
        if self.is_kw("by"):
            keys_at = self.tok
            own = self.join_keys()
        runs = 1
        if self.is_kw("with") and allow_runs:
            runs = self.runs()
        stage = ast.SequenceStage(
            query, tuple(shared) + tuple(own), runs=runs, missing=opener.value == "![", loc=opener.loc
        )
        return stage, (len(own), keys_at)

    def runs(self) -> int:
        self.next()
        key = self.tok
        if key.kind != "ident" or key.value != "runs":
            raise self.error(f"unrecognized option [{key.text}], expecting [runs]")
        self.next()
        self.expect_op("=", " after 'runs'")
        value = self.tok
        if value.kind != "int":
            raise self.error(f"a positive integer is required for runs; found [{value.text}]")
        self.next()
        if value.value < 1:
            raise self.error(f"a positive runs value is required; found [{value.value}]", value)
        if value.value > MAX_RUNS:
            raise self.error(
                f"a query cannot be repeated more than {MAX_RUNS} times; found [{value.value}]", value
            )
        return value.value

    def maxspan(self) -> int:
        self.next()  # with
        if not self.is_kw("maxspan"):
            raise self.error(f"expected 'maxspan' after 'with' but found {_describe(self.tok)}")
        self.next()
        self.expect_op("=", " after 'maxspan'")
        num = self.tok
        if num.kind == "float":
            raise self.error(
                f"decimal time interval [{num.text}] not supported; please use a positive integer"
            )
        if num.kind != "int":
            raise self.error(f"expected a time span such as 30s after 'maxspan=' but found {_describe(num)}")
        self.next()
        if num.value <= 0:
            raise self.error(f"a positive maxspan value is required; found [{num.value}]", num)
        unit = self.tok
        # The unit must follow the number directly or after spaces; it is an identifier.
        if unit.kind != "ident":
            raise self.error(f"no time unit specified, did you mean [s] as in [{num.text}s]?", num)
        if unit.value not in TIME_UNITS:
            raise self.error(
                f"unrecognized time unit [{unit.value}] in [{num.text}{unit.value}], please specify one of "
                "[ms, s, m, h, d]"
            )
        self.next()
        return num.value * TIME_UNITS[unit.value]

    def sample(self) -> ast.Sample:
        start = self.next()
        shared: list[ast.Expr] = []
        if self.is_kw("by"):
            shared = self.join_keys()
        stages: list[ast.SampleStage] = []
        key_count: int | None = None
        while self.is_op("[", "!["):
            if self.is_op("!["):
                raise self.error("missing event queries are only allowed in sequences")
            opener, query = self.subquery("sample stage")
            own: list[ast.Expr] = []
            at = opener
            if self.is_kw("by"):
                at = self.tok
                own = self.join_keys()
            stage = ast.SampleStage(query, tuple(shared) + tuple(own), loc=opener.loc)
            key_count = self._check_keys(key_count, (len(own), at))
            stages.append(stage)
        if len(stages) < 2:
            raise self.error(f"a sample requires a minimum of 2 queries, found [{len(stages)}]")
        return ast.Sample(tuple(stages), loc=start.loc)

    def pipe(self) -> ast.Pipe:
        bar = self.next()
        name = self.tok
        if name.kind not in ("ident", "keyword"):
            raise self.error(f"expected a pipe name after '|' but found {_describe(name)}")
        self.next()
        if name.value not in SUPPORTED_PIPES:
            if name.value in KNOWN_PIPES:
                raise self.error(
                    f"pipe [{name.value}] is not supported: supported pipes are head and tail", name
                )
            raise self.error(f"unknown pipe [{name.value}]: supported pipes are head and tail", name)
        if self.tok.kind == "eof" or self.is_op("|"):
            raise self.error(f"pipe [{name.value}] expects exactly one argument but found [0]")
        arg_tok = self.tok
        arg = self.expression()
        if self.is_op(","):
            raise self.error(f"pipe [{name.value}] expects exactly one argument but found more")
        if not (isinstance(arg, ast.Literal) and type(arg.value) is int and arg.value >= 0):
            raise self.error(
                f"pipe [{name.value}] expects a positive integer but found [{self._source(arg_tok)}]", arg_tok
            )
        return ast.Pipe(name.value, arg.value, loc=bar.loc)

    def _source(self, start: Token) -> str:
        end = self.tok
        lines = self.text.splitlines(keepends=True)
        offset = sum(len(x) for x in lines[: start.line - 1]) + start.column - 1
        stop = (
            sum(len(x) for x in lines[: end.line - 1]) + end.column - 1
            if end.kind != "eof"
            else len(self.text)
        )
        return self.text[offset:stop].strip()

    # --- expressions -----------------------------------------------------

    def expression(self) -> ast.Expr:
        self.enter()
        try:
            return self.or_expr()
        finally:
            self.depth -= 1

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"query nested too deeply: more than {MAX_NESTING} levels")

    def or_expr(self) -> ast.Expr:
        first = self.and_expr()
        terms = [first]
        while self.is_kw("or"):
            self.next()
            terms.append(self.and_expr())
        return first if len(terms) == 1 else ast.Or(tuple(terms), loc=first.loc)

    def and_expr(self) -> ast.Expr:
        first = self.not_expr()
        terms = [first]
        while self.is_kw("and"):
            self.next()
            terms.append(self.not_expr())
        return first if len(terms) == 1 else ast.And(tuple(terms), loc=first.loc)

    def not_expr(self) -> ast.Expr:
        if self.is_kw("not"):
            tok = self.next()
            self.enter()
            inner = self.not_expr()
            self.depth -= 1
            return ast.Not(inner, loc=tok.loc)
        if self.tok.kind == "ident" and self.peek().kind == "keyword" and self.peek().value == "of":
            raise self.error("process relationships are not supported")
        return self.comparison()

    def comparison(self) -> ast.Expr:
        left = self.additive()
        if self.is_op(*COMPARISONS):
            op = self.next().value
            right = self.additive()
            if self.is_op(*COMPARISONS):
                raise self.error(
                    f"comparisons cannot be chained: use parentheses or 'and' before '{self.tok.value}'"
                )
            return ast.Comparison(op, left, right, loc=left.loc)
        if self.is_op("="):
            raise self.error("'=' is not a comparison operator; use '==' (or ':' for case-insensitive match)")
        return left

    def additive(self) -> ast.Expr:
        left = self.multiplicative()
        while self.is_op("+", "-"):
            op = self.next().value
            right = self.multiplicative()
            left = ast.Arithmetic(op, left, right, loc=left.loc)
        return left

    def multiplicative(self) -> ast.Expr:
        left = self.unary()
        while self.is_op("*", "/", "%"):
            op = self.next().value
            right = self.unary()
            left = ast.Arithmetic(op, left, right, loc=left.loc)
        return left

    def unary(self) -> ast.Expr:
        if self.is_op("-", "+"):
            tok = self.next()
            self.enter()
            operand = self.unary()
            self.depth -= 1
            if tok.value == "+":
                return operand
            if (
                isinstance(operand, ast.Literal)
                and type(operand.value) in (int, float)
                and operand.loc == (tok.line, tok.column + 1)
            ):
                # A minus glued to a number is a negative literal, as ES folds it.
                return ast.Literal(-operand.value, loc=tok.loc)
            return ast.Negate(operand, loc=tok.loc)
        return self.predicate(self.primary())

    def predicate(self, value: ast.Expr) -> ast.Expr:
        tok = self.tok
        if self.is_kw("not") and self.peek().kind == "keyword" and self.peek().value in ("in", "in~"):
            # predicate: NOT? (IN | IN_INSENSITIVE) LP expression (COMMA expression)* RP
            self.next()
            kind = self.next().value
            return ast.In(value, self.in_list(), insensitive=kind == "in~", negated=True, loc=value.loc)
        if self.is_kw("in", "in~"):
            self.next()
            return ast.In(value, self.in_list(), insensitive=tok.value == "in~", loc=value.loc)
        if self.is_op(":") or self.is_kw(*PATTERN_KEYWORDS):
            self.next()
            return ast.Pattern(tok.value, value, self.pattern_list(tok.value), loc=value.loc)
        if self.is_kw("not"):
            raise self.error(
                "'not' here must be followed by 'in'; to negate a condition, write 'not' before it: not (a like \"x\")"
            )
        if self.is_op("!:"):
            raise self.error("'!:' is not supported; use 'not field : value'")
        return value

    def in_list(self) -> tuple[ast.Expr, ...]:
        opener = self.tok
        self.expect_op("(", " to open the list of 'in'")
        items = [self.expression()]
        while self.is_op(","):
            self.next()
            items.append(self.expression())
        self.expect_close(opener, "list")
        return tuple(items)

    def pattern_list(self, op: str) -> tuple[ast.Expr, ...]:
        if self.is_op("("):
            opener = self.next()
            items = [self.constant(op)]
            while self.is_op(","):
                self.next()
                items.append(self.constant(op))
            self.expect_close(opener, "list")
            return tuple(items)
        return (self.constant(op),)

    def constant(self, op: str) -> ast.Literal:
        # The grammar allows only constants on the right of ':', like and regex.
        tok = self.tok
        if tok.kind in ("string", "int", "float"):
            self.next()
            return ast.Literal(tok.value, loc=tok.loc)
        if self.is_kw("true", "false", "null"):
            self.next()
            return ast.Literal({"true": True, "false": False, "null": None}[tok.value], loc=tok.loc)
        if self.is_op("-") and self.peek().kind in ("int", "float"):
            self.next()
            num = self.next()
            return ast.Literal(-num.value, loc=tok.loc)
        raise self.error(f"expected a constant (such as a string) after '{op}' but found {_describe(tok)}")

    def primary(self) -> ast.Expr:
        tok = self.tok
        if tok.kind in ("string", "int", "float"):
            self.next()
            return ast.Literal(tok.value, loc=tok.loc)
        if self.is_kw("true", "false", "null"):
            self.next()
            return ast.Literal({"true": True, "false": False, "null": None}[tok.value], loc=tok.loc)
        if self.is_op("("):
            opener = self.next()
            inner = self.expression()
            self.expect_close(opener, "parenthesis")
            return inner
        if tok.kind == "tilde_ident" or (
            tok.kind == "ident" and self.peek().kind == "op" and self.peek().value == "("
        ):
            return self.function_call()
        if self.is_op("?") or tok.kind in ("ident", "quoted_ident"):
            return self.field()
        if tok.kind == "keyword":
            raise self.error(
                f"expected an expression but found the keyword '{tok.value}'"
                + (
                    f"; to use it as a field name, back-quote it: `{tok.value}`"
                    if tok.value.isalpha()
                    else ""
                )
            )
        raise self.error(f"expected an expression but found {_describe(tok)}")

    def function_call(self) -> ast.FunctionCall:
        name = self.next()
        opener = self.expect_op("(", f" after the function name {name.value}")
        args: list[ast.Expr] = []
        if not self.is_op(")"):
            args.append(self.expression())
            while self.is_op(","):
                self.next()
                args.append(self.expression())
        if not self.is_op(")"):
            raise self.error(
                f"expected ')' to close the call of {name.value} opened at line {opener.line}, column "
                f"{opener.column} but found {_describe(self.tok)}"
            )
        self.next()
        return ast.FunctionCall(name.value, tuple(args), insensitive=name.kind == "tilde_ident", loc=name.loc)

    def field(self) -> ast.Field:
        start = self.tok
        optional = False
        if self.is_op("?"):
            optional = True
            self.next()
            if self.tok.kind not in ("ident", "quoted_ident"):
                raise self.error(f"expected a field name after '?' but found {_describe(self.tok)}")
        parts = [self.next().value]
        while True:
            if self.is_op("."):
                self.next()
                part = self.tok
                if part.kind in ("ident", "quoted_ident"):
                    parts.append(self.next().value)
                    continue
                if part.kind == "keyword":
                    raise self.error(
                        f"'{part.value}' is a keyword; to use it in a field name, back-quote it: `{part.value}`"
                    )
                if part.kind == "int":
                    raise self.error("a field name part cannot start with a digit; back-quote it")
                raise self.error(f"expected a field name after '.' but found {_describe(part)}")
            if self.is_op("[") and self.peek().kind == "int":
                raise self.error("array indexes are not supported")
            break
        # ES joins the parts with dots into one name (IdentifierBuilder.visitQualifiedName)
        # and looks that name up among the mapping's full field paths, so a back-quoted
        # part is not one key: `a.b/c` is the path a, b/c, like a.`b/c`.
        return ast.Field(split_path(".".join(parts)), optional=optional, loc=start.loc)


def parse(text: str) -> ast.Statement:
    """Parse EQL ``text`` into a :class:`~vigil.eql.ast.Statement`; raises :class:`EqlSyntaxError`."""
    if not isinstance(text, str):
        raise TypeError(f"EQL query text must be a str, not {type(text).__name__}")
    parser = Parser(text)
    try:
        return parser.statement()
    except RecursionError:
        # A backstop for a caller already deep in its own stack.
        raise parser.error("query nested too deeply") from None


def parse_expression(text: str) -> ast.Expr:
    """Parse a lone condition (the grammar's ``singleExpression``); useful for tests and tools."""
    p = Parser(text)
    expr = p.expression()
    if p.tok.kind != "eof":
        raise p.error(f"unexpected {_describe(p.tok)} after the end of the expression")
    return expr
