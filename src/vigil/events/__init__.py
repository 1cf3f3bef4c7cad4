"""Sources: turn files, streams and vendor formats into ECS events, each with its index."""

from vigil.events.model import Event

__all__ = ["Event"]
