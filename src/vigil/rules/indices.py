"""Elasticsearch index patterns: wildcards, comma lists and -exclusions."""

from __future__ import annotations

from fnmatch import fnmatchcase


def _split(patterns: list[str] | str) -> list[str]:
    items = [patterns] if isinstance(patterns, str) else patterns
    out: list[str] = []
    for item in items:
        out.extend(p.strip() for p in item.split(",") if p.strip())
    return out


def matches_patterns(patterns: list[str] | str, name: str) -> bool:
    """True when name is selected: some pattern includes it and no later -pattern removes it."""
    selected = False
    for pattern in _split(patterns):
        if pattern.startswith("-") and selected:
            if _match(pattern[1:], name):
                selected = False
        elif _match(pattern, name):
            selected = True
    return selected


def _match(pattern: str, name: str) -> bool:
    # Only * is a wildcard in index patterns; escape [ and ? for fnmatch.
    escaped = pattern.replace("[", "[[]").replace("?", "[?]")
    if ":" in pattern and ":" not in name:  # remote cluster pattern: compare the local part
        escaped = escaped.split(":", 1)[1]
    return fnmatchcase(name, escaped)
