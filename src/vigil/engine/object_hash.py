"""The ``object-hash`` package's hash (its defaults: SHA-1, hex), for JSON values.

Kibana names a suppressed alert's group with ``objectHash([terms, ruleId, spaceId])``
(``kibana.alert.instance.id``, ``wrap_suppressed_alerts.ts``). ``object-hash`` hashes a
text it writes for the value (``typeHasher`` in its ``index.js``): ``null`` is ``Null``, a
boolean ``bool:true``, a number ``number:<String(n)>``, a string ``string:<length in
UTF-16 units>:<text>``, an array ``array:<n>:`` and its entries; a plain object
``object:<n+3>:`` and, before its own keys (sorted), the special keys ``prototype``,
``__proto__`` and ``constructor`` with what they hold (``Object.prototype`` and the
``Object`` function, written in full the first time and as ``[CIRCULAR:<i>]`` after,
``i`` counting the objects, arrays and functions met so far).
"""

from __future__ import annotations

import hashlib
from typing import Any

_PROTO = object()  # Object.prototype
_OBJECT = object()  # the Object function


def object_hash(value: Any) -> str:
    out: list[str] = []
    _write(value, [], out)
    return hashlib.sha1("".join(out).encode("utf-8"), usedforsecurity=False).hexdigest()


def _string(text: str, out: list[str]) -> None:
    units = len(text.encode("utf-16-le")) // 2
    out.append(f"string:{units}:{text}")


def _number(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, float):
        text = repr(value)
        if "e" in text:  # JavaScript writes 1e-7 and 1e+21
            mantissa, exp = text.split("e")
            sign = "-" if exp.startswith("-") else "+"
            text = f"{mantissa}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
        return text
    return str(value)


def _seen(thing: Any, context: list, out: list[str]) -> bool:
    for i, known in enumerate(context):
        if known is thing:
            _string(f"[CIRCULAR:{i}]", out)
            return True
    context.append(thing)
    return False


def _function(context: list, out: list[str]) -> None:
    # The Object function: native, named Object, no own enumerable properties.
    out.append("fn:")
    _string("[native]", out)
    _string("function-name:Object", out)
    if not _seen(_OBJECT, context, out):
        out.append("object:0:")


def _special(key: str, holder: Any, context: list, out: list[str]) -> None:
    _string(key, out)
    out.append(":")
    if key == "prototype":
        out.append("Undefined")
    elif key == "constructor":
        _function(context, out)
    elif holder is _PROTO:
        out.append("Null")
    elif not _seen(_PROTO, context, out):
        out.append("object:3:")
        for k in ("prototype", "__proto__", "constructor"):
            _special(k, _PROTO, context, out)
    out.append(",")


def _write(value: Any, context: list, out: list[str]) -> None:
    if value is None:
        out.append("Null")
    elif isinstance(value, bool):
        out.append("bool:true" if value else "bool:false")
    elif isinstance(value, int | float):
        out.append(f"number:{_number(value)}")
    elif isinstance(value, str):
        _string(value, out)
    elif isinstance(value, list | tuple):
        if _seen(value, context, out):
            return
        out.append(f"array:{len(value)}:")
        for entry in value:
            _write(entry, context, out)
    elif isinstance(value, dict):
        if _seen(value, context, out):
            return
        keys = sorted(value, key=lambda k: str(k).encode("utf-16-be"))
        out.append(f"object:{len(keys) + 3}:")
        for k in ("prototype", "__proto__", "constructor"):
            _special(k, value, context, out)
        for k in keys:
            _string(str(k), out)
            out.append(":")
            _write(value[k], context, out)
            out.append(",")
    else:
        _string(str(value), out)
