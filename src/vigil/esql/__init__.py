"""ES|QL, the piped query language of Elasticsearch, with Elasticsearch's meaning.

A query is parsed into a tree (:mod:`vigil.esql.tree`) by a hand-written parser
that follows Elasticsearch's grammar (:mod:`vigil.esql.parser`), checked against
the field types of ECS and Elastic's packages (:mod:`vigil.esql.checker`), and run
over a table of events (:mod:`vigil.esql.evaluate`).

    >>> from vigil import esql
    >>> q = esql.compile('FROM logs-* | WHERE process.name == "sh" | STATS n = COUNT(*) BY host.name')
    >>> q.run([{"process": {"name": "sh"}, "host": {"name": "a"}}]).rows
    [{'n': 1, 'host.name': 'a'}]
"""

from __future__ import annotations

from vigil.esql.errors import EsqlSyntaxError, EsqlUnsupported, EsqlVerificationError

__all__ = ["EsqlSyntaxError", "EsqlUnsupported", "EsqlVerificationError", "parse", "compile"]


def parse(text: str):
    """Parse ES|QL text into a :class:`vigil.esql.tree.Query`."""
    from vigil.esql.parser import parse as _parse

    return _parse(text)


def compile(text: str, **options):  # noqa: A001 - mirrors re.compile
    """Parse and check ES|QL text into a runnable :class:`vigil.esql.evaluate.Program`."""
    from vigil.esql.evaluate import Program

    return Program(parse(text), **options)
