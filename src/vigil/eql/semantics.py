"""Elasticsearch's EQL semantics, each rule once, as a named function.

The compiler and the reference interpreter both call these; neither re-derives
a rule. Values are read as the field's mapped type (see :func:`convert`), an
array field matches when any value matches, a missing field makes a comparison
unknown (``None``), and the filter keeps only ``True``.

Two evaluation modes exist in Elasticsearch, and both show through:

* a condition on a field against literals becomes a Query DSL query: it looks
  at every value of the field, and ``not`` of it is its complement (a missing
  field satisfies ``not (x : "a*")`` and ``not (x > 1)``). ``x != 1`` is such a
  ``not``: ES builds a ``must_not`` term query, so it holds when x is missing
  and fails when any value of x is 1. Each comparison is its own query, also
  inside an ``and``: ``x == "a" and x == "b"`` matches ``["a", "b"]``;
* anything computed (functions, arithmetic, comparing computed values) runs as
  a script: it sees the field's first doc value (the smallest: doc values are
  sorted), null propagates, and ``not null`` stays null, so it filters out.

Only the rewrites of ES's EQL optimizer (x-pack/plugin/eql/.../optimizer/
Optimizer.java: the Substitution and Operator Optimization batches) show, and
no others: ``x == null`` is "x is missing" (:func:`is_null_literal`,
ReplaceNullChecks), ``f() == true`` is ``f()`` (:func:`simplify_bool_equals`,
BooleanFunctionEqualsElimination), ``not not x`` is ``x``
(:func:`simplify_not`, BooleanSimplification). QL's PropagateEquals and
CombineBinaryComparisons, which would merge same-field comparisons into one
range on one value, and the negation of comparisons are not in EQL's batches
since multi-valued fields (elastic/elasticsearch#74567).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from functools import lru_cache, total_ordering
from typing import Any

from vigil.eql import ast, ecs
from vigil.eql.dates import iso_from_millis, to_epoch_millis
from vigil.eql.ecs import ecs_type
from vigil.eql.fields import split_path
from vigil.eql.multifields import multi_field
from vigil.lucene.analysis import lowercase
from vigil.lucene.regexp import Regexp, RegexpError, compile_regexp
from vigil.lucene.wildcard import ascii_lower, compile_wildcard

# --- typed values ----------------------------------------------------------------


class DateValue(int):
    """Epoch milliseconds read from a ``date`` field; prints as ES prints a date."""

    __slots__ = ()

    def __str__(self) -> str:
        try:
            return iso_from_millis(int(self))
        except (ValueError, OverflowError, OSError):
            # Outside Python's years 1-9999: the epoch milliseconds themselves.
            return str(int(self))

    __repr__ = __str__


class DateRange:
    """A date literal with missing components (``"2017-08-30"``): the span of
    milliseconds it names. ES range queries round it per bound ("Missing date
    components" in the range query docs): ``gte``/``lt`` use its first
    millisecond, ``gt``/``lte`` its last, so ``==`` covers the whole span."""

    __slots__ = ("low", "high", "text")

    def __init__(self, low: int, high: int, text: str):
        self.low, self.high, self.text = low, high, text

    def __repr__(self) -> str:
        return f"DateRange({self.text!r})"

    def compare(self, op: str, v: int) -> bool:
        """``v op self`` for a date value v."""
        if op == "==":
            return self.low <= v <= self.high
        if op == "!=":
            return not self.low <= v <= self.high
        if op == "<":
            return v < self.low
        if op == "<=":
            return v <= self.high
        if op == ">":
            return v > self.high
        return v >= self.low


_PARTIAL_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?)?)?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)


def date_literal(text: str) -> DateValue | DateRange | None:
    """A date literal: an exact instant, or the span a partial date names."""
    try:
        return _date_literal(text)
    except (ValueError, OverflowError, OSError):
        return None


def _date_literal(text: str) -> DateValue | DateRange | None:
    m = _PARTIAL_DATE.match(text.strip())
    if m is None:
        ms = to_epoch_millis(text)
        return None if ms is None else DateValue(ms)
    year, month, day, hour, minute, second, frac, zone = m.groups()
    if frac is not None and len(frac) >= 3 or text.strip().lstrip("-").isdigit():
        ms = to_epoch_millis(text)
        return None if ms is None else DateValue(ms)
    from datetime import UTC, datetime, timedelta

    try:
        start = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0").ljust(6, "0")[:6]),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if month is None:
        end = start.replace(year=start.year + 1)
    elif day is None:
        end = start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    elif hour is None:
        end = start + timedelta(days=1)
    elif minute is None:
        end = start + timedelta(hours=1)
    elif second is None:
        end = start + timedelta(minutes=1)
    elif frac is None:
        end = start + timedelta(seconds=1)
    else:
        end = start + timedelta(milliseconds=10 ** (3 - len(frac)))
    offset = 0
    if zone not in (None, "Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 60 + int(digits[2:])) * 60_000
    low = int(start.timestamp() * 1000) - offset
    high = int(end.timestamp() * 1000) - offset - 1
    if low == high:
        return DateValue(low)
    return DateRange(low, high, text)


# Java DateTimeFormatter letters -> strptime directives, for mapping formats.
_JAVA_DATE = {
    "yyyy": "%Y",
    "uuuu": "%Y",
    "yy": "%y",
    "MM": "%m",
    "dd": "%d",
    "HH": "%H",
    "mm": "%M",
    "ss": "%S",
    "SSS": "%f",
    "SSSSSS": "%f",
    "XXX": "%z",
    "XX": "%z",
    "Z": "%z",
    "MMM": "%b",
    "EEE": "%a",
}
_JAVA_TOKEN = re.compile(r"'[^']*'|([a-zA-Z])\1*|.")


@lru_cache(maxsize=256)
def _strptime_pattern(java: str) -> str | None:
    out = []
    for m in _JAVA_TOKEN.finditer(java):
        tok = m.group(0)
        if tok.startswith("'"):
            out.append(tok[1:-1].replace("%", "%%"))
        elif tok[0].isalpha():
            if tok not in _JAVA_DATE:
                return None
            out.append(_JAVA_DATE[tok])
        else:
            out.append(tok.replace("%", "%%"))
    return "".join(out)


def parse_with_format(value: Any, fmt: str) -> int | None:
    """Epoch milliseconds of a date value under a mapping ``format``
    (``"dd-MM-yyyy||epoch_millis"``: the first format that reads it wins)."""
    from datetime import UTC, datetime

    for one in fmt.split("||"):
        one = one.strip()
        if one in ("epoch_millis", "epoch_second"):
            if isinstance(value, bool):
                continue
            if isinstance(value, (int, float)) or (
                isinstance(value, str) and NUMBER_TEXT.match(value.strip())
            ):
                n = float(value)
                return int(n * 1000) if one == "epoch_second" else int(n)
            continue
        if "date" in one and "_" in one or one in ("date", "date_time"):
            # strict_date_optional_time, date_optional_time, strict_date_time...: ISO 8601
            if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
                ms = to_epoch_millis(value)
                if ms is not None:
                    return ms
            continue
        pattern = _strptime_pattern(one)
        if pattern is None or not isinstance(value, str):
            continue
        try:
            dt = datetime.strptime(value.strip(), pattern)
        except ValueError:
            continue
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return round(dt.timestamp() * 1000)
    return None


# --- ip addresses ------------------------------------------------------------------
#
# An ip field holds every address on 16 bytes: Lucene's InetAddressPoint.encode
# writes an IPv4 address as its IPv4-mapped IPv6 form ::ffff:a.b.c.d (RFC 4291), and
# ES's IpFieldMapper indexes that. So "10.1.2.3" and "::ffff:10.1.2.3" are one value
# for equality, ``in``, ranges and CIDR blocks alike, in the document and in the
# query; InetAddressPoint.decode gives a mapped address back as IPv4.

_IPV4_MAPPED = 0xFFFF << 32
_PREFIX = re.compile(r"^[+-]?[0-9]+$")  # what Java's Integer.parseInt takes (ASCII digits)


def ip_key(text: str) -> int | None:
    """The address as the integer of its 16 bytes (IPv4 mapped into ::ffff:0:0/96),
    or None when ``text`` is not an address."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return int(addr) + _IPV4_MAPPED if addr.version == 4 else int(addr)


@lru_cache(maxsize=4096)
def ip_bounds(text: str) -> tuple[int, int] | None:
    """The first and last address (as :func:`ip_key`) that a term on an ip field
    takes: one address, or a CIDR block read as ES's InetAddresses.parseCidr does
    (``address/prefix``, prefix 0-32 after an IPv4 address and 0-128 after an IPv6 one,
    host bits ignored, and an IPv4-mapped address refused with a prefix, which would
    be ambiguous). None for what ES refuses."""
    if "/" not in text:
        key = ip_key(text)
        return None if key is None else (key, key)
    addr_text, _, prefix = text.partition("/")
    if "/" in prefix or not _PREFIX.match(prefix):
        return None
    try:
        addr = ipaddress.ip_address(addr_text)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return None
    bits = 32 if addr.version == 4 else 128
    n = int(prefix)
    if not 0 <= n <= bits:
        return None
    host = bits - n
    low = ip_key(addr_text) >> host << host
    return low, low | ((1 << host) - 1)


class IpRange(DateRange):
    """A CIDR block compared with an ip field: ES's term query on an ip field
    takes ``"10.0.0.0/8"`` and matches every address inside it (its 16-byte
    form: IpFieldMapper.termQuery, InetAddressPoint.newPrefixQuery)."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> IpRange | None:
        bounds = ip_bounds(text.strip())
        return None if bounds is None else cls(bounds[0], bounds[1], text)


class IpValue(int):
    """An IP address as its 16-byte integer (see :func:`ip_key`): an IPv4 address
    and its IPv4-mapped IPv6 form are one value, written as IPv4."""

    def __new__(cls, text: str) -> IpValue:
        addr = ipaddress.ip_address(text.strip())
        key = int(addr) + _IPV4_MAPPED if addr.version == 4 else int(addr)
        obj = super().__new__(cls, key)
        mapped = addr.ipv4_mapped if addr.version == 6 else None
        obj.text = str(mapped or addr)
        return obj

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


@lru_cache(maxsize=16384)
def _ip_value(text: str) -> IpValue | object:
    """``text`` read as an ip field (INVALID when it is not an address); join keys and
    comparisons read the same addresses again and again, and parsing one costs 30 us."""
    try:
        return IpValue(text)
    except ValueError:
        return INVALID


_VERSION_RE = re.compile(r"^(\d+)((?:\.\d+)*)(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$")


@total_ordering
class VersionValue:
    """A ``version`` field value: semantic ordering; invalid versions sort after
    valid ones, among themselves as plain strings (Elasticsearch's version type)."""

    __slots__ = ("text", "key")

    def __init__(self, text: str):
        self.text = text
        m = _VERSION_RE.match(text)
        if m is None:
            self.key: tuple = (1, text)
            return
        numbers = (int(m.group(1)), *(int(p) for p in m.group(2).split(".")[1:]))
        pre = m.group(3)
        # A pre-release sorts before its release; identifiers: numbers before words.
        pre_key = (
            (1,)
            if pre is None
            else (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
        )
        self.key = (0, numbers, pre_key)

    @property
    def valid(self) -> bool:
        return self.key[0] == 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VersionValue) and self.key == other.key

    def __lt__(self, other: VersionValue) -> bool:
        return self.key < other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


class Invalid:
    """Marker for a value a field's type cannot hold (ES would not index it)."""


INVALID = Invalid()

# A keyword field with Elasticsearch's ``lowercase`` normalizer (a ``caseless``
# multi-field): its values and every query term on it go through Lucene's
# LowerCaseFilter (:func:`vigil.lucene.analysis.lowercase`), then compare exactly.
CASELESS = "keyword:lowercase"

_INT_RE = re.compile(r"^[+-]?\d+$")
# A decimal number's text (digits taken possessively: a long run of digits and a stray
# character is one pass, never a backtrack); functions and the SQL path read it too.
NUMBER_TEXT = re.compile(r"^[+-]?(\d++(?:\.\d*+)?|\.\d++)([eE][+-]?\d++)?$")


def java_double_str(x: float) -> str:
    """``Double.toString``: plain between 1e-3 and 1e7, else scientific ``1.0E7``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        s = repr(x)
        if "e" in s or "E" in s:
            s = f"{x:.20f}".rstrip("0")
        return s if "." in s else s + ".0"
    mant, _, exp = f"{x:.17e}".partition("e")
    # Shortest mantissa that round-trips, as Java prints it.
    for digits in range(1, 18):
        cand = f"{x:.{digits - 1}e}"
        if float(cand) == x:
            mant, _, exp = cand.partition("e")
            break
    if "." not in mant:
        mant += ".0"
    return f"{mant}E{int(exp)}"


def to_string(value: Any) -> str | None:
    """A value as Elasticsearch's ``string()`` and ``concat()`` print it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double_str(value)
    if isinstance(value, (DateValue, IpValue, VersionValue)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return str(value)


def convert(value: Any, ftype: str | None) -> Any:
    """A JSON value read as a field of type ``ftype`` (None: dynamic, as it comes).

    Returns :data:`INVALID` when the type cannot hold it (a keyword field takes
    any scalar: JSON ``0`` is the keyword ``"0"``; a long field takes ``"10"``).
    """
    if ftype is None:
        return value
    if ftype == CASELESS:
        c = convert(value, "keyword")
        return c if c is INVALID else lowercase(c)
    if ftype in ("keyword", "text"):
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            # ES keeps a JSON number's source text; Python's repr matches it for plain numbers.
            return repr(value)
        return str(value) if isinstance(value, int) else INVALID
    if ftype == "long":
        if isinstance(value, bool):
            return INVALID
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value) if math.isfinite(value) else INVALID
        if isinstance(value, str):
            s = value.strip()
            if _INT_RE.match(s):
                return int(s)
            if NUMBER_TEXT.match(s):
                return int(float(s))
        return INVALID
    if ftype == "double":
        if isinstance(value, bool):
            return INVALID
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and NUMBER_TEXT.match(value.strip()):
            return float(value)
        return INVALID
    if ftype == "date":
        if isinstance(value, DateValue):
            return value
        ms = to_epoch_millis(value)
        return INVALID if ms is None else DateValue(ms)
    if ftype.startswith("date:"):
        if isinstance(value, DateValue):
            return value
        ms = parse_with_format(value, ftype[5:])
        return INVALID if ms is None else DateValue(ms)
    if ftype == "ip":
        if isinstance(value, IpValue):
            return value
        if not isinstance(value, str):
            return INVALID
        return _ip_value(value) if len(value) <= 64 else _ip_value.__wrapped__(value)
    if ftype == "version":
        if isinstance(value, VersionValue):
            return value
        return VersionValue(value) if isinstance(value, str) else INVALID
    if ftype == "boolean":
        if isinstance(value, bool):
            return value
        if value == "true":
            return True
        if value in ("false", ""):
            return False
        return INVALID
    return value


# --- reading fields ---------------------------------------------------------------


def field_values(
    doc: Any,
    path: tuple[str, ...],
    ftype: str | None = None,
    null_value: Any = None,
    limit: int | None = None,
) -> list:
    """Every value of a field, read as its type; invalid values are dropped.

    With a mapping ``null_value``, an explicit JSON null counts as that value.
    With ``limit`` (``ignore_above``), longer strings are dropped: ES does not
    index them, so no query or script sees them.
    """
    raw = _lookup(doc, path, null_value is not None)
    if null_value is not None:
        raw = [null_value if v is None else v for v in raw]
    if ftype is None and limit is None:
        return raw
    out = []
    for v in raw:
        c = convert(v, ftype)
        if c is INVALID or (limit is not None and type(c) is str and too_long(c, limit)):
            continue
        out.append(c)
    return out


def too_long(value: str, limit: int) -> bool:
    """Whether ``ignore_above: limit`` keeps this string out of the index: ES
    compares Java's ``String.length()``, UTF-16 code units (KeywordFieldMapper,
    WildcardFieldMapper, FlattenedFieldParser), so a character outside the BMP
    counts two. Such a value is not indexed, has no doc value, and the fields
    API drops it: queries, scripts and sequence keys all see it missing, though
    ``_source`` (so the alert) keeps it."""
    n = len(value)
    if n > limit:
        return True
    if 2 * n <= limit:
        return False
    return len(value.encode("utf-16-le", "surrogatepass")) > 2 * limit


def indexed(values: list, limit: int | None) -> list:
    """The values ES indexes under ``ignore_above: limit`` (each judged alone)."""
    if limit is None:
        return values
    safe = limit // 2
    for v in values:
        if type(v) is str and len(v) > safe:
            return [v for v in values if type(v) is not str or not too_long(v, limit)]
    return values


@lru_cache(maxsize=4096)
def _prefixes(parts: tuple[str, ...]) -> tuple:
    n = len(parts)
    return tuple(tuple((".".join(parts[i:j]), j) for j in range(n, i, -1)) for i in range(n))


def _lookup(doc: Any, parts: tuple[str, ...], keep_nulls: bool) -> list:
    """Leaf values of a dotted path, as :func:`vigil.eql.fields.lookup`, optionally keeping nulls."""
    out: list = []
    if len(parts) == 1 and isinstance(doc, dict):
        # Fast path: a top-level key holding a scalar.
        v = doc.get(parts[0], _MISSING)
        if v is _MISSING:
            return out
        if v is None:
            if keep_nulls:
                out.append(None)
            return out
        if not isinstance(v, (dict, list)):
            out.append(v)
            return out
    _collect(doc, parts, _prefixes(parts), 0, out, keep_nulls)
    return out


_MISSING = object()


def _collect(obj: Any, parts: tuple, prefixes: tuple, i: int, out: list, keep_nulls: bool) -> None:
    if i == len(parts):
        _leaves(obj, out, keep_nulls)
        return
    if isinstance(obj, list):
        for item in obj:
            _collect(item, parts, prefixes, i, out, keep_nulls)
        return
    if not isinstance(obj, dict):
        return
    for key, j in prefixes[i]:
        if key in obj:
            _collect(obj[key], parts, prefixes, j, out, keep_nulls)


def _leaves(obj: Any, out: list, keep_nulls: bool) -> None:
    if obj is None:
        if keep_nulls:
            out.append(None)
        return
    if isinstance(obj, dict):
        return
    if isinstance(obj, list):
        for item in obj:
            _leaves(item, out, keep_nulls)
        return
    out.append(obj)


def script_value(values: list) -> Any:
    """The value a script sees for a field: the first doc value, i.e. the smallest
    (doc values are sorted), or None when the field is missing."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    try:
        return min(values, key=_sort_key)
    except TypeError:
        return values[0]


def _sort_key(v: Any) -> Any:
    # Keywords sort by their UTF-8 bytes in Lucene.
    return v.encode("utf-8", "surrogatepass") if isinstance(v, str) else v


def as_field_value(values: list) -> Any:
    """A field's values as one value: None when missing, the value, or the list."""
    if not values:
        return None
    return values[0] if len(values) == 1 else list(values)


# --- comparing ---------------------------------------------------------------------


def literal_as(value: Any, ftype: str | None) -> Any:
    """A query literal read as the type of the field it is compared with.

    Returns the literal unchanged when the type cannot take it (the comparison
    then falls back to :func:`align`). A number compared with a date field is
    epoch milliseconds; a string is parsed as the field's date, ip or version.
    """
    if value is None or ftype is None:
        return value
    if ftype in ("keyword", "text"):
        # A term query on a keyword field searches the literal's text: 123 is "123".
        return value if isinstance(value, str) else to_string(value)
    if ftype == CASELESS:
        # The normalizer runs on the query's term too (KeywordFieldType.indexedValueForSearch).
        return lowercase(value if isinstance(value, str) else to_string(value))
    if ftype in ("long", "double"):
        if isinstance(value, str):
            c = convert(value, "double" if not _INT_RE.match(value.strip()) else "long")
            return value if c is INVALID else c
        return value
    if ftype.startswith("date:") and isinstance(value, str):
        ms = parse_with_format(value, ftype[5:])
        if ms is not None:
            return DateValue(ms)
        ftype = "date"
    if ftype == "date" and isinstance(value, str):
        d = date_literal(value)
        return value if d is None else d
    if ftype == "ip" and isinstance(value, str) and "/" in value:
        r = IpRange.parse(value)
        return value if r is None else r
    c = convert(value, ftype)
    return value if c is INVALID else c


def align(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Two values brought to one comparable type, or None when they cannot be compared.

    Typed values (date, ip, version) parse the other side; a string and a number
    (dynamic fields) compare as numbers when the string is one, else as strings.
    """
    ta, tb = type(a), type(b)
    if ta is tb and ta is not Invalid:
        return a, b
    if isinstance(a, bool) or isinstance(b, bool):
        if isinstance(a, bool) and isinstance(b, bool):
            return a, b
        other, flag = (b, a) if isinstance(a, bool) else (a, b)
        c = convert(other, "boolean")
        if c is INVALID:
            return None
        return (flag, c) if isinstance(a, bool) else (c, flag)
    for typed, ftype in ((DateValue, "date"), (IpValue, "ip"), (VersionValue, "version")):
        if isinstance(a, typed) or isinstance(b, typed):
            if isinstance(a, typed) and isinstance(b, typed):
                return a, b
            if isinstance(a, typed):
                c = convert(b, ftype)
                return None if c is INVALID else (a, c)
            c = convert(a, ftype)
            return None if c is INVALID else (c, b)
    num_a = isinstance(a, (int, float))
    num_b = isinstance(b, (int, float))
    if num_a and num_b:
        return a, b
    if num_a and isinstance(b, str):
        n = convert(b, "double")
        return (a, n) if n is not INVALID else (to_string(a), b)
    if num_b and isinstance(a, str):
        n = convert(a, "double")
        return (n, b) if n is not INVALID else (a, to_string(b))
    return None


def compare(op: str, a: Any, b: Any) -> bool | None:
    """``a op b`` for two present values; None (unknown) when either is null or
    they cannot be compared."""
    if a is None or b is None:
        return None
    if isinstance(b, DateRange) or isinstance(a, DateRange):
        return _compare_range(op, a, b)
    pair = align(a, b)
    if pair is None:
        return None if op not in ("==", "!=") else op == "!="
    x, y = pair
    # (Lucene orders keyword terms by UTF-8 bytes; Python's code point order agrees.)
    try:
        if op == "==":
            return x == y
        if op == "!=":
            return x != y
        if op == "<":
            return x < y
        if op == "<=":
            return x <= y
        if op == ">":
            return x > y
        if op == ">=":
            return x >= y
    except TypeError:
        return None
    raise ValueError(f"unknown comparison {op}")


def field_compare(op: str, values: list, lit: Any, lit_first: bool = False) -> bool | None:
    """A field against a constant, as the Query DSL query ES builds for it.

    ``<``, ``<=``, ``==``... match when any value does, and are unknown on a
    missing field. ``!=`` is ``not ==`` (ES translates it to a ``must_not``
    term query: QL's ExpressionTranslators.BinaryComparisons), so it holds on
    a missing field and fails when any value is equal.
    """
    if lit is None:
        return None
    if op == "!=":
        for v in values:
            if compare("==", v, lit) is True:
                return False
        return True
    if lit_first:
        return any_true(compare(op, lit, v) for v in values)
    return any_true(compare(op, v, lit) for v in values)


_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _compare_range(op: str, a: Any, b: Any) -> bool | None:
    if isinstance(a, DateRange):
        if isinstance(b, DateRange):
            return None
        return _compare_range(_FLIP[op], b, a)
    if isinstance(b, IpRange):
        v = a if isinstance(a, IpValue) else convert(a, "ip")
    else:
        v = a if isinstance(a, DateValue) else convert(a, "date")
    return None if v is INVALID else b.compare(op, v)


def equals_insensitive(a: Any, b: Any) -> bool | None:
    """Case-insensitive equality of a field's value with a constant (``:``, ``in~``):
    EQL's QueryTranslator makes it a ``term`` query with ``case_insensitive``, an
    automaton that folds ASCII letters only (AutomatonQueries.toCaseInsensitiveChar,
    ES 7.10 to 9.x; Elasticsearch's main branch folds all of Unicode since
    elastic/elasticsearch#153513, not yet released)."""
    if a is None or b is None:
        return None
    if isinstance(a, str) and isinstance(b, str):
        return ascii_lower(a) == ascii_lower(b)
    return compare("==", a, b)


def script_equals_insensitive(a: Any, b: Any) -> bool | None:
    """``:`` and ``in~`` on a computed value, a script: EQL's StringComparisons.
    insensitiveEquals, Java's ``String.compareToIgnoreCase`` (code point by code
    point, equal when their upper cases or the lower cases of those are)."""
    if a is None or b is None:
        return None
    if isinstance(a, str) and isinstance(b, str):
        if a == b:
            return True
        if len(a) != len(b):
            return False
        return all(x == y or _ci_char(x) == _ci_char(y) for x, y in zip(a, b, strict=True))
    return compare("==", a, b)


@lru_cache(maxsize=4096)
def _ci_char(c: str) -> str:
    """A code point as compareToIgnoreCase compares it: Character.toLowerCase of
    Character.toUpperCase (simple, one-to-one mappings)."""
    up = c.upper()
    up = up if len(up) == 1 else c  # ß -> SS is no simple mapping: ß stays
    return lowercase(up)


def any_true(results) -> bool | None:
    """Over the values of a multi-valued field: True if any is, else False if any
    value was compared, else None (no value)."""
    seen = False
    for r in results:
        if r is True:
            return True
        if r is False:
            seen = True
    return False if seen else None


# --- three-valued logic ------------------------------------------------------------


def and3(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def or3(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def not3(a: bool | None) -> bool | None:
    return None if a is None else not a


def keeps(result: Any) -> bool:
    """A filter keeps an event only when its condition is exactly true."""
    return result is True


def is_query_condition(expr: ast.Expr, schema=None) -> bool:
    """True when Elasticsearch turns this condition into a Query DSL query, whose
    ``not`` is its complement (a missing field then satisfies ``not``); false for
    a script (functions, arithmetic), whose ``not null`` stays null (QL's
    ExpressionTranslators.Nots: ``not`` of a ScriptQuery stays a script, of any
    other query a ``bool`` ``must_not``).

    A comparison with an optional field the mapping lacks is no query either: ES
    replaces the field with null and folds the condition to a constant
    (ConstantFolding), so ``not (?absent > 1)`` is null, not true."""
    match expr:
        case ast.And() | ast.Or():
            return True
        case ast.Not(expr=e):
            return is_query_condition(e, schema)
        case ast.Literal() | ast.Field():
            return True
        case ast.Comparison() if (simpler := simplify_bool_equals(expr)) is not None:
            return is_query_condition(simpler, schema)
        case ast.Comparison(left=l, right=r):
            fld, other = (l, r) if isinstance(l, ast.Field) else (r, l)
            return _queried(fld, schema) and is_constant(other)
        case ast.Pattern(value=v, patterns=ps) | ast.In(value=v, items=ps):
            return _queried(v, schema) and all(is_constant(p) for p in ps)
        case ast.FunctionCall():
            return is_query_function(expr)
    return False


def _queried(expr: ast.Expr, schema) -> bool:
    """A field a query can search: not an optional field ES replaced with null."""
    return isinstance(expr, ast.Field) and not is_null_literal(expr, schema)


def simplify_not(inner: ast.Expr) -> ast.Expr | None:
    """What ES's optimizer makes of ``not inner``: a double ``not`` cancels (QL
    BooleanSimplification.simplifyNot). Nothing else: EQL's
    EqlBooleanSimplification overrides maybeSimplifyNegatable to return null
    (Optimizer.java), so ``not (x > 1)`` is not ``x <= 1`` but the ``must_not``
    of the range query, true on a missing x and false on ``[0, 10]``.
    None when ``not`` stays a ``not``."""
    if isinstance(inner, ast.Not):
        return inner.expr
    return None


def flatten_and(terms) -> list[ast.Expr]:
    """The terms of nested ``and``s as one list (QL's Predicates.splitAnd). Each
    term is then its own query: ES's EQL optimizer runs neither PropagateEquals
    nor CombineBinaryComparisons (Optimizer.java, "Operator Optimization"), so
    any value of an array may satisfy each comparison of the same field."""
    out: list[ast.Expr] = []
    for t in terms:
        if isinstance(t, ast.And):
            out.extend(flatten_and(t.terms))
        else:
            out.append(t)
    return out


# What QL calls a Function: calls, and every operator (BinaryComparison, RegexMatch,
# In, Not, And, Or are ScalarFunctions); not a field or a literal.
_QL_FUNCTIONS = (ast.FunctionCall, ast.Comparison, ast.Pattern, ast.In, ast.Not, ast.And, ast.Or)


def simplify_bool_equals(cmp: ast.Comparison) -> ast.Expr | None:
    """``f(...) == true`` is ``f(...)``, ``f(...) == false`` is ``not f(...)``
    (and ``!=`` the other way round), for a function or a condition on either
    side: QL's BooleanFunctionEqualsElimination (any ``Function`` on the left),
    after LiteralsOnTheRight, both in EQL's operator batch (Optimizer.java). So
    ``cidrMatch(ip, "10.0.0.0/8") == true`` runs as the query on every value and
    ``(x == 1) == false`` is the ``must_not`` of the term query; ``b == true`` on
    a boolean field stays a term query."""
    if cmp.op not in ("==", "!="):
        return None
    fn, lit = cmp.left, cmp.right
    if isinstance(fn, ast.Literal):
        fn, lit = lit, fn
    if (
        not isinstance(fn, _QL_FUNCTIONS)
        or not isinstance(lit, ast.Literal)
        or not isinstance(lit.value, bool)
    ):
        return None
    if lit.value == (cmp.op == "=="):
        return fn
    return ast.Not(fn, loc=cmp.loc)


def is_query_function(expr: ast.Expr) -> bool:
    """A function ES runs as a query on its first argument, a field, against
    constants: it matches when any value of the field does."""
    return (
        isinstance(expr, ast.FunctionCall)
        and expr.name.lower() in QUERY_FUNCTIONS
        and bool(expr.args)
        and isinstance(expr.args[0], ast.Field)
        and all(is_constant(a) for a in expr.args[1:])
    )


def is_constant(expr: ast.Expr) -> bool:
    """True when the expression reads no field (ES folds it to a literal)."""
    return not any(isinstance(n, ast.Field) for n in ast.walk(expr))


# Functions ES turns into a query on a field (prefix, wildcard, terms on an ip),
# which therefore match when any value of a multi-valued field does.
QUERY_FUNCTIONS = frozenset({"startswith", "endswith", "stringcontains", "cidrmatch"})
# KQL's queries on an analysed (text) field, which no EQL text can name (vigil.kql.translate).
TEXT_QUERY_FUNCTIONS = frozenset({"text.match", "text.match_phrase", "text.wildcard"})
QUERY_FUNCTIONS |= TEXT_QUERY_FUNCTIONS


def query_function_match(name: str, value: Any, args: list, insensitive: bool) -> bool | None:
    """One value of a field under the query ES builds for ``name(field, constants)``
    (EQL's QueryTranslator): startsWith a prefix query; endsWith and stringContains
    a wildcard query ``*s`` / ``*s*`` (so ``*``, ``?`` and ``\\`` in ``s`` act as
    Lucene wildcard syntax, and ``stringContains(x, "")`` matches any value);
    cidrMatch a terms query on the ip field."""
    if value is None or any(a is None for a in args):
        return None
    lname = name.lower()
    if lname in TEXT_QUERY_FUNCTIONS:
        from vigil.eql.functions import call

        return call(lname, [value, *args])
    if lname == "cidrmatch":
        from vigil.eql.functions import fn_cidr_match

        return fn_cidr_match(to_string(value), *args)
    text = value if isinstance(value, str) else to_string(value)
    arg = args[0] if isinstance(args[0], str) else to_string(args[0])
    if lname == "startswith":
        # A case-insensitive prefix query folds ASCII letters only (AutomatonQueries).
        return ascii_lower(text).startswith(ascii_lower(arg)) if insensitive else text.startswith(arg)
    pattern = "*" + arg + ("*" if lname == "stringcontains" else "")
    return compile_wildcard(pattern, insensitive, escapes=True)(text)


# --- wildcards and regular expressions ---------------------------------------------


def has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def wildcard_match(value: Any, pattern: str, insensitive: bool) -> bool | None:
    """``value : pattern`` / ``like`` / ``like~`` for one value and one pattern: ``*``
    any run of characters, ``?`` one, newlines included, the whole value; no escape
    character (``\\`` is literal); ASCII letters folded when insensitive, as ES's
    case-insensitive wildcard and term queries do. Linear in the value."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = to_string(value)
    return compile_wildcard(pattern, insensitive)(value)


RegexSyntaxError = RegexpError


def lucene_regex(pattern: str, insensitive: bool) -> Regexp:
    """A Lucene regular expression as ES's ``regexp`` query reads it (whole value,
    ``.`` matching newlines, ``@``, ``#``, ``<n-m>``, ...), run by an automaton in time
    linear in the value (:mod:`vigil.lucene.regexp`). Raises RegexSyntaxError (with
    the position) for what ES refuses, and for ``~`` and ``&``."""
    return compile_regexp(pattern, insensitive)


def regex_match(value: Any, pattern: str, insensitive: bool) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = to_string(value)
    return lucene_regex(pattern, insensitive).fullmatch(value)


# --- arithmetic --------------------------------------------------------------------


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def arithmetic(op: str, a: Any, b: Any) -> Any:
    """See :func:`_arithmetic`; a long overflow or a float error gives null (ES
    uses Math.addExact and friends, which fail the query instead)."""
    try:
        r = _arithmetic(op, a, b)
    except (OverflowError, ValueError, ZeroDivisionError):
        return None
    if isinstance(r, int) and not _LONG_MIN <= r <= _LONG_MAX:
        return None
    return r


def _arithmetic(op: str, a: Any, b: Any) -> Any:
    """``a op b`` as Java does it: integers stay integers, ``/`` truncates toward
    zero and ``%`` takes the dividend's sign; null in, null out; division by
    zero gives null."""
    if a is None or b is None or not is_number(a) or not is_number(b):
        return None
    a = int(a) if isinstance(a, int) else a
    b = int(b) if isinstance(b, int) else b
    ints = isinstance(a, int) and isinstance(b, int)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            return None
        if ints:
            q = abs(a) // abs(b)
            return q if (a >= 0) == (b >= 0) else -q
        return a / b
    if op == "%":
        if b == 0:
            return None
        if ints:
            r = abs(a) % abs(b)
            return r if a >= 0 else -r
        return math.fmod(a, b)
    raise ValueError(f"unknown operator {op}")


def negate(a: Any) -> Any:
    return -a if is_number(a) else None


def path_of(name: str) -> tuple[str, ...]:
    return split_path(name)


# --- fields through a schema -------------------------------------------------------


class FieldSpec(tuple):
    """How to read one field reference: (path, type, null_value, absent, limit).

    ``absent`` is true for an optional ``?field`` the mapping does not have: ES
    replaces it with a null literal. ``limit`` is the mapping's ``ignore_above``.
    """

    __slots__ = ()

    def __new__(cls, path, ftype, null_value, absent, limit=None):
        return super().__new__(cls, (path, ftype, null_value, absent, limit))

    path = property(lambda self: self[0])
    ftype = property(lambda self: self[1])
    null_value = property(lambda self: self[2])
    absent = property(lambda self: self[3])
    limit = property(lambda self: self[4])


def field_spec(fld: ast.Field, schema) -> FieldSpec:
    """Resolve a field reference: aliases followed, type and null value found; a
    multi-field reads its parent's values (:mod:`vigil.eql.multifields`)."""
    name = fld.name
    multi = multi_field(name, schema)
    if multi is not None:
        return _multi_field_spec(fld, multi[0], multi[1], schema)
    if schema is None or getattr(schema, "untyped", False):
        # Untyped, but an address is an address: a field every Elastic mapping types
        # ip (ECS, the integrations) compares on 16 bytes, as Elasticsearch indexes it.
        # Strings past the mapping's ignore_above are not indexed, typed or not.
        limit = None if getattr(schema, "long_values", False) else ecs.ignore_above(name)
        return FieldSpec(fld.path, "ip" if ecs_type(name) == "ip" else None, None, False, limit)
    real = schema.resolve(name)
    absent = fld.optional and not schema.knows(name)
    path = split_path(real) if real != name else fld.path
    ftype = schema.field_type(name)
    if ftype == "date":
        fmt = getattr(schema, "date_format", lambda n: None)(name)
        if fmt:
            # The format travels with the type: "date:dd-MM-yyyy".
            ftype = "date:" + fmt
    limit = getattr(schema, "ignore_above", lambda n: None)(name)
    return FieldSpec(path, ftype, schema.null_value(name), absent, limit)


def _multi_field_spec(fld: ast.Field, parent: str, normalizer: str | None, schema) -> FieldSpec:
    """A multi-field: its parent's values (the document never holds the sub-field's
    own key), read as the sub-field's type (``keyword``, :data:`CASELESS`, ``text``)
    with the sub-field's ``ignore_above``, never the parent's: ES runs the multi-fields
    on every value the parent reads, indexed by the parent or not."""
    name = fld.name
    if schema is None or getattr(schema, "untyped", False):
        ftype = ecs_type(name)
        limit = None if getattr(schema, "long_values", False) else ecs.ignore_above(name)
        real = parent
        absent = False
    else:
        ftype = schema.field_type(name)
        limit = getattr(schema, "ignore_above", lambda n: None)(name)
        real = schema.resolve(parent)
        absent = fld.optional and not schema.knows(name)
    if ftype not in ("keyword", "text"):
        ftype = "keyword"  # a string type the table does not name: exact text
    if ftype == "keyword" and normalizer == "lowercase":
        ftype = CASELESS
    return FieldSpec(split_path(real), ftype, None, absent, limit)


def is_null_literal(expr: ast.Expr, schema) -> bool:
    """Null as ES's optimizer sees it: a null literal, a constant expression
    that folds to null (``concat("a", null)``), or an optional field the mapping
    lacks. ``x == <that>`` is then "x is null" (EQL's ReplaceNullChecks)."""
    if isinstance(expr, ast.Literal):
        return expr.value is None
    if isinstance(expr, ast.Field):
        return expr.optional and schema is not None and not schema.knows(expr.name)
    if is_constant(expr):
        from vigil.eql.interpreter import evaluate

        return evaluate(expr, None, schema) is None
    return False


def pattern_match(op: str, value: Any, pattern: Any, script: bool = False) -> bool | None:
    """One value against one pattern of ``:``, ``like``, ``like~``, ``regex``, ``regex~``.

    On a field (a query: wildcard, term or regexp with ``case_insensitive``) letters
    fold as ASCII; ``script`` is a computed value, where ``:`` without wildcards is
    :func:`script_equals_insensitive`."""
    if value is None or pattern is None:
        return None
    if op in ("regex", "regex~"):
        return regex_match(value, to_string(pattern), op == "regex~")
    insensitive = op != "like"
    if isinstance(pattern, str):
        if script and insensitive and isinstance(value, str) and not has_wildcard(pattern):
            return script_equals_insensitive(value, pattern)
        if isinstance(value, str) or has_wildcard(pattern):
            return wildcard_match(value, pattern, insensitive)
        return equals_insensitive(value, pattern) if insensitive else compare("==", value, pattern)
    return compare("==", value, pattern)


def in_match(value: Any, item: Any, insensitive: bool, script: bool = False) -> bool | None:
    """One value against one item of ``in`` / ``in~`` (no wildcards); ``script``: a
    computed value (see :func:`pattern_match`)."""
    if insensitive:
        return script_equals_insensitive(value, item) if script else equals_insensitive(value, item)
    return compare("==", value, item)


def normalize_pattern(pattern: Any, ftype: str | None) -> Any:
    """A constant of a pattern or query function on a field of type ``ftype``: the
    normalizer of a ``caseless`` field runs on it too (StringFieldType.wildcardQuery
    normalizes a pattern's text, prefix and regexp queries take indexedValueForSearch)."""
    if ftype == CASELESS and isinstance(pattern, str):
        return lowercase(pattern)
    return pattern


def is_cidr(text: str) -> bool:
    """Whether text is an address or a CIDR block (host bits allowed) that an ip
    term query takes (see :func:`ip_bounds`)."""
    return ip_bounds(text) is not None


def make_lookup(
    parts: tuple[str, ...], keyword: bool = False, limit: int | None = None
) -> Callable[[Any], list]:
    """A fast reader of a field's non-null leaf values, the same as
    ``_lookup(doc, parts, False)`` (read as keywords when ``keyword``; strings
    past ``limit``, the ``ignore_above``, dropped): it walks
    nested objects directly and falls back to the general walk only when a
    dotted key (``"file.path"``) or an array of objects is on the way.

    The list returned may be the document's own array: callers must not change it.
    """
    n = len(parts)
    # Keys that would also reach the field from level i: "a.b", "a.b.c", ...
    alts = tuple(tuple(".".join(parts[i:j]) for j in range(i + 2, n + 1)) for i in range(n))
    head, rest = parts[0], parts[1:]
    checks = tuple(zip(rest, alts[1:], strict=True))
    top_alts = alts[0]
    # Strings up to this length are within the limit whatever they hold.
    safe = limit // 2 if limit is not None else math.inf

    def general(doc: Any) -> list:
        vals = _lookup(doc, parts, False)
        if keyword:
            vals = [c for c in (convert(v, "keyword") for v in vals) if c is not INVALID]
        return indexed(vals, limit)

    def read(doc: Any) -> list:
        if type(doc) is not dict:
            return general(doc)
        for k in top_alts:
            if k in doc:
                return general(doc)
        obj = doc.get(head)
        for key, level_alts in checks:
            if obj is None:
                return []
            if type(obj) is not dict:
                return general(doc)
            for k in level_alts:
                if k in obj:
                    return general(doc)
            obj = obj.get(key)
        if obj is None:
            return []
        t = type(obj)
        if t is str:
            return [obj] if len(obj) <= safe or not too_long(obj, limit) else []
        if t is list:
            for x in obj:
                if type(x) is not str or len(x) > safe:
                    return general(doc)
            return obj
        if t is dict:
            return []
        if keyword:
            c = convert(obj, "keyword")
            return [] if c is INVALID or (type(c) is str and len(c) > safe and too_long(c, limit)) else [c]
        return [obj]

    return read
