"""DISSECT patterns, as Elasticsearch's dissect parser reads them
(libs/dissect/src/main/java/org/elasticsearch/dissect/DissectParser.java).

A pattern is literal text and keys ``%{name}``. Matching walks the value once:
the text before the first key must start it, and each key takes the characters up
to the next occurrence of the delimiter that follows it (the last key takes the
rest). Modifiers: ``%{?name}`` and ``%{}`` are skipped keys, ``%{+name}`` appends
to ``name`` (joined by the append separator), ``name->`` skips repeated
delimiters after the key. A value that does not fit gives null for every key.
Each search is a ``str.find`` from the current place: linear in the value.
"""

from __future__ import annotations

import re

_KEY = re.compile(r"%\{([^}]*)\}")


class DissectError(ValueError):
    pass


class DissectPattern:
    def __init__(self, pattern: str, append_separator: str = "") -> None:
        self.pattern = pattern
        self.sep = append_separator
        matches = list(_KEY.finditer(pattern))
        if not matches:
            raise DissectError("Unable to find any keys or delimiters.")
        self.prefix = pattern[: matches[0].start()]
        # (name, kind, right padding, delimiter after the key)
        self.keys: list[tuple[str, str, bool, str]] = []
        for i, m in enumerate(matches):
            raw = m.group(1)
            end = matches[i + 1].start() if i + 1 < len(matches) else len(pattern)
            delim = pattern[m.end() : end]
            pad = raw.endswith("->")
            if pad:
                raw = raw[:-2]
            kind = "name"
            if raw == "" or raw.startswith("?"):
                kind = "skip"
                raw = raw[1:]
            elif raw.startswith("+"):
                kind = "append"
                raw = raw[1:].split("/", 1)[0]
            elif raw.startswith(("*", "&")):
                raise DissectError(f"reference keys ({raw}) are not supported")
            if i + 1 < len(matches) and not delim:
                raise DissectError("two keys must be separated by a delimiter")
            self.keys.append((raw, kind, pad, delim))
        self.names = list(dict.fromkeys(n for n, k, _, _ in self.keys if k != "skip"))

    def match(self, value: str) -> dict[str, str] | None:
        if not value.startswith(self.prefix):
            return None
        pos = len(self.prefix)
        out: dict[str, str] = {}
        for name, kind, pad, delim in self.keys:
            if delim:
                j = value.find(delim, pos)
                if j < 0:
                    return None
                piece = value[pos:j]
                pos = j + len(delim)
                if pad:
                    while value.startswith(delim, pos):
                        pos += len(delim)
            else:
                piece = value[pos:]
                pos = len(value)
            if kind == "name":
                out[name] = piece
            elif kind == "append":
                out[name] = out[name] + self.sep + piece if name in out else piece
        return out
