"""Errors of the query language, each pointing at a spot in the query text."""

from __future__ import annotations


class EqlError(Exception):
    """A query that cannot be parsed or checked.

    ``line`` and ``column`` are 1-based and point into the query text.
    """

    kind = "error"

    def __init__(
        self, message: str, line: int | None = None, column: int | None = None, text: str | None = None
    ):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.text = text

    @property
    def source_line(self) -> str | None:
        if self.text is None or self.line is None:
            return None
        lines = self.text.splitlines() or [""]
        return lines[self.line - 1] if 0 < self.line <= len(lines) else None

    def render(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line is not None else ""
        out = f"{self.kind}: {where}{self.message}"
        src = self.source_line
        if src is not None and self.column is not None:
            out += "\n  " + src + "\n  " + " " * (self.column - 1) + "^"
        return out

    def __str__(self) -> str:
        return self.render()


class EqlSyntaxError(EqlError):
    kind = "syntax error"


class EqlTypeError(EqlError):
    kind = "type error"
