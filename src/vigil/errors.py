"""One exception family for everything a user can get wrong.

Each error knows where it happened (file, line, column) so the command line
can print one clear line instead of a traceback.
"""

from __future__ import annotations


class VigilError(Exception):
    """A problem with the user's input: a query, a rule, an event, a file."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        source_line: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.source_line = source_line

    def location(self) -> str:
        parts = [p for p in (self.file, self.line, self.column) if p is not None]
        return ":".join(str(p) for p in parts)

    def render(self) -> str:
        """The message as a user sees it: location, message, and a caret under the spot."""
        where = self.location()
        text = f"{where}: {self.message}" if where else self.message
        if self.source_line is not None and self.column is not None:
            text += "\n  " + self.source_line + "\n  " + " " * (self.column - 1) + "^"
        return text

    def __str__(self) -> str:
        return self.render()
