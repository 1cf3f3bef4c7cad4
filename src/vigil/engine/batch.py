"""Batch scans: every rule of an engine over event files, folders or standard input.

This is the one entry point ``vigil scan`` uses, so whatever makes scanning
faster lives behind it and must give exactly the alerts of the plain path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from vigil.engine.engine import Engine
from vigil.events.model import Event
from vigil.events.readers import ReadStats, read_inputs

PROGRESS_EVERY = 10_000


def scan_paths(
    engine: Engine,
    paths: Iterable[str | Path],
    *,
    index: str | None = None,
    source: str | None = None,
    stats: ReadStats | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[dict]:
    """Alerts of ``engine``'s rules over the events read from ``paths``.

    ``stats`` receives the events read and the lines skipped with their reasons;
    ``on_progress`` is called with the number of events read so far, now and then.
    """
    stats = stats if stats is not None else ReadStats()
    events: Iterable[Event] = read_inputs(paths, index=index, source=source, stats=stats)
    if on_progress is not None:
        events = _counting(events, on_progress)
    yield from engine.scan(events)


def _counting(events: Iterable[Event], on_progress: Callable[[int], None]) -> Iterator[Event]:
    n = 0
    for n, event in enumerate(events, 1):
        if n % PROGRESS_EVERY == 0:
            on_progress(n)
        yield event
    on_progress(n)
