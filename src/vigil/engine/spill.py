"""Events kept on disk while a scan may still need them.

Sequences in flight and the replayed schedule's windows refer to many events for a
long time, but read few of them again (to build an alert, or when a run comes). Each
event is written once to a temporary file and its holder keeps its place there, an
``(offset, length)`` pair, so memory stays flat however many events are kept; the
event comes back from the file when it is read. An event that cannot be written
(a document built in Python with values JSON does not have) is kept as it is.
"""

from __future__ import annotations

import tempfile

import orjson

from vigil.events.model import Event

# Events remembered with their places (about one batch), so that an event kept by several
# holders (the rules of one batch) is written once.
RECENT = 8_192


class Spill:
    """``budget``: how many events are kept in memory before any is written (a scan of a
    few tens of thousands of events never pays for the file; a larger one keeps at most
    that many documents in memory)."""

    def __init__(self, budget: int = 0) -> None:
        self.budget = budget
        self._file = None
        self._end = 0  # where the file ends
        self._read = False  # a read moved the position since the last write
        self._recent: dict[int, tuple[Event, object]] = {}

    def park(self, event: Event):
        """The event's place in the file (the event itself if it cannot be written)."""
        known = self._recent.get(id(event))
        if known is not None and known[0] is event:
            return known[1]
        if self.budget > 0:
            self.budget -= 1
            handle = event
        else:
            handle = self._write(event)
        if len(self._recent) >= RECENT:
            self._recent.clear()
        self._recent[id(event)] = (event, handle)
        return handle

    def _write(self, event: Event):
        try:
            record = orjson.dumps([event.doc, event.index, event.id, event.origin])
        except (TypeError, orjson.JSONEncodeError):
            return event
        if self._file is None:
            self._file = tempfile.TemporaryFile()
        if self._read:  # a seek flushes the write buffer: only after a read
            self._file.seek(self._end)
            self._read = False
        handle = (self._end, len(record))
        self._file.write(record)
        self._end += len(record)
        return handle

    def event(self, handle) -> Event | None:
        """The event parked at ``handle``."""
        if handle is None or isinstance(handle, Event):
            return handle
        offset, length = handle
        self._read = True
        self._file.seek(offset)
        doc, index, eid, origin = orjson.loads(self._file.read(length))
        return Event(doc, index, eid, origin)

    def window(self, handles: list, last: dict) -> list[Event]:
        """The events parked at ``handles``: those of ``last`` (the previous window's
        events by place; a run's window overlaps the one before) are not read again.
        ``last`` then holds this window's."""
        out = []
        now = {}
        for h in handles:
            key = h if type(h) is tuple else id(h)
            event = last.get(key)
            if event is None:
                event = self.event(h)
            now[key] = event
            out.append(event)
        last.clear()
        last.update(now)
        return out

    def doc(self, handle) -> dict:
        return self.event(handle).doc

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._recent.clear()
