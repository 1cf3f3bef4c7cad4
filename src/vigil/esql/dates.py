"""Dates in ES|QL: time spans, DATE_TRUNC, DATE_DIFF, DATE_EXTRACT, date arithmetic.

Every date is UTC epoch milliseconds ("limitations.md": ES|QL works in UTC).
Sources: x-pack/plugin/esql/.../scalar/date/DateTrunc.java (a ``time_duration``
rounds down to a multiple of itself since the epoch; one day, week, month,
quarter or year rounds to the calendar unit, weeks starting on Monday),
DateDiff.java (``ChronoUnit.between``: whole units from start to end, truncated
toward zero; the unit names of its ``Part`` enum), and Java's ``plusMonths``
(the day of month clamped to the month's last day) for ``date_period`` arithmetic.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

from vigil.esql.parser import SPAN_UNITS
from vigil.esql.tree import Span

_MS = {
    "millisecond": 1,
    "second": 1000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 604_800_000,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_span(text: str) -> Span | None:
    """A time span written as a string ("1 hour", "5m"): the implicit cast of a string."""
    parts = text.strip().split()
    if len(parts) == 1:
        i = 0
        while i < len(parts[0]) and (parts[0][i].isdigit() or (i == 0 and parts[0][i] in "+-")):
            i += 1
        parts = [parts[0][:i], parts[0][i:]]
    if len(parts) != 2:
        return None
    try:
        amount = int(parts[0])
    except ValueError:
        return None
    unit = SPAN_UNITS.get(parts[1].lower())
    return None if unit is None else Span(amount, unit)


def _civil(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _millis(d: datetime) -> int:
    delta = d - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def truncate(ms: int, span: Span) -> int:
    if span.amount <= 0:
        raise ValueError(f"Zero or negative time interval is not supported: {span.amount} {span.unit}")
    unit = span.unit
    if unit in ("millisecond", "second", "minute", "hour") or (unit == "day" and span.amount > 1):
        step = span.amount * _MS[unit]
        return ms // step * step
    d = _civil(ms)
    if unit == "day":
        return _millis(datetime(d.year, d.month, d.day, tzinfo=UTC))
    if unit == "week":
        if span.amount != 1:
            step = span.amount * _MS["week"]
            return ms // step * step
        day = datetime(d.year, d.month, d.day, tzinfo=UTC) - timedelta(days=d.weekday())
        return _millis(day)
    months = span.amount * (3 if unit == "quarter" else 12 if unit == "year" else 1)
    index = (d.year * 12 + d.month - 1) // months * months
    return _millis(datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC))


def add_span(ms: int, span: Span, sign: int = 1) -> int:
    amount = span.amount * sign
    if span.unit in _MS:
        return ms + amount * _MS[span.unit]
    months = amount * (3 if span.unit == "quarter" else 12 if span.unit == "year" else 1)
    d = _civil(ms)
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    day = min(d.day, calendar.monthrange(year, month + 1)[1])
    return _millis(d.replace(year=year, month=month + 1, day=day))


# DateDiff.Part: unit -> its names.
_DIFF_UNITS = {
    "year": ("year", "years", "yy", "yyyy"),
    "quarter": ("quarter", "quarters", "qq", "q"),
    "month": ("month", "months", "mm", "m"),
    "dayofyear": ("dayofyear", "dy", "y"),
    "day": ("day", "days", "dd", "d"),
    "week": ("week", "weeks", "wk", "ww"),
    "weekday": ("weekday", "weekdays", "dw"),
    "hour": ("hour", "hours", "hh"),
    "minute": ("minute", "minutes", "mi", "n"),
    "second": ("second", "seconds", "ss", "s"),
    "millisecond": ("millisecond", "milliseconds", "ms"),
    "microsecond": ("microsecond", "microseconds", "mcs"),
    "nanosecond": ("nanosecond", "nanoseconds", "ns"),
}
_DIFF_NAMES = {name: unit for unit, names in _DIFF_UNITS.items() for name in names}


def diff_unit(name: str) -> str | None:
    return _DIFF_NAMES.get(name.lower())


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return q if a >= 0 else -q


def diff(unit: str, start: int, end: int) -> int:
    delta = end - start
    if unit == "millisecond":
        return delta
    if unit == "microsecond":
        return delta * 1000
    if unit == "nanosecond":
        return delta * 1_000_000
    if unit in ("second", "minute", "hour"):
        return _trunc_div(delta, _MS[unit])
    if unit in ("day", "dayofyear", "weekday"):
        return _trunc_div(delta, _MS["day"])
    if unit == "week":
        return _trunc_div(delta, _MS["week"])
    months = _months_between(start, end)
    if unit == "month":
        return months
    return _trunc_div(months, 3 if unit == "quarter" else 12)


def _months_between(start: int, end: int) -> int:
    a, b = _civil(start), _civil(end)
    months = (b.year - a.year) * 12 + (b.month - a.month)
    rest_a = (a.day, a.hour, a.minute, a.second, a.microsecond)
    rest_b = (b.day, b.hour, b.minute, b.second, b.microsecond)
    if months > 0 and rest_b < rest_a:
        months -= 1
    elif months < 0 and rest_b > rest_a:
        months += 1
    return months


_FIELDS = {
    "year": lambda d: d.year,
    "month_of_year": lambda d: d.month,
    "day_of_month": lambda d: d.day,
    "day_of_week": lambda d: d.isoweekday(),
    "day_of_year": lambda d: d.timetuple().tm_yday,
    "hour_of_day": lambda d: d.hour,
    "minute_of_hour": lambda d: d.minute,
    "second_of_minute": lambda d: d.second,
    "minute_of_day": lambda d: d.hour * 60 + d.minute,
    "milli_of_second": lambda d: d.microsecond // 1000,
    "aligned_week_of_year": lambda d: (d.timetuple().tm_yday - 1) // 7 + 1,
}


def extract(part: str, ms: int) -> int | None:
    """DATE_EXTRACT: a ``ChronoField`` of the date (YEAR, HOUR_OF_DAY, ...)."""
    fn = _FIELDS.get(part.lower())
    return None if fn is None else fn(_civil(ms))
