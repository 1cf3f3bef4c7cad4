"""Elasticsearch index patterns: wildcards, comma lists and -exclusions."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

# A data stream's backing index: .ds-<stream>-<yyyy.MM.dd>-<generation> (7.9 and 7.10 had no date).
# Backing indices are hidden, so a wildcard never selects them, but a search on the stream reads
# them (Elasticsearch "Data streams": "the stream routes the request to all its backing indices").
_BACKING = re.compile(r"\.ds-(?P<stream>.+?)(?:-\d{4}\.\d{2}\.\d{2})?-\d{6}")


def stream_name(index_name: str) -> str:
    """The data stream a backing index belongs to; any other name as it is."""
    m = _BACKING.fullmatch(index_name)
    return m.group("stream") if m else index_name


def _split(patterns: list[str] | str) -> list[str]:
    items = [patterns] if isinstance(patterns, str) else patterns
    out: list[str] = []
    for item in items:
        out.extend(p.strip() for p in item.split(",") if p.strip())
    return out


def matches_patterns(patterns: list[str] | str, name: str) -> bool:
    """True when name is selected: some pattern includes it and no later -pattern removes it.

    A backing index of a data stream is selected as its stream is.
    """
    stream = stream_name(name)
    selected = False
    for pattern in _split(patterns):
        if pattern.startswith("-") and selected:
            if _either(pattern[1:], name, stream):
                selected = False
        elif _either(pattern, name, stream):
            selected = True
    return selected


def _either(pattern: str, name: str, stream: str) -> bool:
    """The stream's name, or a backing index's own name when the pattern names hidden ones (".ds-*")."""
    return _match(pattern, stream) or (stream != name and pattern.startswith(".") and _match(pattern, name))


def _match(pattern: str, name: str) -> bool:
    # Only * is a wildcard in index patterns; escape [ and ? for fnmatch.
    escaped = pattern.replace("[", "[[]").replace("?", "[?]")
    if ":" in pattern and ":" not in name:  # remote cluster pattern: compare the local part
        escaped = escaped.split(":", 1)[1]
    return fnmatchcase(name, escaped)
