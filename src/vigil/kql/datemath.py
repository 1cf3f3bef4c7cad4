"""Elasticsearch date math (``now-30d/d``) as a date range query reads it.

A KQL range on a date field (``@timestamp >= "now-30d/d"``) becomes a ``range``
query with the text as its bound (kbn-es-query ``functions/range.ts``; the
detection engine's ``get_query_filter.ts`` sets ``dateFormatTZ: 'Zulu'``, so UTC).
Elasticsearch reads the bound with its date math parser (``JavaDateMathParser``
in ``server/.../common/time``; the "Date math" section of the API conventions):

- ``now`` followed by operations, each ``+N<unit>``, ``-N<unit>`` (N defaults to 1)
  or ``/<unit>`` (rounding), with the units ``y M w d h H m s``; years and months
  are calendar arithmetic (the day is clamped to the month's end), weeks round
  to Monday;
- rounding goes down, or up to the last millisecond of the unit when the bound
  is read "rounding up": ``DateFieldType.rangeQuery`` reads ``gt`` and ``lte``
  bounds rounding up and ``gte`` and ``lt`` bounds rounding down, so
  ``>= now/d`` is from the start of today and ``<= now/d`` to its end.

An absolute date (no ``now``) is left to :func:`vigil.eql.semantics.date_literal`,
which rounds a partial date per bound the same way. An anchored date with math
(``2024-01-01||+1M``) is not read here: :func:`bound` returns None for it.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

UNITS = frozenset("yMwdhHms")
# The bounds Elasticsearch reads rounding up (DateFieldType.rangeQuery: the lower
# bound of ``gt``, the upper bound of ``lte``).
ROUND_UP_OPS = frozenset({">", "<="})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class DateMathError(ValueError):
    """Date math Elasticsearch refuses (its ElasticsearchParseException)."""


def is_date_math(text: str) -> bool:
    """Whether ``text`` is ``now``-relative date math (JavaDateMathParser tests the
    ``now`` prefix, case-sensitively)."""
    return text.startswith("now")


def _add_months(dt: datetime, months: int) -> datetime:
    total = dt.year * 12 + (dt.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise DateMathError("date math goes past the years 1 to 9999")
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return dt.replace(year=year, month=month, day=day)


def _round(dt: datetime, unit: str, up: bool) -> datetime:
    if unit == "y":
        start = dt.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        end = _add_months(start, 12) if up else start
    elif unit == "M":
        start = dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = _add_months(start, 1) if up else start
    else:
        if unit == "w":
            start = (dt - timedelta(days=dt.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
            step = timedelta(weeks=1)
        elif unit == "d":
            start = dt.replace(hour=0, minute=0, second=0, microsecond=0)
            step = timedelta(days=1)
        elif unit in "hH":
            start = dt.replace(minute=0, second=0, microsecond=0)
            step = timedelta(hours=1)
        elif unit == "m":
            start = dt.replace(second=0, microsecond=0)
            step = timedelta(minutes=1)
        else:
            start = dt.replace(microsecond=0)
            step = timedelta(seconds=1)
        end = start + step if up else start
    # Rounding up ends on the unit's last millisecond.
    return end - timedelta(milliseconds=1) if up else end


def _shift(dt: datetime, unit: str, n: int) -> datetime:
    if unit == "y":
        return _add_months(dt, 12 * n)
    if unit == "M":
        return _add_months(dt, n)
    step = {
        "w": timedelta(weeks=1),
        "d": timedelta(days=1),
        "h": timedelta(hours=1),
        "H": timedelta(hours=1),
        "m": timedelta(minutes=1),
        "s": timedelta(seconds=1),
    }[unit]
    return dt + step * n


def resolve(text: str, now_ms: int, *, round_up: bool) -> int:
    """Epoch milliseconds of ``now``-relative date math at ``now_ms`` (UTC); raises
    :class:`DateMathError` for what Elasticsearch refuses."""
    if not is_date_math(text):
        raise DateMathError(f"{text!r} does not start with now")
    math = text[3:]
    dt = _EPOCH + timedelta(milliseconds=now_ms)
    i, n = 0, len(math)
    try:
        while i < n:
            op = math[i]
            i += 1
            if op not in "+-/":
                raise DateMathError(f"operator not supported for date math [{math}]")
            if i >= n:
                raise DateMathError(f"truncated date math [{math}]")
            start = i
            while i < n and math[i].isdigit():
                i += 1
            if i >= n:
                raise DateMathError(f"truncated date math [{math}]")
            # A long run of digits is refused as Java's Integer.parseInt refuses it.
            if i - start > 10 or (i > start and int(math[start:i]) > 2**31 - 1):
                raise DateMathError(f"the number in date math [{math}] is too large")
            num = int(math[start:i]) if i > start else 1
            unit = math[i]
            i += 1
            if unit not in UNITS:
                raise DateMathError(f"unit [{unit}] not supported for date math [{math}]")
            if op == "/":
                if num != 1:
                    raise DateMathError(f"rounding `/` can only be used on single unit types [{math}]")
                dt = _round(dt, unit, round_up)
            else:
                dt = _shift(dt, unit, num if op == "+" else -num)
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, DateMathError):
            raise
        raise DateMathError(f"date math [{math}] goes past the years 1 to 9999") from None
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def bound(op: str, text: str, now_ms: int) -> int:
    """The epoch milliseconds a range query with ``op`` (``<``, ``<=``, ``>``, ``>=``)
    compares with, for ``now``-relative ``text``."""
    return resolve(text, now_ms, round_up=op in ROUND_UP_OPS)
