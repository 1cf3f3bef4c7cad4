"""Index names, validated as Elasticsearch validates them on every endpoint that names one.

The rules of ``MetadataCreateIndexService.validateIndexOrAliasName`` and
``validateIndexName``: not empty, none of ``Strings.INVALID_FILENAME_CHARS``
(``\\ / * ? " < > |``, space, comma), no ``#`` or ``:``, not starting with ``_``, ``-`` or
``+``, not ``.`` or ``..``, at most 255 bytes in UTF-8, lower case. Vigil also refuses
control characters (NUL included): they have no place in a name that is logged and shown.
"""

from __future__ import annotations

MAX_INDEX_NAME_BYTES = 255
_INVALID_CHARS = frozenset('\\/*?"<>| ,')
_SHOWN = '[\\, /, *, ?, ", <, >, |,  , ,]'  # as Elasticsearch prints INVALID_FILENAME_CHARS


class InvalidIndexName(ValueError):
    """``error()`` is Elasticsearch's ``invalid_index_name_exception`` for this name."""

    def __init__(self, name: str, why: str) -> None:
        shown = name if len(name) <= 300 else name[:300] + "..."
        super().__init__(f"Invalid index name [{_printable(shown)}], {why}")
        self.name = name

    def error(self) -> dict:
        return {
            "type": "invalid_index_name_exception",
            "reason": str(self),
            "index": _printable(self.name[:300]),
        }


def validate_index_name(name: object) -> str:
    """``name`` if Elasticsearch would accept it as an index name, else :class:`InvalidIndexName`."""
    if not isinstance(name, str):
        raise InvalidIndexName(str(name), "must be a string")
    if not name:
        raise InvalidIndexName(name, "must not be empty")
    if any(c in _INVALID_CHARS for c in name):
        raise InvalidIndexName(name, f"must not contain the following characters {_SHOWN}")
    if "#" in name:
        raise InvalidIndexName(name, "must not contain '#'")
    if ":" in name:
        raise InvalidIndexName(name, "must not contain ':'")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        raise InvalidIndexName(name, "must not contain control characters")
    if name[0] in "_-+":
        raise InvalidIndexName(name, "must not start with '_', '-', or '+'")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_INDEX_NAME_BYTES:
        raise InvalidIndexName(name, f"index name is too long, ({size} > {MAX_INDEX_NAME_BYTES})")
    if name in (".", ".."):
        raise InvalidIndexName(name, "must not be '.' or '..'")
    if name.lower() != name:
        raise InvalidIndexName(name, "must be lowercase")
    return name


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
