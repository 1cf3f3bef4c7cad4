"""Errors of ES|QL queries: the EQL error family, so callers catch one kind and
every error points at a line and column of the query text."""

from __future__ import annotations

from vigil.eql.errors import EqlError, EqlSyntaxError, EqlTypeError


class EsqlSyntaxError(EqlSyntaxError):
    """Text that Elasticsearch's ES|QL grammar rejects."""


class EsqlVerificationError(EqlTypeError):
    """A query that parses but that Elasticsearch's verifier rejects: an unknown
    column or function, or an argument of the wrong type."""

    kind = "verification error"


class EsqlUnsupported(EqlError):
    """A valid query whose meaning Vigil cannot reproduce outside Elasticsearch
    (COMPLETION calls a language model, ENRICH reads an enrich index...)."""

    kind = "unsupported ES|QL"
