"""The detection engine: rules over events, alerts as Kibana writes them."""

from vigil.engine.alerts import build_alert
from vigil.engine.engine import Engine

__all__ = ["Engine", "build_alert"]
