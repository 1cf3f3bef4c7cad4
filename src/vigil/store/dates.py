"""Date values of stored events, refused where Elasticsearch's ``date`` mapping refuses them.

A ``date`` field without a ``format`` parses with ``strict_date_optional_time||epoch_millis``
(``DEFAULT_DATE_TIME_FORMATTER`` in Elasticsearch's ``DateFieldMapper``) into a Java long
of milliseconds. ``epoch_millis`` reads 1 to 19 digits with an optional fraction
(``EpochTime``); a JSON number is parsed from its text, so ``1e30`` (Jackson's
``1.0E30``) is not a date. A value that does not parse rejects its document
(``@timestamp`` of a data stream never ignores malformed values, see
``DateFieldMapper.Builder.build``). The reading itself is :mod:`vigil.eql.dates`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from vigil.eql.dates import to_epoch_millis

LONG_MIN = -(1 << 63)
LONG_MAX = (1 << 63) - 1
_MAX_TEXT = 64  # no date format is longer: a longer value is refused before parsing


class BadDate(ValueError):
    """A value that is not a date; ``str()`` says why."""


def parse_date(value: Any) -> int:
    """Epoch milliseconds of ``value``, or :class:`BadDate`."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    shown = _show(value)
    if isinstance(value, float) and (not math.isfinite(value) or "e" in repr(value)):
        raise BadDate(f"failed to parse date field [{shown}]: a number in exponent form is not epoch_millis")
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        raise BadDate(f"failed to parse date field [{shown}]")
    ms = (
        to_epoch_millis(value)
        if isinstance(value, str | int | float) and not isinstance(value, bool)
        else None
    )
    if ms is None or not LONG_MIN <= ms <= LONG_MAX:
        raise BadDate(
            f"failed to parse date field [{shown}] with format [strict_date_optional_time||epoch_millis]"
        )
    return ms


def to_millis(value: Any) -> int | None:
    """Epoch milliseconds of a date value, or None when it is not one (see :func:`parse_date`)."""
    try:
        return parse_date(value)
    except BadDate:
        return None


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**60:
        return "a number of more than 60 digits"
    text = str(value)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."
