"""Text for a person's terminal: values shown as they are, never obeyed.

Events and rules are written by the machines Vigil watches, so a value may hold
terminal controls (``ESC]0;title BEL``, ``ESC[2J``, C1 codes, bidirectional
overrides that reorder what is read) or Rich markup (``[/bold]``, ``[link=...]``).
Everything shown to a person passes through :class:`SafeConsole`: markup is off,
so brackets are text, and every control character is shown visibly
(``\\x1b``, ``\\u202e``) where it stands. Styles come from Rich ``Text`` objects,
never from markup in a string. NDJSON is not touched: JSON escapes control
characters itself, and :func:`json_line` escapes the C1 and bidirectional ones
JSON leaves raw (still the same JSON).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# C0 and C1 controls, DEL, line and paragraph separators, and the bidirectional
# marks, embeddings, overrides and isolates (the "Trojan Source" characters).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _shown(m: re.Match) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: Any, *, lines: bool = False) -> str:
    """``value`` as text whose control characters are shown, not obeyed.

    ``lines`` keeps newlines and tabs (for multi-line text such as a rule's guide);
    otherwise they are shown as ``\\x0a`` and ``\\x09`` too.
    """
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    pattern = _UNSAFE_KEEP_LINES if lines else _UNSAFE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_shown, text)


# DEL, the UTF-8 of C1 controls (U+0080-U+009F) and of the bidirectional controls above:
# JSON may carry them raw, and a terminal showing the line could obey them. Outside
# strings JSON text is ASCII, so these bytes are always inside a string.
_RAW_IN_JSON = re.compile(rb"\x7f|\xc2[\x80-\x9f]|\xd8\x9c|\xe2\x80[\x8e\x8f\xa8-\xae]|\xe2\x81[\xa6-\xa9]")


def _json_escape(m: re.Match) -> bytes:
    return b"\\u%04x" % ord(m.group(0).decode())


def json_line(data: bytes) -> bytes:
    """JSON text with C1 and bidirectional controls written as ``\\u`` escapes: the same
    JSON value, safe to see in a terminal (orjson already escapes C0 controls)."""
    if _RAW_IN_JSON.search(data) is None:
        return data
    return _RAW_IN_JSON.sub(_json_escape, data)


def styled(*parts: str | tuple[Any, str]) -> Any:
    """A Rich ``Text`` of plain parts and ``(value, style)`` parts: styles without markup."""
    from rich.text import Text

    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            text.append(visible(part[0], lines=True), style=part[1])
        else:
            text.append(visible(part, lines=True))
    return text


def _safe_console_class():
    from rich.console import Console
    from rich.segment import Segment

    class SafeConsole(Console):
        """A Rich console for people: no markup, no emoji codes, controls shown visibly."""

        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("markup", False)
            kwargs.setdefault("emoji", False)
            super().__init__(**kwargs)

        def render_str(self, text: str, **kwargs: Any):
            # Before layout, so widths are measured on what is shown.
            return super().render_str(visible(text, lines=True), **kwargs)

        def render(self, renderable: Any, options: Any = None) -> Iterable[Segment]:
            # The last net: text from any renderable (Markdown, Text) is shown visibly.
            for seg in super().render(renderable, options):
                if seg.control is None and _UNSAFE_KEEP_LINES.search(seg.text) is not None:
                    yield Segment(visible(seg.text, lines=True), seg.style)
                else:
                    yield seg

    return SafeConsole


def safe_console(**kwargs: Any) -> Any:
    """A :class:`SafeConsole` (Rich is imported only when a table is printed)."""
    global SafeConsole
    if SafeConsole is None:
        SafeConsole = _safe_console_class()
    return SafeConsole(**kwargs)


SafeConsole: Any = None
