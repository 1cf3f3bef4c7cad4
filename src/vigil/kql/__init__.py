"""KQL, the Kibana Query Language of custom query rules, with Elasticsearch's meaning.

KQL text is parsed into a small tree (:mod:`vigil.kql.tree`) and translated into
an EQL event query (:mod:`vigil.kql.translate`) that the EQL engine compiles, so
a KQL rule runs through the same matcher, routing and pre-filters as an EQL rule.

    >>> from vigil import kql
    >>> q = kql.compile('process.name: "cmd.exe" and not user.name: SYSTEM')
    >>> q.matches({"process": {"name": "cmd.exe"}, "user": {"name": "alice"}})
    True
"""

from __future__ import annotations

from vigil.kql.errors import KqlSyntaxError, KqlUnsupported

__all__ = ["KqlSyntaxError", "KqlUnsupported", "parse", "to_eql", "compile"]


def parse(text: str):
    """Parse KQL text into a :mod:`vigil.kql.tree` node."""
    from vigil.kql.parser import parse as _parse

    return _parse(text)


def to_eql(text: str, *, now_ms: int | None = None):
    """The EQL :class:`vigil.eql.ast.Statement` with the meaning of the KQL text;
    ``now_ms``: the time of the run that reads date math (``now-30d/d``)."""
    from vigil.kql.translate import to_eql as _to_eql

    return _to_eql(parse(text), text, now_ms=now_ms)


def compile(text: str, *, options=None, now_ms: int | None = None):  # noqa: A001 - mirrors re.compile
    """Parse, translate and compile KQL text into a :class:`vigil.eql.query.Query`."""
    from vigil import eql

    return eql.compile(to_eql(text, now_ms=now_ms), options=options)
