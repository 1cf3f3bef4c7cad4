"""HTML built on the server, every value escaped: the only way text reaches a page.

:func:`t` fills a template with values, escaping each one unless it is already
:class:`Safe` (the output of ``t`` itself, or of :func:`join`). Values are escaped
with :func:`html.escape` (``&``, ``<``, ``>``, ``"``, ``'``) after their control
characters are made visible (``\\x1b``), as the terminal shows them: an event's
``ESC[2J`` or bidirectional override is text on the page too.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote, urlencode

from vigil.sinks.terminal import visible


class Safe(str):
    """Markup built here: inserted as it is."""

    __slots__ = ()


def esc(value: Any, *, lines: bool = False) -> Safe:
    if isinstance(value, Safe):
        return value
    if value is None:
        return Safe("")
    if isinstance(value, bool):
        value = "true" if value else "false"
    return Safe(html.escape(visible(str(value), lines=lines), quote=True))


def t(template: str, **values: Any) -> Safe:
    """``template`` with each ``{name}`` replaced by its value, escaped."""
    return Safe(template.format(**{k: esc(v) for k, v in values.items()}))


def join(parts: Any, sep: str = "") -> Safe:
    return Safe(sep.join(esc(p) for p in parts))


def url(path: str, **params: Any) -> str:
    """A link inside the pages: ``path`` with its query (empty parameters left out)."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return path + ("?" + urlencode(kept) if kept else "")


def seg(value: Any) -> str:
    """One path segment, percent-encoded."""
    return quote(str(value), safe="")


def options(current: str | None, choices: list[tuple[str, str]]) -> Safe:
    return join(
        t(
            '<option value="{v}"{sel}>{label}</option>',
            v=value,
            label=label,
            sel=Safe(" selected" if value == (current or "") else ""),
        )
        for value, label in choices
    )


def hidden(name: str, value: Any) -> Safe:
    return t('<input type="hidden" name="{n}" value="{v}">', n=name, v=value)
