"""Checking an ES|QL query as Elasticsearch's verifier does, before it runs.

Names are resolved against the columns each command leaves (EVAL adds, KEEP and
STATS replace, DROP and RENAME remove) and, while the source documents can still be
read, against the field types of ECS and Elastic's packages (:mod:`vigil.eql.ecs`,
the same table EQL and KQL use). Functions are looked up with their argument
counts; comparisons need comparable types; conditions must be boolean; an aggregate
belongs in STATS. Each error carries the line and column of the offending text.
"""

from __future__ import annotations

from collections.abc import Iterable

from vigil.eql.errors import EqlError
from vigil.esql.parser import parse


def check(text: str, *, strict: bool = True, known_fields: Iterable[str] = ()) -> list[EqlError]:
    """The errors of an ES|QL query (empty when it parses and checks).

    ``strict``: a field the mapping lacks is an unknown column, as in Elasticsearch.
    """
    from vigil.esql.evaluate import Program

    try:
        Program(parse(text), strict=strict, known_fields=known_fields)
    except EqlError as exc:
        return [exc]
    return []
