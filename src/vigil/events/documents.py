"""What a document must be to be an event, checked as Elasticsearch maps one.

A document Elasticsearch would refuse is refused here too: ``vigil serve`` answers
that bulk item with the error Elasticsearch gives it and stores the others, and a
scan skips that event with its file and line and goes on. The checks are:

- object depth: ``index.mapping.depth.limit`` (default 20, ``MapperService``) counts the
  objects on a field's path, dotted keys expanded (``{"a.b": {"c": 1}}`` is depth 2);
- nesting of objects and arrays together: at most :data:`MAX_NESTING` levels, a limit
  of Vigil's own (its JSON writer keeps 254; Elasticsearch's parser reads 1000), so a
  stored event can always be written out again;
- dates: the fields read as time (``@timestamp``, and the ``timestamp_override`` and
  ``timestamp_field`` of the loaded rules) must parse as Elasticsearch's default date
  format does (:func:`vigil.eql.dates.parse_date`).
"""

from __future__ import annotations

from collections.abc import Iterable

from vigil.eql.dates import BadDate, parse_date

MAX_OBJECT_DEPTH = 20
MAX_NESTING = 128
TIME_FIELDS = ("@timestamp",)


class DocumentError(Exception):
    """A document that is not stored; ``type`` and ``reason`` as Elasticsearch's item error."""

    def __init__(self, reason: str, type_: str = "document_parsing_exception") -> None:
        super().__init__(reason)
        self.reason = reason
        self.type = type_

    def error(self) -> dict:
        return {"type": self.type, "reason": self.reason}


def check_document(doc: dict, time_fields: Iterable[str] = TIME_FIELDS) -> None:
    """Raise :class:`DocumentError` if Elasticsearch (or Vigil's store) would not keep ``doc``."""
    check_shape(doc)
    check_dates(doc, time_fields)


def check_dates(doc: dict, time_fields: Iterable[str] = TIME_FIELDS) -> None:
    """Raise :class:`DocumentError` if a time field of ``doc`` holds a value that is no date."""
    for field in time_fields:
        for value in _values(doc, tuple(field.split("."))):
            if value is None:
                continue  # null is a missing value, as in a mapping
            try:
                parse_date(value)
            except BadDate as exc:
                raise DocumentError(f"failed to parse field [{field}] of type [date]: {exc}") from None


def check_shape(doc: object) -> None:
    """Raise :class:`DocumentError` if ``doc`` (any JSON value) nests past the limits."""
    # Iterative walk: a hostile document must not reach Python's recursion limit.
    stack: list[tuple[object, int, int, str]] = [(doc, 0, 1, "")]
    while stack:
        value, depth, nesting, path = stack.pop()
        if nesting > MAX_NESTING:
            raise DocumentError(f"document nested deeper than {MAX_NESTING} levels at [{path}]")
        if isinstance(value, dict):
            for key, child in value.items():
                key = str(key)
                child_path = f"{path}.{key}" if path else key
                if isinstance(child, dict):
                    child_depth = depth + key.count(".") + 1
                    if child_depth > MAX_OBJECT_DEPTH:
                        raise DocumentError(
                            f"Limit of mapping depth [{MAX_OBJECT_DEPTH}] has been exceeded due to object "
                            f"field [{_short(child_path)}]"
                        )
                    stack.append((child, child_depth, nesting + 1, child_path))
                else:
                    # An array adds no depth of its own: its objects are the key's object field.
                    child_depth = depth + key.count(".") + (1 if isinstance(child, list) else 0)
                    if child_depth > MAX_OBJECT_DEPTH and (not isinstance(child, list) or _has_object(child)):
                        raise DocumentError(
                            f"Limit of mapping depth [{MAX_OBJECT_DEPTH}] has been exceeded due to object "
                            f"field [{_short(child_path)}]"
                        )
                    if isinstance(child, list):
                        stack.append((child, child_depth, nesting + 1, child_path))
        elif isinstance(value, list):
            for child in value:
                if isinstance(child, dict) and depth > MAX_OBJECT_DEPTH:
                    raise DocumentError(
                        f"Limit of mapping depth [{MAX_OBJECT_DEPTH}] has been exceeded due to object "
                        f"field [{_short(path)}]"
                    )
                if isinstance(child, dict | list):
                    stack.append((child, depth, nesting + 1, path))


def _values(node: object, parts: tuple[str, ...]) -> list:
    """Every value at a dotted path as the document holds it (objects and arrays included),
    whether written ``{"a": {"b": 1}}`` or ``{"a.b": 1}``."""
    if not parts:
        return list(node) if isinstance(node, list) else [node]
    if isinstance(node, list):
        return [v for item in node for v in _values(item, parts)]
    if not isinstance(node, dict):
        return []
    out = []
    for i in range(1, len(parts) + 1):
        key = ".".join(parts[:i])
        if key in node:
            out += _values(node[key], parts[i:])
    return out


def _has_object(values: list) -> bool:
    return any(isinstance(v, dict) for v in values)


def _short(path: str, limit: int = 200) -> str:
    return path if len(path) <= limit else path[:limit] + "..."
