"""The one shape every event takes inside Vigil, whatever its origin."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    """An ECS document and what is known of where it came from.

    ``index`` is the Elasticsearch index the event belongs to (None: unknown, so
    every rule may read it); ``id`` is its ``_id`` when the source had one;
    ``origin`` says where it was read (``file:line``) for error messages.
    """

    doc: dict
    index: str | None = None
    id: str | None = None
    origin: str | None = None
