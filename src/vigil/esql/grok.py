"""GROK patterns, as ES|QL's GROK command reads them, run in linear time through RE2.

ES|QL builds its grok with Elasticsearch's ECS v1 pattern set
(``GrokBuiltinPatterns.get(true)`` in x-pack/plugin/esql/.../parser/Grok.java;
libs/grok/src/main/resources/patterns/ecs-v1/grok-patterns) and searches the value
(the first match anywhere). ``%{NAME:field}`` captures into a keyword column,
``%{NAME:field:int}`` / ``:long`` / ``:float`` / ``:double`` / ``:boolean`` into a typed
one; ``(?<field>...)`` captures too; a field captured twice is multi-valued.
Elasticsearch's regex engine (Joni, Ruby syntax) makes ``^`` and ``$`` match at line
boundaries and reads ``(?m)`` as "dot matches newline": both are kept here.

The patterns below are the ECS v1 set's that RE2 can run; their lookarounds and atomic
groups (which only guard the edges of numbers, e.g. IPV4's ``(?<![0-9])``) are left
out. A pattern naming any other is refused with a clear error.
"""

from __future__ import annotations

import re
from functools import lru_cache

import re2

from vigil.lucene.regexp import clean

_IPV4_PART = r"(?:[0-1]?[0-9]{1,2}|2[0-4][0-9]|25[0-5])"
_V4 = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
_H = "[0-9A-Fa-f]{1,4}"
PATTERNS = {
    "USERNAME": r"[a-zA-Z0-9._-]+",
    "USER": r"%{USERNAME}",
    "INT": r"(?:[+-]?(?:[0-9]+))",
    "BASE10NUM": r"[+-]?(?:(?:[0-9]+(?:\.[0-9]+)?)|(?:\.[0-9]+))",
    "NUMBER": r"(?:%{BASE10NUM})",
    "BASE16NUM": r"(?:[+-]?(?:0x)?(?:[0-9A-Fa-f]+))",
    "POSINT": r"\b(?:[1-9][0-9]*)\b",
    "NONNEGINT": r"\b(?:[0-9]+)\b",
    "WORD": r"\b\w+\b",
    "NOTSPACE": r"\S+",
    "SPACE": r"\s*",
    "DATA": r".*?",
    "GREEDYDATA": r".*",
    "UUID": r"[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}",
    "MAC": r"(?:%{CISCOMAC}|%{WINDOWSMAC}|%{COMMONMAC})",
    "CISCOMAC": r"(?:(?:[A-Fa-f0-9]{4}\.){2}[A-Fa-f0-9]{4})",
    "WINDOWSMAC": r"(?:(?:[A-Fa-f0-9]{2}-){5}[A-Fa-f0-9]{2})",
    "COMMONMAC": r"(?:(?:[A-Fa-f0-9]{2}:){5}[A-Fa-f0-9]{2})",
    "IPV6": (
        f"((({_H}:){{7}}({_H}|:))|(({_H}:){{6}}(:{_H}|({_V4})|:))|(({_H}:){{5}}(((:{_H}){{1,2}})|:({_V4})|:))"
        f"|(({_H}:){{4}}(((:{_H}){{1,3}})|((:{_H})?:({_V4}))|:))|(({_H}:){{3}}(((:{_H}){{1,4}})|((:{_H}){{0,2}}:({_V4}))|:))"
        f"|(({_H}:){{2}}(((:{_H}){{1,5}})|((:{_H}){{0,3}}:({_V4}))|:))|(({_H}:){{1}}(((:{_H}){{1,6}})|((:{_H}){{0,4}}:({_V4}))|:))"
        f"|(:(((:{_H}){{1,7}})|((:{_H}){{0,5}}:({_V4}))|:)))(%.+)?"
    ),
    "IPV4": rf"(?:{_IPV4_PART}[.]{_IPV4_PART}[.]{_IPV4_PART}[.]{_IPV4_PART})",
    "IP": r"(?:%{IPV6}|%{IPV4})",
    "HOSTNAME": r"\b(?:[0-9A-Za-z][0-9A-Za-z-]{0,62})(?:\.(?:[0-9A-Za-z][0-9A-Za-z-]{0,62}))*(\.?|\b)",
    "IPORHOST": r"(?:%{IP}|%{HOSTNAME})",
    "HOSTPORT": r"%{IPORHOST}:%{POSINT}",
    "URIPROTO": r"[A-Za-z]([A-Za-z0-9+\-.]+)+",
    "URIHOST": r"%{IPORHOST}(?::%{POSINT})?",
    "URIPATH": r"(?:/[A-Za-z0-9$.+!*'(){},~:;=@#%&_\-]*)+",
    "URIQUERY": r"[A-Za-z0-9$.+!*'|(){},~@#%&/=:;_?\-\[\]<>]*",
    "URIPARAM": r"\?%{URIQUERY}",
    "URIPATHPARAM": r"%{URIPATH}(?:\?%{URIQUERY})?",
    "URI": r"%{URIPROTO}://(?:%{USER}(?::[^@]*)?@)?(?:%{URIHOST})?(?:%{URIPATH}(?:\?%{URIQUERY})?)?",
    "MONTHNUM": r"(?:0?[1-9]|1[0-2])",
    "MONTHNUM2": r"(?:0[1-9]|1[0-2])",
    "MONTHDAY": r"(?:(?:0[1-9])|(?:[12][0-9])|(?:3[01])|[1-9])",
    "YEAR": r"(?:\d\d){1,2}",
    "HOUR": r"(?:2[0123]|[01]?[0-9])",
    "MINUTE": r"(?:[0-5][0-9])",
    "SECOND": r"(?:(?:[0-5]?[0-9]|60)(?:[:.,][0-9]+)?)",
    "ISO8601_TIMEZONE": r"(?:Z|[+-]%{HOUR}(?::?%{MINUTE}))",
    "TIMESTAMP_ISO8601": r"%{YEAR}-%{MONTHNUM}-%{MONTHDAY}[T ]%{HOUR}:?%{MINUTE}(?::?%{SECOND})?%{ISO8601_TIMEZONE}?",
    "LOGLEVEL": (
        r"([Aa]lert|ALERT|[Tt]race|TRACE|[Dd]ebug|DEBUG|[Nn]otice|NOTICE|[Ii]nfo?(?:rmation)?|INFO?(?:RMATION)?"
        r"|[Ww]arn?(?:ing)?|WARN?(?:ING)?|[Ee]rr?(?:or)?|ERR?(?:OR)?|[Cc]rit?(?:ical)?|CRIT?(?:ICAL)?|[Ff]atal"
        r"|FATAL|[Ss]evere|SEVERE|EMERG(?:ENCY)?|[Ee]merg(?:ency)?)"
    ),
}
_TYPES = {"int": "integer", "long": "long", "float": "double", "double": "double", "boolean": "boolean"}
_REF = re.compile(r"%\{(\w+)(?::([^:}]+))?(?::(\w+))?\}")
_NAMED = re.compile(r"\(\?<([^>!=]+)>")
_FLAGS = re.compile(r"\(\?([imx]+)([:)])")
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_MAX_EXPANSION = 100_000


class GrokError(ValueError):
    pass


class GrokPattern:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.groups: list[tuple[str, str]] = []  # (group id, field)
        self.columns: dict[str, str] = {}
        text = self._expand(pattern, 0)
        text = _FLAGS.sub(lambda m: "(?" + m.group(1).replace("m", "s") + m.group(2), text)
        try:
            self.rx = re2.compile("(?m)" + text, _OPTIONS)
        except re2.error as exc:
            raise GrokError(f"[{pattern}]: {exc}") from None

    def _capture(self, field: str, typ: str) -> str:
        gid = f"g{len(self.groups)}"
        self.groups.append((gid, field))
        self.columns.setdefault(field, typ)
        return gid

    def _expand(self, text: str, depth: int) -> str:
        if depth > 20:
            raise GrokError("patterns nest too deeply")
        for token in ("(?=", "(?!", "(?<=", "(?<!", "(?>"):
            if token in text:
                raise GrokError(f"[{text[:60]}] uses a lookaround or atomic group, which RE2 cannot run")

        def ref(m: re.Match) -> str:
            name, field, typ = m.group(1), m.group(2), m.group(3)
            body = PATTERNS.get(name)
            if body is None:
                raise GrokError(f"Unable to find pattern [{name}] in Grok's pattern dictionary")
            inner = self._expand(body, depth + 1)
            if field is None:
                return f"(?:{inner})"
            if typ is not None and typ not in _TYPES:
                raise GrokError(f"unsupported type [{typ}]")
            gid = self._capture(field, _TYPES.get(typ or "", "keyword"))
            return f"(?P<{gid}>{inner})"

        out = _REF.sub(ref, text)
        if len(out) > _MAX_EXPANSION:
            raise GrokError("the pattern expands past 100000 characters")
        return _NAMED.sub(lambda m: f"(?P<{self._capture(m.group(1), 'keyword')}>", out)

    def match(self, value: str) -> dict | None:
        try:
            m = self.rx.search(value)
        except UnicodeEncodeError:
            m = self.rx.search(clean(value))
        if m is None:
            return None
        out: dict = {}
        for gid, field in self.groups:
            v = m.group(gid)
            if v is None:
                continue
            v = _typed(v, self.columns[field])
            if v is None:
                continue
            if field in out:
                prev = out[field]
                out[field] = (prev if isinstance(prev, list) else [prev]) + [v]
            else:
                out[field] = v
        return out


def _typed(v: str, typ: str):
    if typ == "keyword":
        return v
    try:
        if typ in ("integer", "long"):
            return int(v)
        if typ == "double":
            return float(v)
    except ValueError:
        return None
    return v.lower() == "true"


@lru_cache(maxsize=256)
def compile_grok(pattern: str) -> GrokPattern:
    return GrokPattern(pattern)
