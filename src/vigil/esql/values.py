"""ES|QL values: how a document's fields become typed cells, and back to JSON.

A cell is ``None`` (null), one value, or a list of two or more values (a
multi-valued field). Values are Python objects of the ES|QL types: ``str``
(keyword, text), ``int`` (integer, long), ``float`` (double), ``bool``,
:class:`~vigil.eql.semantics.DateValue` (datetime, epoch milliseconds),
:class:`~vigil.eql.semantics.IpValue` (ip), :class:`~vigil.eql.semantics.VersionValue`
(version), :class:`GeoPoint` and :class:`~vigil.esql.tree.Span` (time spans).

Fields are typed by the mapping (ECS and Elastic's packages: :mod:`vigil.eql.ecs`)
and read as Elasticsearch reads them from doc values: a ``keyword`` field's values
sorted and de-duplicated, numbers, dates and ips sorted with their duplicates
(SortedSetDocValues / SortedNumericDocValues; "esql-multivalued-fields.md" in
Elasticsearch's ES|QL docs). ``text`` fields come from ``_source``, as written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vigil.eql import ecs
from vigil.eql.fields import _leaves, _prefixes, lookup, split_path
from vigil.eql.semantics import INVALID, DateValue, IpValue, VersionValue, convert, java_double_str, to_string

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

# ES|QL type names of the mapping types (EsqlDataTypes / DataType.fromEs).
_ES_TYPES = {
    "keyword": "keyword",
    "constant_keyword": "keyword",
    "wildcard": "keyword",
    "text": "text",
    "match_only_text": "text",
    "long": "long",
    "integer": "integer",
    "short": "integer",
    "byte": "integer",
    "unsigned_long": "unsigned_long",
    "double": "double",
    "float": "double",
    "half_float": "double",
    "scaled_float": "double",
    "date": "datetime",
    "date_nanos": "datetime",
    "ip": "ip",
    "version": "version",
    "boolean": "boolean",
    "geo_point": "geo_point",
}
NUMERIC = frozenset({"integer", "long", "double", "unsigned_long", "counter_long"})
WHOLE = frozenset({"integer", "long", "unsigned_long"})
STRING = frozenset({"keyword", "text"})
TEMPORAL = frozenset({"time_duration", "date_period"})


@dataclass(frozen=True, slots=True)
class GeoPoint:
    lon: float
    lat: float

    def __str__(self) -> str:
        return f"POINT ({java_double_str(self.lon)} {java_double_str(self.lat)})"


def field_type(name: str) -> str | None:
    """The ES|QL type of a mapped field; ``unsupported`` for types ES|QL cannot read
    (flattened, object, nested, ranges...); None when the mapping does not know it."""
    typ = ecs.mapping_type(name)
    if typ is None:
        return None
    return _ES_TYPES.get(typ, "unsupported")


def value_type(value: Any) -> str:
    """The ES|QL type a value of an unmapped field takes (dynamic mapping)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    return "keyword"


def read(doc: Any, name: str, typ: str | None) -> Any:
    """The cell of field ``name`` of a JSON document, read as type ``typ``."""
    raw = _one_path(doc, name)
    if raw is None:
        raw = lookup(doc, name)
    if not raw:
        return None
    if len(raw) == 1 and type(raw[0]) is str and typ in (None, "keyword", "text"):
        return raw[0]  # coerce's answer for a string as a string
    if typ is None:
        typ = value_type(raw[0])
    if typ == "unsupported":
        return None
    out = []
    for v in raw:
        c = coerce(v, typ)
        if c is not None:
            out.append(c)
    if not out:
        return None
    if len(out) == 1:
        return out[0]
    if typ == "keyword":
        return cell(sorted(set(out)))
    if typ != "text":
        try:
            out.sort()
        except TypeError:
            pass
    return out


_PATHS: dict[str, tuple[int, tuple]] = {}  # name -> (its parts, the keys to try at each)


def _one_path(doc: Any, name: str) -> list | None:
    """:func:`vigil.eql.fields.lookup`'s values when one key leads from each object to the
    next (the field held once, in objects, not in arrays of objects); None otherwise,
    where the general walk decides (values of several keys in document order)."""
    found = _PATHS.get(name)
    if found is None:
        if len(_PATHS) >= 8192:
            _PATHS.clear()
        parts = split_path(name)
        found = _PATHS[name] = (len(parts), _prefixes(parts))
    n, prefixes = found
    node = doc
    i = 0
    while i < n:
        if type(node) is not dict:
            return None
        found = None
        for key, j in prefixes[i]:
            if key in node:
                if found is not None:
                    return None
                found = key, j
        if found is None:
            return []
        node = node[found[0]]
        i = found[1]
    if node is None or type(node) is dict:
        return []
    if type(node) is list:
        out: list = []
        _leaves(node, out)
        return out
    return [node]


_CONVERT_AS = {"keyword": "keyword", "text": "keyword", "datetime": "date", "integer": "long"}


def coerce(value: Any, typ: str) -> Any:
    """One JSON value as a value of ES|QL type ``typ``; None when the type cannot hold it
    (Elasticsearch would have refused or ignored it at index time)."""
    if isinstance(value, (dict, list)):
        return None
    if typ == "geo_point":
        return to_geopoint(value)
    if typ == "double" and isinstance(value, bool):
        return None
    c = convert(value, _CONVERT_AS.get(typ, typ))
    if c is INVALID:
        return None
    if typ == "integer" and not INT_MIN <= c <= INT_MAX:
        return None
    if typ == "long" and not LONG_MIN <= c <= LONG_MAX:
        return None
    if typ == "double" and not math.isfinite(c):
        return None
    return c


def to_geopoint(value: Any) -> GeoPoint | None:
    if isinstance(value, GeoPoint):
        return value
    if isinstance(value, dict):
        lon, lat = value.get("lon"), value.get("lat")
    elif isinstance(value, str):
        text = value.strip()
        if text.upper().startswith("POINT"):
            inner = text[5:].strip()
            if not (inner.startswith("(") and inner.endswith(")")):
                return None
            parts = inner[1:-1].split()
            if len(parts) != 2:
                return None
            lon, lat = parts
        else:
            parts = text.split(",")
            if len(parts) != 2:
                return None
            lat, lon = parts
    else:
        return None
    try:
        lon, lat = float(lon), float(lat)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return None
    return GeoPoint(lon, lat)


def cell(values: list) -> Any:
    """A list of values as a cell: null, one value, or the list."""
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def values_of(c: Any) -> list:
    """Every value of a cell."""
    if c is None:
        return []
    return c if isinstance(c, list) else [c]


def to_json(value: Any) -> Any:
    """A value as the ES|QL REST API writes it in JSON."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, (DateValue, IpValue, VersionValue, GeoPoint)):
        return str(value)
    if isinstance(value, (int, float)):
        return value
    return str(value)


def to_text(value: Any) -> str | None:
    """A value as TO_STRING writes it."""
    return to_string(value)
