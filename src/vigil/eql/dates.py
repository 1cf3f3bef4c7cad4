"""Dates as Elasticsearch's ``date`` type reads them: epoch milliseconds or ISO 8601.

Elasticsearch stores a date as a Java ``long`` of milliseconds since the epoch
(``DateFieldMapper``); the ``epoch_millis`` format reads at most 19 digits
(``EpochTime``). A value outside that range, or a number it cannot read, is a
date Elasticsearch cannot parse: :func:`to_epoch_millis` gives None for it, and
every date it gives can be printed (:func:`iso_from_millis` does not use
``datetime``, whose years stop at 9999).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

# The range of a Java long: what a date field can hold.
MIN_MILLIS = -(1 << 63)
MAX_MILLIS = (1 << 63) - 1


def _in_range(ms: int) -> int | None:
    return ms if MIN_MILLIS <= ms <= MAX_MILLIS else None


def to_epoch_millis(value: object) -> int | None:
    """Milliseconds since the epoch for a date value, or None when it is not a date.

    Numbers and strings of digits are epoch milliseconds (Elasticsearch's default
    ``strict_date_optional_time||epoch_millis`` format); other strings are ISO 8601,
    UTC when they carry no offset. Values beyond a Java long (``1e30``, a 25-digit
    string), NaN and infinities are not dates.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return _in_range(value)
    if isinstance(value, float):
        return _in_range(int(value)) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    # One event's timestamp is read several times (batch, ordering, sequences): short
    # texts are remembered; long ones (never a date an ES mapping reads) are not kept.
    return _text_millis(value) if len(value) <= 64 else _text_millis.__wrapped__(value)


@lru_cache(maxsize=8192)
def _text_millis(value: str) -> int | None:
    text = value.strip()
    digits = text[1:] if text[:1] == "-" else text
    if digits.isdigit() and digits.isascii():
        # epoch_millis reads at most 19 digits; more is not a long.
        return _in_range(int(text)) if len(digits) <= 19 else None
    try:
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        offset = dt.utcoffset()
    except ValueError:
        return None
    if offset is not None and not offset.microseconds:
        # Every event's timestamp comes here: timedelta's arithmetic (exact, in C) when
        # the offset is whole seconds, as the civil-day sum below would give.
        return _in_range((dt - _EPOCH) // _MILLISECOND)
    # Whole arithmetic: an instant near year 1 or 9999 with an offset stays exact.
    days = _days_from_civil(dt.year, dt.month, dt.day)
    seconds = days * 86400 + dt.hour * 3600 + dt.minute * 60 + dt.second
    if offset is not None:
        seconds -= int(offset.total_seconds())
    return _in_range(seconds * 1000 + dt.microsecond // 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """The proleptic Gregorian (year, month, day) of a day count since 1970-01-01."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def iso_from_millis(ms: int) -> str:
    """The ISO 8601 form Elasticsearch prints for a date: ``2024-01-02T03:04:05.678Z``.

    Years past 9999 print with a ``+`` and years before 0 with a ``-``, four digits
    at least, as Java's ``SignStyle.EXCEEDS_PAD`` does in Elasticsearch's printer.
    """
    ms = int(ms)
    days, rest = divmod(ms, 86_400_000)
    year, month, day = _civil_from_days(days)
    secs, milli = divmod(rest, 1000)
    hh, secs = divmod(secs, 3600)
    mm, ss = divmod(secs, 60)
    if year > 9999:
        ytext = f"+{year}"
    elif year < 0:
        ytext = f"-{-year:04d}"
    else:
        ytext = f"{year:04d}"
    return f"{ytext}-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{milli:03d}Z"


# --- a date field's value in a document -------------------------------------------
#
# A ``date`` field without a ``format`` parses with ``strict_date_optional_time||epoch_millis``
# (``DEFAULT_DATE_TIME_FORMATTER`` in Elasticsearch's ``DateFieldMapper``) into a Java long
# of milliseconds. ``epoch_millis`` reads 1 to 19 digits with an optional fraction
# (``EpochTime``); a JSON number is parsed from its text, so ``1e30`` (Jackson's
# ``1.0E30``) is not a date. A value that does not parse rejects its document
# (``@timestamp`` of a data stream never ignores malformed values, see
# ``DateFieldMapper.Builder.build``).

_MAX_TEXT = 64  # no date format is longer: a longer value is refused before parsing


class BadDate(ValueError):
    """A value that is not a date; ``str()`` says why."""


def parse_date(value: Any) -> int:
    """Epoch milliseconds of ``value``, or :class:`BadDate`."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if isinstance(value, float) and (not math.isfinite(value) or "e" in repr(value)):
        raise BadDate(
            f"failed to parse date field [{_show(value)}]: a number in exponent form is not epoch_millis"
        )
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        raise BadDate(f"failed to parse date field [{_show(value)}]")
    ms = (
        to_epoch_millis(value)
        if isinstance(value, str | int | float) and not isinstance(value, bool)
        else None
    )
    if ms is None or not MIN_MILLIS <= ms <= MAX_MILLIS:
        raise BadDate(
            f"failed to parse date field [{_show(value)}] with format [strict_date_optional_time||epoch_millis]"
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
