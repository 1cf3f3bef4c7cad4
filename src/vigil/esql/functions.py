"""ES|QL scalar functions, with Elasticsearch's null and multi-value rules.

Each function is described in Elasticsearch's docs
(docs/reference/query-languages/esql/_snippets/functions/description/<name>.md)
and implemented in x-pack/plugin/esql/src/main/java/.../expression/function/scalar.
Unless documented otherwise a function returns null when an argument is null, and
null (with the warning "single-value function encountered multi-value") when an
argument is multi-valued ("esql-multivalued-fields.md"). ``MV_*`` functions, the
``TO_*`` conversions (value by value), COALESCE and CASE take whole cells.
Arithmetic and conversion errors (overflow, a bad number) give null and a warning.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from vigil.eql.semantics import DateValue, IpValue, VersionValue, ip_bounds, to_epoch_millis
from vigil.esql.values import (
    INT_MAX,
    INT_MIN,
    LONG_MAX,
    LONG_MIN,
    GeoPoint,
    cell,
    to_geopoint,
    to_text,
    values_of,
)

MV_WARNING = "single-value function encountered multi-value"


class Warnings:
    """Warnings of one run, counted as Elasticsearch's response headers list them."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, message: str) -> None:
        self.counts[message] = self.counts.get(message, 0) + 1


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    min_args: int
    max_args: int | None  # None: any number
    impl: Callable[..., Any]
    returns: Callable[[list[str | None]], str | None]
    mode: str = "single"  # "single": null on multi-values; "cells": takes whole cells


def _fixed(t: str) -> Callable[[list], str]:
    return lambda types: t


def _first_type(types: list) -> str | None:
    return next((t for t in types if t not in (None, "null")), None)


# --- strings ---------------------------------------------------------------------------


def _length(s: str) -> int:
    # LENGTH counts code points (Length.java: UnicodeUtil.codePointCount).
    return len(s)


def _concat(*parts: str) -> str:
    return "".join(parts)


def _locate(s: str, sub: str, start: int | None = None) -> int:
    # Locate.java: 1-based; 0 when absent; start < 1 counts from the beginning.
    begin = 0 if start is None or start <= 1 else start - 1
    i = s.find(sub, begin)
    return 0 if i < 0 else i + 1


def _trim(s: str) -> str:
    # Trim.java strips leading and trailing whitespace (Character.isWhitespace).
    return s.strip(" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f")


def _space(n: int) -> str:
    if n < 0 or n > 1024 * 1024:
        raise ValueError("Number parameter must be between 0 and 1048576")
    return " " * n


def _url_decode(s: str) -> str:
    # UrlDecode.java: java.net.URLDecoder (``+`` is a space, bad escapes an error).
    i = 0
    while True:
        i = s.find("%", i)
        if i < 0:
            break
        part = s[i + 1 : i + 3]
        if len(part) < 2 or any(c not in "0123456789abcdefABCDEF" for c in part):
            raise ValueError("URLDecoder: Illegal hex characters in escape (%) pattern")
        i += 3
    return urllib.parse.unquote_plus(s, errors="replace")


def _from_base64(s: str) -> str:
    try:
        data = base64.b64decode(s.strip(), validate=False)
    except (binascii.Error, ValueError):
        raise ValueError("invalid base64") from None
    return data.decode("utf-8", errors="replace")


def _split(s: str, delim: str) -> Any:
    # Split.java: an empty delimiter is an error; the pieces, empty ones kept.
    if len(delim) != 1:
        raise ValueError("delimiter must be a single character")
    return cell(s.split(delim))


def _json_extract(s: Any, path: str) -> str | None:
    """JSON_EXTRACT (json_extract.md): the value at a dotted path (``a.b``, ``a[0]``) of
    a JSON text; a string value unquoted, any other value as JSON text."""
    if isinstance(s, dict):
        node: Any = s
    else:
        try:
            node = json.loads(s)
        except (ValueError, RecursionError):
            raise ValueError("invalid JSON input") from None
    for key, index in _json_path(path):
        if key is not None:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        if index is not None:
            if not isinstance(node, list) or index >= len(node):
                return None
            node = node[index]
    if node is None:
        return None
    if isinstance(node, str):
        return node
    if isinstance(node, bool):
        return "true" if node else "false"
    return json.dumps(node, separators=(",", ":"), ensure_ascii=False)


def _json_path(path: str) -> list[tuple[str | None, int | None]]:
    out: list[tuple[str | None, int | None]] = []
    p = path[2:] if path.startswith("$.") else path[1:] if path.startswith("$") else path
    for part in p.split("."):
        key, _, rest = part.partition("[")
        out.append((key or None, None))
        while rest:
            num, _, rest = rest.partition("]")
            if not num.isdigit():
                raise ValueError(f"invalid path [{path}]")
            out.append((None, int(num)))
            rest = rest[1:] if rest.startswith("[") else rest
    return out


# --- numbers --------------------------------------------------------------------------------


def _round(x: Any, decimals: int | None = None) -> Any:
    # Round.java: half up (Maths.round via BigDecimal HALF_UP), same type as the input.
    d = 0 if decimals is None else decimals
    if isinstance(x, int):
        if d >= 0:
            return x
        q = Decimal(x).quantize(Decimal(f"1e{-d}"), rounding=ROUND_HALF_UP)
        return int(q)
    if not math.isfinite(x):
        return x
    q = Decimal(repr(x)).quantize(Decimal(1).scaleb(-d), rounding=ROUND_HALF_UP)
    return float(q)


def check_integer(v: int, typ: str | None) -> int:
    lo, hi = (INT_MIN, INT_MAX) if typ == "integer" else (LONG_MIN, LONG_MAX)
    if not lo <= v <= hi:
        raise ArithmeticError(f"{typ or 'long'} overflow")
    return v


# --- conversions (value by value) ------------------------------------------------------------


def _to_string(v: Any) -> str:
    return to_text(v)


def _to_double(v: Any) -> float:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        f = float(v.strip())
        if not math.isfinite(f):
            raise ValueError(f"Cannot parse number [{v}]")
        return f
    raise ValueError("unsupported")


def _to_integral(v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        out = int(v)
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("out of range")
        out = int(v)  # safeDoubleToLong truncates... after a range check
    elif isinstance(v, str):
        s = v.strip()
        try:
            out = int(s)
        except ValueError:
            f = float(s)
            if not math.isfinite(f):
                raise ValueError(f"Cannot parse number [{v}]") from None
            out = int(f)
    else:
        raise ValueError("unsupported")
    if not lo <= out <= hi:
        raise ArithmeticError(f"[{v}] out of range")
    return out


def _to_ip(v: Any) -> IpValue:
    if isinstance(v, IpValue):
        return v
    if not isinstance(v, str):
        raise ValueError("unsupported")
    # TO_IP (default, "leading_zeros": "reject"): an address with a leading zero is refused.
    text = v.strip()
    if "." in text and any(len(p) > 1 and p.startswith("0") for p in text.rsplit(":", 1)[-1].split(".")):
        raise ValueError(f"'{v}' is not an IP string literal.")
    return IpValue(text)


def _to_datetime(v: Any) -> DateValue:
    if isinstance(v, DateValue):
        return v
    if isinstance(v, bool):
        raise ValueError("unsupported")
    if isinstance(v, (int, float)):
        return DateValue(int(v))
    ms = to_epoch_millis(v)
    if ms is None:
        raise ValueError(f"failed to parse date field [{v}]")
    return DateValue(ms)


def _to_boolean(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, str):
        return v.lower() == "true"  # Boolean.parseBoolean
    raise ValueError("unsupported")


def _to_geopoint(v: Any) -> GeoPoint:
    p = to_geopoint(v)
    if p is None:
        raise ValueError(f"cannot parse geo_point [{v}]")
    return p


def _to_version(v: Any) -> VersionValue:
    if isinstance(v, VersionValue):
        return v
    return VersionValue(str(v))


CONVERSIONS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "to_string": (_to_string, "keyword"),
    "to_double": (_to_double, "double"),
    "to_dbl": (_to_double, "double"),
    "to_long": (lambda v: _to_integral(v, LONG_MIN, LONG_MAX), "long"),
    "to_integer": (lambda v: _to_integral(v, INT_MIN, INT_MAX), "integer"),
    "to_int": (lambda v: _to_integral(v, INT_MIN, INT_MAX), "integer"),
    "to_ip": (_to_ip, "ip"),
    "to_datetime": (_to_datetime, "datetime"),
    "to_dt": (_to_datetime, "datetime"),
    "to_boolean": (_to_boolean, "boolean"),
    "to_bool": (_to_boolean, "boolean"),
    "to_geopoint": (_to_geopoint, "geo_point"),
    "to_version": (_to_version, "version"),
    "to_ver": (_to_version, "version"),
}
# ``::type`` casts (EsqlDataTypeConverter: the type names a cast takes).
CAST_FUNCTIONS = {
    "string": "to_string",
    "keyword": "to_string",
    "text": "to_string",
    "double": "to_double",
    "long": "to_long",
    "integer": "to_integer",
    "int": "to_integer",
    "ip": "to_ip",
    "datetime": "to_datetime",
    "date": "to_datetime",
    "boolean": "to_boolean",
    "bool": "to_boolean",
    "geo_point": "to_geopoint",
    "version": "to_version",
}


def convert_cell(name: str, c: Any, warn: Warnings) -> Any:
    fn = CONVERSIONS[name][0]
    out = []
    for v in values_of(c):
        try:
            out.append(fn(v))
        except (ValueError, ArithmeticError, OverflowError, TypeError) as exc:
            warn.add(f"{type(exc).__name__}: {exc}")
    return cell(out)


# --- multi-value functions (whole cells) ------------------------------------------------------


def _mv_first(c: Any) -> Any:
    return values_of(c)[0] if c is not None else None


def _mv_last(c: Any) -> Any:
    return values_of(c)[-1] if c is not None else None


def _mv_min(c: Any) -> Any:
    return min(values_of(c)) if c is not None else None


def _mv_max(c: Any) -> Any:
    return max(values_of(c)) if c is not None else None


def _mv_count(c: Any) -> int | None:
    return len(values_of(c)) if c is not None else None


def _mv_dedupe(c: Any) -> Any:
    return None if c is None else cell(list(dict.fromkeys(values_of(c))))


def _mv_concat(c: Any, delim: Any) -> Any:
    if c is None or delim is None or isinstance(delim, list):
        return None
    return delim.join(to_text(v) for v in values_of(c))


def _mv_slice(c: Any, start: Any, end: Any = None) -> Any:
    # MvSlice.java: inclusive end; negative positions count from the end.
    if c is None or start is None or isinstance(start, list) or isinstance(end, list):
        return None
    vals = values_of(c)
    n = len(vals)
    s = start + n if start < 0 else start
    e = s if end is None else (end + n if end < 0 else end)
    if (start < 0) != (end is not None and end < 0) and end is not None:
        raise ValueError("Start and end offset have to be both positive or both negative")
    if start > (end if end is not None else start):
        raise ValueError(f"Start offset is greater than end offset [start={start}, end={end}]")
    s = max(s, 0)
    return cell(vals[s : e + 1])


def _mv_sum(c: Any) -> Any:
    if c is None:
        return None
    vals = values_of(c)
    total = sum(vals)
    if isinstance(total, float) and not math.isfinite(total):
        raise ArithmeticError("double overflow")
    return total


def _mv_contains(sup: Any, sub: Any) -> bool | None:
    # mv_contains.md: whether every value of the second is a value of the first; a null
    # second argument is the empty set (true).
    have = set(values_of(sup))
    return all(v in have for v in values_of(sub))


def _mv_intersection(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    other = set(values_of(b))
    return cell(list(dict.fromkeys(v for v in values_of(a) if v in other)))


def _coalesce(*cells: Any) -> Any:
    for c in cells:
        if c is not None:
            return c
    return None


# --- ips, geo --------------------------------------------------------------------------------


def _cidr_match(ip: Any, *blocks: Any) -> bool:
    if not isinstance(ip, int):
        raise ValueError("not an ip")
    for block in blocks:
        for b in values_of(block):
            bounds = ip_bounds(str(b))
            if bounds is None:
                raise ValueError(f"invalid CIDR [{b}]")
            if bounds[0] <= ip <= bounds[1]:
                return True
    return False


# SpatialRelatesUtils / GeoUtils: Elasticsearch's mean earth radius in metres.
EARTH_RADIUS = 6_371_008.7714


def _st_distance(a: GeoPoint, b: GeoPoint) -> float:
    # StDistance.java: haversine on the mean earth radius.
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat = lat2 - lat1
    dlon = math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS * math.asin(min(1.0, math.sqrt(h)))


def _abs(x: Any) -> Any:
    return abs(x)


def _greatest(*xs: Any) -> Any:
    return max(xs)


def _least(*xs: Any) -> Any:
    return min(xs)


FUNCTIONS: dict[str, Function] = {}


def _add(name, lo, hi, impl, returns, mode="single"):
    FUNCTIONS[name] = Function(name, lo, hi, impl, returns if callable(returns) else _fixed(returns), mode)


_add("length", 1, 1, _length, "integer")
_add("concat", 2, None, _concat, "keyword")
_add("to_lower", 1, 1, str.lower, "keyword")
_add("to_upper", 1, 1, str.upper, "keyword")
_add("starts_with", 2, 2, str.startswith, "boolean")
_add("ends_with", 2, 2, str.endswith, "boolean")
_add("contains", 2, 2, lambda s, sub: sub in s, "boolean")
_add("locate", 2, 3, _locate, "integer")
_add("trim", 1, 1, _trim, "keyword")
_add("ltrim", 1, 1, lambda s: s.lstrip(" \t\n\x0b\x0c\r"), "keyword")
_add("rtrim", 1, 1, lambda s: s.rstrip(" \t\n\x0b\x0c\r"), "keyword")
_add("space", 1, 1, _space, "keyword")
_add(
    "substring",
    2,
    3,
    lambda s, a, n=None: s[max(a - 1, 0) : None if n is None else max(a - 1, 0) + n],
    "keyword",
)
_add("left", 2, 2, lambda s, n: s[: max(n, 0)], "keyword")
_add("right", 2, 2, lambda s, n: s[len(s) - n :] if n > 0 else "", "keyword")
_add("reverse", 1, 1, lambda s: s[::-1], "keyword")
_add("url_decode", 1, 1, _url_decode, "keyword")
_add("url_encode", 1, 1, lambda s: urllib.parse.quote_plus(s, safe="*"), "keyword")
_add("from_base64", 1, 1, _from_base64, "keyword")
_add("to_base64", 1, 1, lambda s: base64.b64encode(s.encode()).decode(), "keyword")
_add("split", 2, 2, _split, "keyword")
_add("json_extract", 2, 2, _json_extract, "keyword")
_add("round", 1, 2, _round, _first_type)
_add("abs", 1, 1, _abs, _first_type)
_add("greatest", 1, None, _greatest, _first_type)
_add("least", 1, None, _least, _first_type)
_add("cidr_match", 2, None, _cidr_match, "boolean")
_add("st_distance", 2, 2, _st_distance, "double")
_add("st_x", 1, 1, lambda p: p.lon, "double")
_add("st_y", 1, 1, lambda p: p.lat, "double")
_add("mv_first", 1, 1, _mv_first, _first_type, "cells")
_add("mv_last", 1, 1, _mv_last, _first_type, "cells")
_add("mv_min", 1, 1, _mv_min, _first_type, "cells")
_add("mv_max", 1, 1, _mv_max, _first_type, "cells")
_add("mv_count", 1, 1, _mv_count, "integer", "cells")
_add("mv_dedupe", 1, 1, _mv_dedupe, _first_type, "cells")
_add("mv_concat", 2, 2, _mv_concat, "keyword", "cells")
_add("mv_slice", 2, 3, _mv_slice, _first_type, "cells")
_add("mv_sum", 1, 1, _mv_sum, _first_type, "cells")
_add("mv_contains", 2, 2, _mv_contains, "boolean", "cells")
_add("mv_intersection", 2, 2, _mv_intersection, _first_type, "cells")
_add("coalesce", 1, None, _coalesce, _first_type, "cells")
for _name, (_fn, _type) in CONVERSIONS.items():
    _add(_name, 1, 1, _fn, _type, "convert")
# Evaluated by the evaluator itself: CASE (lazy), NOW (the run's time), the date
# functions (units), REPLACE (compiled patterns), KQL/MATCH (the document).
SPECIAL = {
    "case": (2, None),
    "now": (0, 0),
    "date_trunc": (2, 2),
    "date_diff": (3, 3),
    "date_extract": (2, 2),
    "replace": (3, 3),
    "kql": (1, 1),
    "match": (2, 3),
    "match_phrase": (2, 3),
}
AGGREGATES = {
    "count": (0, 1),
    "count_distinct": (1, 2),
    "values": (1, 1),
    "min": (1, 1),
    "max": (1, 1),
    "sum": (1, 1),
    "avg": (1, 1),
    "top": (3, 4),
    "first": (2, 2),
    "last": (2, 2),
    "median": (1, 1),
}
