"""Which vendor wrote a raw event, and its ECS form.

Detection rule (deterministic, on the raw shape of one document):

1. ``sentinelone`` -- the document has a ``meta.event.name`` key or any
   ``src.process.*`` / ``tgt.file.*`` key, written flat with dots (Cloud
   Funnel exports are flat JSON objects).
2. ``endgame`` -- the document has an ``endgame`` object (ECS documents of
   ``endgame-*`` indices), or the flat legacy Endgame shape: ``event_type``
   together with ``serial_event_id`` or ``timestamp`` (Windows FILETIME).
3. ``ecs`` -- anything else; passed through unchanged.
"""

from __future__ import annotations

from typing import Any

from vigil.errors import VigilError
from vigil.events import endgame, sentinelone

SOURCES = ("ecs", "sentinelone", "endgame")


def detect(doc: dict) -> str:
    """Return "ecs", "sentinelone" or "endgame" for a raw document (see module doc)."""
    if not isinstance(doc, dict):
        return "ecs"
    if sentinelone.looks_like(doc):
        return "sentinelone"
    if endgame.looks_like(doc):
        return "endgame"
    return "ecs"


def normalize(doc: Any, source: str | None = None) -> tuple[dict, str | None]:
    """The ECS document for ``doc`` and the index it belongs in (None when unknown).

    ``source`` forces a vendor; None means detect it. Raises VigilError when the
    document cannot be normalized.
    """
    if not isinstance(doc, dict):
        raise VigilError(f"an event must be a JSON object, not {type(doc).__name__}")
    kind = source or detect(doc)
    if kind == "ecs":
        return doc, None
    if kind == "sentinelone":
        ecs = sentinelone.normalize(doc)
        return ecs, sentinelone.route(ecs)
    if kind == "endgame":
        return endgame.normalize(doc)
    raise VigilError(f"unknown event source {kind!r}; expected one of {', '.join(SOURCES)}")
