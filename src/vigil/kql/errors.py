"""Errors of KQL queries: the EQL error family, so callers catch one kind and
every error points at a line and column of the query text."""

from __future__ import annotations

from vigil.eql.errors import EqlError, EqlSyntaxError


class KqlSyntaxError(EqlSyntaxError):
    """Text that Kibana's KQL grammar rejects."""


class KqlUnsupported(EqlError):
    """A valid KQL query whose Elasticsearch meaning Vigil cannot reproduce exactly
    (the rule is then not runnable, never run with a guessed meaning)."""

    kind = "unsupported KQL"
