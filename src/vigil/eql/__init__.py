"""Vigil's EQL engine: Elasticsearch's Event Query Language with Elasticsearch's semantics.

This package is the language layer. It knows nothing of rules, alerts or I/O:
text goes in, a syntax tree or a compiled query comes out.

    >>> from vigil import eql
    >>> q = eql.compile('file where file.path : "/usr/lib/dracut/modules.d/*"')
    >>> q.matches({"event": {"category": "file"}, "file": {"path": "/usr/lib/dracut/modules.d/x"}})
    True
"""

from __future__ import annotations

from vigil.eql.errors import EqlError, EqlSyntaxError, EqlTypeError

__all__ = ["EqlError", "EqlSyntaxError", "EqlTypeError", "parse", "compile"]


def parse(text: str):
    """Parse EQL text into a :class:`vigil.eql.ast.Statement`."""
    from vigil.eql.parser import parse as _parse

    return _parse(text)


def compile(text, *, schema=None, options=None):  # noqa: A001 - mirrors re.compile
    """Parse, check and compile EQL text (or a parsed Statement) into a Query."""
    from vigil.eql.query import compile_query

    return compile_query(text, schema=schema, options=options)
