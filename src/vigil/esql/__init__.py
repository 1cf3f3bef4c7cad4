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


def deferred(text: str, options: dict) -> _Deferred:
    """A program read from the rule cache: it was checked when the cache was written, so
    it is parsed and built again only when first used (building Elastic's 212 prebuilt
    programs, and importing the evaluator, would cost seconds at every start)."""
    return _Deferred(text, options)


class _Deferred:
    """A checked program kept as its text, built on first use; stands for the Program."""

    def __init__(self, text: str, options: dict) -> None:
        self._args = (text, options)
        self._real = None

    def _program(self):
        if self._real is None:
            from vigil.esql.evaluate import Program

            text, options = self._args
            self._real = Program(parse(text), **options)
        return self._real

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("_args", "_real"):
            raise AttributeError(name)
        return getattr(self._program(), name)

    def __reduce__(self):
        return (deferred, self._args)
