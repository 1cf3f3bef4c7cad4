"""Field types, as an Elasticsearch index mapping gives them.

A :class:`Schema` answers three questions about a field name: its type
(``keyword``, ``long``, ``ip``, ``date``, ``version``...), the real field an
alias points to, and the ``null_value`` an explicit JSON null is indexed as.

``Schema.ecs()`` is the default: ECS types for ECS fields and Elasticsearch's
dynamic mapping for everything else (the value decides: strings keyword,
integers long, floats double), with the ``ignore_above`` of those mappings
(:mod:`vigil.eql.ecs`). ``Schema.from_mapping()`` is strict: a field the
mapping lacks is unknown, which the checker reports as ES does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vigil.eql import ecs
from vigil.eql.ecs import (  # noqa: F401 - the type families are part of this module's API
    DATE_TYPES,
    FLOAT_TYPES,
    INTEGER_TYPES,
    KEYWORD_TYPES,
    NUMERIC_TYPES,
    normalize_type,
)


class SchemaError(ValueError):
    """A mapping that cannot be read; names the file, line and column when known."""

    def __init__(
        self, message: str, file: str | None = None, line: int | None = None, column: int | None = None
    ):
        where = ":".join(str(x) for x in (file, line, column) if x is not None)
        super().__init__(f"{where}: {message}" if where else message)
        self.message, self.file, self.line, self.column = message, file, line, column


@dataclass
class Schema:
    """Field name -> type, with aliases and null values.

    ``strict`` is true for a schema read from a mapping: unknown fields are errors.
    """

    types: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    null_values: dict[str, Any] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    strict: bool = False
    use_ecs: bool = False
    long_values: bool = False
    # Types as the values come, as with no schema at all (see semantics.field_spec).
    untyped: bool = False
    # multi-field name -> (parent field, normalizer): see vigil.eql.multifields.
    multi_fields: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @classmethod
    def ecs(cls) -> Schema:
        """ECS types for ECS fields; dynamic mapping for the rest."""
        return cls(use_ecs=True)

    @classmethod
    def dynamic(cls) -> Schema:
        """No known types at all: every value is read as it comes."""
        return cls()

    @classmethod
    def from_mapping(cls, mapping: dict | str | Path) -> Schema:
        """Read an Elasticsearch mapping: ``{"properties": ...}`` or ``{"mappings": {...}}``.

        Accepts a dict, JSON text, or a path to a file; ``#`` comment lines are
        dropped (as Elasticsearch's test loader does).
        """
        source = None
        if isinstance(mapping, Path):
            source = str(mapping)
            try:
                mapping = mapping.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SchemaError(f"cannot read mapping: {exc}", source) from None
        if isinstance(mapping, str):
            # Blank out comment lines rather than drop them, so line numbers stay true.
            text = "\n".join("" if line.lstrip().startswith("#") else line for line in mapping.splitlines())
            try:
                mapping = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SchemaError(
                    f"mapping is not valid JSON: {exc.msg}", source, exc.lineno, exc.colno
                ) from None
        if not isinstance(mapping, dict):
            raise SchemaError("mapping must be a JSON object", source)
        mapping = _unwrap(mapping)
        schema = cls(strict=True)
        schema._read(mapping.get("properties", {}), "")
        return schema

    def _read(self, props: dict, prefix: str) -> None:
        for name, spec in props.items():
            full = prefix + name
            if not isinstance(spec, dict):
                continue
            typ = spec.get("type")
            if "properties" in spec and typ in (None, "object", "nested"):
                self._read(spec["properties"], full + ".")
                continue
            if typ == "alias":
                self.aliases[full] = spec.get("path", "")
                continue
            typ = normalize_type(typ or "object")
            self.types[full] = typ
            if "null_value" in spec:
                self.null_values[full] = spec["null_value"]
            if typ == "date" and isinstance(spec.get("format"), str):
                self.formats[full] = spec["format"]
            if typ == "keyword" and isinstance(spec.get("ignore_above"), int):
                self.limits[full] = spec["ignore_above"]
            for sub, subspec in (spec.get("fields") or {}).items():
                if not isinstance(subspec, dict):
                    continue
                subtype = normalize_type(subspec.get("type", "keyword"))
                self.types[f"{full}.{sub}"] = subtype
                normalizer = subspec.get("normalizer")
                self.multi_fields[f"{full}.{sub}"] = (
                    full,
                    normalizer if isinstance(normalizer, str) else None,
                )
                if subtype == "keyword" and isinstance(subspec.get("ignore_above"), int):
                    self.limits[f"{full}.{sub}"] = subspec["ignore_above"]
                    if typ == "text":
                        # exact matching on a text field uses this sub-field
                        self.limits.setdefault(full, subspec["ignore_above"])

    def add_dynamic(self, docs) -> Schema:
        """Map the fields these documents bring that the schema lacks, as
        Elasticsearch's dynamic mapping does when they are indexed: strings
        keyword (text with a keyword sub-field), integers long, floats double,
        booleans boolean. Returns the schema itself."""
        for doc in docs:
            self._dynamic(doc, "")
        return self

    def _dynamic(self, obj: Any, prefix: str) -> None:
        if isinstance(obj, list):
            for item in obj:
                self._dynamic(item, prefix)
            return
        if isinstance(obj, dict):
            for key, value in obj.items():
                self._dynamic(value, prefix + key + "." if isinstance(value, (dict, list)) else prefix + key)
            return
        name = prefix.rstrip(".")
        if not name or obj is None or name in self.types or name in self.aliases:
            return
        if isinstance(obj, bool):
            self.types[name] = "boolean"
        elif isinstance(obj, int):
            self.types[name] = "long"
        elif isinstance(obj, float):
            self.types[name] = "double"
        else:
            self.types[name] = "keyword"

    def resolve(self, name: str) -> str:
        """The field an alias points to (the name itself when it is no alias)."""
        seen = 0
        while name in self.aliases and seen < 16:
            name = self.aliases[name]
            seen += 1
        return name

    def field_type(self, name: str) -> str | None:
        """The type of a field, following aliases; None when the schema does not know it."""
        real = self.resolve(name)
        t = self.types.get(real)
        if t is None and self.use_ecs:
            t = ecs.ecs_type(real)
        return t

    def null_value(self, name: str) -> Any:
        """What an explicit JSON null in this field is indexed as (None: not indexed)."""
        return self.null_values.get(self.resolve(name))

    def date_format(self, name: str) -> str | None:
        """The mapping's ``format`` of a date field (``"dd-MM-yyyy"``...), if any."""
        return self.formats.get(self.resolve(name))

    def ignore_above(self, name: str) -> int | None:
        """Strings longer than this are not indexed (``ignore_above``), if set;
        never with ``long_values`` (match them anyway)."""
        if self.long_values:
            return None
        real = self.resolve(name)
        limit = self.limits.get(real)
        if limit is None and self.use_ecs:
            limit = ecs.ignore_above(real)
        return limit

    def matching_long_values(self) -> Schema:
        """This schema, but strings past ``ignore_above`` are matched as any other."""
        return replace(self, long_values=True)

    def multi_field(self, name: str) -> tuple[str, str | None] | None:
        """(parent field, normalizer) when the mapping indexes ``name`` as a multi-field."""
        return self.multi_fields.get(self.resolve(name))

    def knows(self, name: str) -> bool:
        """True when the field exists for this schema (always, when it is not strict)."""
        if not self.strict:
            return True
        real = self.resolve(name)
        return real in self.types


def _unwrap(mapping: dict) -> dict:
    """The object holding ``properties``: accepts an index template
    (``{"template": {"mappings": ...}}``), ``{"mappings": ...}``, a GET _mapping
    response (``{"index": {"mappings": ...}}``) and a 6.x typed mapping
    (``{"mappings": {"_doc": {"properties": ...}}}``)."""
    for _ in range(4):
        if not isinstance(mapping, dict) or "properties" in mapping:
            break
        for key in ("template", "mappings"):
            if key in mapping:
                mapping = mapping[key]
                break
        else:
            inner = [v for v in mapping.values() if isinstance(v, dict)]
            if len(inner) != 1:
                break
            mapping = inner[0]
    return mapping if isinstance(mapping, dict) else {}
