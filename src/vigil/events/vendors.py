"""Which vendor wrote a raw event, and its ECS form.

When ``--source`` is not given, each event (each line, each array item, each
search hit's ``_source``) is classified on its own, by its raw shape, first
rule that holds:

1. ``sentinelone``: a SentinelOne Cloud Funnel event. It has a top-level key
   ``meta.event.name``, or a top-level key starting with ``src.process.``,
   ``tgt.file.`` or ``tgt.process.``, written flat with dots as Cloud Funnel
   exports them. It is run through the integration's pipeline and goes to
   ``logs-sentinel_one_cloud_funnel.event-default``.
2. ``endgame``: an Elastic Endgame event. Either an ECS document with an
   ``endgame`` object (taken as it is), or the flat legacy schema: an
   ``event_type`` key together with ``serial_event_id`` or ``timestamp``
   (a Windows FILETIME). It goes to ``endgame-<version>`` (``endgame.version``
   or ``agent.version``, else ``3.0.0``).
3. ``ecs``: anything else (Elastic Defend, Beats, exports), taken as it is;
   its index comes from ``--index``, the hit's ``_index`` or its
   ``data_stream.*`` fields.

``--source`` forces one of these for every event; an event the forced
normalizer cannot read is skipped and counted, and reading goes on.
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
