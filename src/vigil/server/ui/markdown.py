"""A rule's investigation guide, Markdown to HTML that cannot carry markup of its own.

markdown-it-py (MIT; already under Rich) with raw HTML off, so ``<script>`` in a guide is
text; links only to ``http``, ``https`` and ``mailto`` (never ``javascript:`` or
``data:``), opened with ``rel="noopener noreferrer"``; images shown as their text (the
pages fetch nothing from elsewhere); control characters made visible first.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from markdown_it import MarkdownIt

from vigil.server.ui.html import Safe
from vigil.sinks.terminal import visible

_SCHEMES = ("http", "https", "mailto")


def _safe_link(url: str) -> bool:
    text = url.strip()
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        return False
    return urlsplit(text).scheme.lower() in _SCHEMES


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").disable("image")
    md.validateLink = _safe_link

    def link_open(renderer, tokens, idx, options, env):  # noqa: ANN001 - markdown-it's signature
        tokens[idx].attrSet("rel", "noopener noreferrer")
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    return md


_MD = _renderer()


def render(text: str) -> Safe:
    return Safe(_MD.render(visible(text, lines=True)))
