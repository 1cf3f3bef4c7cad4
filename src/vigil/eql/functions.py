"""EQL's functions, each with Elasticsearch's behaviour.

Every function takes already-evaluated scalar arguments (a field's first doc
value, see :func:`vigil.eql.semantics.script_value`) and returns a value or
None. Unless a function says otherwise, a null argument gives null. The
behaviour follows ES's ``org.elasticsearch.xpack.eql.expression.function.scalar``
processors (``BetweenFunctionProcessor``, ``CIDRMatchFunctionProcessor``,
``IndexOfFunctionProcessor``, ``SubstringFunctionProcessor``,
``ToNumberFunctionProcessor``, ...) and the QL arithmetic processors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vigil.eql.semantics import NUMBER_TEXT, IpValue, arithmetic, ip_bounds, ip_key, is_number, to_string

# Argument kinds the checker verifies for literal arguments.
STR, NUM, BOOL, ANY = "string", "number", "boolean", "any"


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # canonical spelling
    impl: Callable[..., Any]  # impl(*args, insensitive=bool)
    min_args: int
    max_args: int | None  # None: any number
    arg_kinds: tuple[str, ...]  # kinds by position; the last repeats
    insensitive_ok: bool = False
    returns: str = ANY

    def kind_of(self, i: int) -> str:
        if not self.arg_kinds:
            return ANY
        return self.arg_kinds[min(i, len(self.arg_kinds) - 1)]


def _lower(s: str, insensitive: bool) -> str:
    return s.lower() if insensitive else s


def _int(v: Any) -> int | None:
    """A whole-number argument; None for anything else (ES would fail the query)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        return int(v)
    except (OverflowError, ValueError):
        return None


def _str(v: Any) -> str | None:
    """A string argument: strings as they are, other values as ES prints them."""
    return v if isinstance(v, str) or v is None else to_string(v)


def fn_between(source, left, right, greedy=False, *, insensitive=False):
    """Text between ``left`` and the next (or, greedy, the last) ``right`` after it;
    "" when either is absent."""
    source, left, right = _str(source), _str(left), _str(right)
    if source is None or left is None or right is None:
        return None
    if not source or not left or not right:
        # StringUtils.between gives the input back when any part is empty.
        return source
    greedy = bool(greedy) if greedy is not None else False
    hay = _lower(source, insensitive)
    lft, rgt = _lower(left, insensitive), _lower(right, insensitive)
    start = hay.find(lft)
    if start < 0:
        return ""
    start += len(lft)
    end = hay.rfind(rgt) if greedy else hay.find(rgt, start)
    if end < start:
        return ""
    return source[start:end]


def fn_cidr_match(source, *cidrs, insensitive=False):
    """True when the address is one of the addresses or lies in one of the CIDR blocks
    (host bits are ignored). Compared on 16 bytes, as ES's CIDRUtils.isInRange (and the
    terms query on an ip field) does: an IPv4 address and its IPv4-mapped IPv6 form
    (``::ffff:10.1.2.3``) are one address, inside ``10.0.0.0/8`` and ``::/0`` alike."""
    if source is None:
        return None
    key = source if isinstance(source, IpValue) else ip_key(str(source))
    if key is None:
        return False
    for c in cidrs:
        if c is None:
            continue
        bounds = ip_bounds(str(c))
        if bounds is not None and bounds[0] <= key <= bounds[1]:
            return True
    return False


def fn_concat(*args, insensitive=False):
    """All arguments as strings, joined; null when any is null."""
    parts = []
    for a in args:
        if a is None:
            return None
        parts.append(to_string(a))
    return "".join(parts)


def fn_ends_with(source, suffix, *, insensitive=False):
    source, suffix = _str(source), _str(suffix)
    if source is None or suffix is None:
        return None
    return _lower(source, insensitive).endswith(_lower(suffix, insensitive))


def fn_starts_with(source, prefix, *, insensitive=False):
    source, prefix = _str(source), _str(prefix)
    if source is None or prefix is None:
        return None
    return _lower(source, insensitive).startswith(_lower(prefix, insensitive))


def fn_string_contains(source, sub, *, insensitive=False):
    source, sub = _str(source), _str(sub)
    if source is None or sub is None:
        return None
    if not source or not sub:
        # ES: an empty string contains nothing and nothing is contained.
        return False
    return _lower(sub, insensitive) in _lower(source, insensitive)


def fn_index_of(source, sub, start=None, *, insensitive=False):
    """Position of ``sub`` at or after ``start`` (negative starts count as 0, as
    Java's ``indexOf``); null when not found."""
    source, sub = _str(source), _str(sub)
    if source is None or sub is None:
        return None
    if start is not None and _int(start) is None:
        return None
    begin = 0 if start is None else max(_int(start), 0)
    if not sub:
        return min(begin, len(source))  # Java: "" is found where the search starts
    pos = _lower(source, insensitive).find(_lower(sub, insensitive), begin)
    return None if pos < 0 else pos


def fn_length(source, *, insensitive=False):
    """Length in UTF-16 code units, as Java's ``String.length()``."""
    source = _str(source)
    if source is None:
        return None
    return len(source) + sum(1 for ch in source if ord(ch) > 0xFFFF)


def fn_string(value, *, insensitive=False):
    return to_string(value)


def fn_substring(source, start=None, end=None, *, insensitive=False):
    """Python-style slice: negative positions count from the end."""
    source = _str(source)
    if source is None:
        return None
    s = 0 if start is None else _int(start)
    e = None if end is None else _int(end)
    if s is None or (end is not None and e is None):
        return None
    return source[s:e]


def fn_number(source, base=None, *, insensitive=False):
    """A string parsed as a number: base 10 gives an integer or a float; other
    bases an integer (``0x`` allowed for 16). Null when it is not a number."""
    if source is None:
        return None
    if is_number(source):
        return source
    text = str(source).strip()
    # ToNumberFunctionProcessor: a "0x" prefix means base 16 when no base is given.
    hex_prefix = text.startswith("0x")
    b = (16 if hex_prefix else 10) if base is None else _int(base)
    if b is None:
        return None
    if hex_prefix and b == 16:
        text = text[2:]
    if b == 10:
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        if NUMBER_TEXT.match(text):
            return float(text)
        return None
    if not re.fullmatch(r"[+-]?[0-9a-zA-Z]+", text):
        return None
    if not 2 <= b <= 36:
        return None
    try:
        return int(text, b)
    except ValueError:
        return None


def _text(value) -> str | None:
    return value if isinstance(value, str) or value is None else to_string(value)


def fn_text_match(value, analyzer, query, *, insensitive=False):
    """KQL ``f: v`` on an analysed field: Elasticsearch's ``match`` with the field's
    analyzer (vigil.lucene.analysis)."""
    from vigil.lucene.analysis import ANALYZERS, match

    value, query = _text(value), _text(query)
    if value is None or query is None or analyzer not in ANALYZERS:
        return None
    return match(value, query, analyzer)


def fn_text_match_phrase(value, analyzer, query, *, insensitive=False):
    """KQL ``f: "v"`` on an analysed field: Elasticsearch's ``match_phrase``."""
    from vigil.lucene.analysis import ANALYZERS, match_phrase

    value, query = _text(value), _text(query)
    if value is None or query is None or analyzer not in ANALYZERS:
        return None
    return match_phrase(value, query, analyzer)


def fn_text_wildcard(value, analyzer, *parts, insensitive=False):
    """KQL ``f: a*b`` on an analysed field (``parts`` the literal text between the
    ``*``): the ``query_string`` prefix or wildcard query on one token."""
    from vigil.lucene.analysis import ANALYZERS, wildcard

    value = _text(value)
    if value is None or any(p is None for p in parts) or analyzer not in ANALYZERS:
        return None
    return wildcard(value, [_text(p) for p in parts], analyzer)


def _arith(op: str):
    def fn(a, b, *, insensitive=False):
        return arithmetic(op, a, b)

    return fn


FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name.lower(): spec
    for spec in (
        FunctionSpec("add", _arith("+"), 2, 2, (NUM,), returns=NUM),
        FunctionSpec("between", fn_between, 3, 4, (STR, STR, STR, BOOL), insensitive_ok=True, returns=STR),
        FunctionSpec("cidrMatch", fn_cidr_match, 2, None, (ANY, STR), returns=BOOL),
        FunctionSpec("concat", fn_concat, 1, None, (ANY,), returns=STR),
        FunctionSpec("divide", _arith("/"), 2, 2, (NUM,), returns=NUM),
        FunctionSpec("endsWith", fn_ends_with, 2, 2, (STR,), insensitive_ok=True, returns=BOOL),
        FunctionSpec("indexOf", fn_index_of, 2, 3, (STR, STR, NUM), insensitive_ok=True, returns=NUM),
        FunctionSpec("length", fn_length, 1, 1, (STR,), returns=NUM),
        FunctionSpec("modulo", _arith("%"), 2, 2, (NUM,), returns=NUM),
        FunctionSpec("multiply", _arith("*"), 2, 2, (NUM,), returns=NUM),
        FunctionSpec("number", fn_number, 1, 2, (STR, NUM), returns=NUM),
        FunctionSpec("startsWith", fn_starts_with, 2, 2, (STR,), insensitive_ok=True, returns=BOOL),
        FunctionSpec("string", fn_string, 1, 1, (ANY,), returns=STR),
        FunctionSpec("stringContains", fn_string_contains, 2, 2, (STR,), insensitive_ok=True, returns=BOOL),
        FunctionSpec("substring", fn_substring, 2, 3, (STR, NUM, NUM), returns=STR),
        FunctionSpec("subtract", _arith("-"), 2, 2, (NUM,), returns=NUM),
        # KQL's queries on analysed fields: a name with a dot, which EQL text cannot call.
        # (field, analyzer name, query text or the literal parts of a wildcard)
        FunctionSpec("text.match", fn_text_match, 3, 3, (STR,), returns=BOOL),
        FunctionSpec("text.match_phrase", fn_text_match_phrase, 3, 3, (STR,), returns=BOOL),
        FunctionSpec("text.wildcard", fn_text_wildcard, 4, None, (STR,), returns=BOOL),
    )
}


def lookup_function(name: str) -> FunctionSpec | None:
    """The function named ``name`` (function names are not case-sensitive in ES)."""
    return FUNCTIONS.get(name.lower())


def call(name: str, args: list, insensitive: bool = False) -> Any:
    """Call a function by name with evaluated arguments."""
    spec = lookup_function(name)
    if spec is None:
        raise KeyError(name)
    return spec.impl(*args, insensitive=insensitive)
