"""Dates as Elasticsearch's ``date`` type reads them: epoch milliseconds or ISO 8601."""

from __future__ import annotations

from datetime import UTC, datetime


def to_epoch_millis(value: object) -> int | None:
    """Milliseconds since the epoch for a date value, or None when it is not a date.

    Numbers and strings of digits are epoch milliseconds (Elasticsearch's default
    ``strict_date_optional_time||epoch_millis`` format); other strings are ISO 8601,
    UTC when they carry no offset.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (
        int(dt.timestamp() * 1000)
        if dt.microsecond == 0
        else (int(dt.replace(microsecond=0).timestamp()) * 1000 + dt.microsecond // 1000)
    )


def iso_from_millis(ms: int) -> str:
    """The ISO 8601 form Elasticsearch prints for a date: ``2024-01-02T03:04:05.678Z``."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
