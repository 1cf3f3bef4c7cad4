"""Reading a field out of a JSON document, as Elasticsearch sees it.

Elasticsearch flattens a document before indexing, so ``{"file.path": x}``,
``{"file": {"path": x}}`` and ``{"file": [{"path": x}]}`` all give the field
``file.path`` the value ``x``. Arrays are flattened too, and JSON nulls are not
indexed: a field whose only value is null is missing.

A dot in a key at any level is a path separator (ES's document parsing expands
``{"a": {"b.c": 1}}`` into objects: ``DotExpandingXContentParser``,
``splitAndValidatePath``), and every other character is part of a key: ``a.b.c``
is ``{"a.b": {"c": 1}}`` and ``{"a.b.c": 1}`` too, and
``kubernetes.audit.annotations.authorization_k8s_io/decision`` reads
``{"kubernetes": {"audit": {"annotations": {"authorization_k8s_io/decision": x}}}}``.
A field name is therefore always split at every dot, whatever quoting wrote it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=4096)
def split_path(name: str) -> tuple[str, ...]:
    return tuple(name.split("."))


@lru_cache(maxsize=4096)
def _prefixes(parts: tuple[str, ...]) -> tuple[tuple[tuple[str, int], ...], ...]:
    """For each start position i, the candidate keys parts[i..j] with the next position j."""
    n = len(parts)
    return tuple(tuple((".".join(parts[i:j]), j) for j in range(n, i, -1)) for i in range(n))


def lookup(doc: Any, path: tuple[str, ...] | str) -> list:
    """Every non-null leaf value of the field ``path`` in ``doc``, in document order.

    An empty list means the field is missing (absent, null, or only nulls).
    Objects are not leaf values: a path naming an object gives nothing.
    """
    parts = split_path(path) if isinstance(path, str) else path
    out: list = []
    _collect(doc, parts, _prefixes(parts), 0, out)
    return out


def _collect(obj: Any, parts: tuple[str, ...], prefixes, i: int, out: list) -> None:
    if i == len(parts):
        _leaves(obj, out)
        return
    if isinstance(obj, list):
        for item in obj:
            _collect(item, parts, prefixes, i, out)
        return
    if not isinstance(obj, dict):
        return
    for key, j in prefixes[i]:
        if key in obj:
            _collect(obj[key], parts, prefixes, j, out)


def _leaves(obj: Any, out: list) -> None:
    if obj is None or isinstance(obj, dict):
        return
    if isinstance(obj, list):
        for item in obj:
            _leaves(item, out)
        return
    out.append(obj)


def has_field(doc: Any, path: tuple[str, ...] | str) -> bool:
    return bool(lookup(doc, path))
