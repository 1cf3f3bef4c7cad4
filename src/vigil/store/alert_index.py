"""The alert store seen as Kibana's ``.alerts-security.alerts-default`` index.

Rules over alerts (threshold rules whose ``index`` is ``.alerts-security.*``) search the
alerts Vigil has written, as Kibana's search those of its own alerts index. An alert is
an event of that index whose ``_id`` is its ``kibana.alert.uuid``. The index maps the
legacy ``signal.*`` fields as aliases of their ``kibana.alert.*`` fields (Kibana's
``detection_engine/routes/index/signal_aad_mapping.json``), so a query on
``signal.rule.name`` reads ``kibana.alert.rule.name``: each alias is filled in from its
field on the event given to the rule (the stored alert is not changed).
"""

from __future__ import annotations

from vigil.eql.fields import lookup
from vigil.events.model import Event

ALERTS_INDEX = ".alerts-security.alerts-default"

# signal_aad_mapping.json: legacy field -> the field it is an alias of.
_RULE = (
    "author building_block_type created_at created_by description enabled false_positives from id"
    " immutable index interval language license max_signals name note query references"
    " risk_score_mapping.field risk_score_mapping.operator risk_score_mapping.value rule_id"
    " rule_name_override saved_id severity_mapping.field severity_mapping.operator"
    " severity_mapping.value severity_mapping.severity tags threat.framework threat.tactic.id"
    " threat.tactic.name threat.tactic.reference threat.technique.id threat.technique.name"
    " threat.technique.reference threat.technique.subtechnique.id threat.technique.subtechnique.name"
    " threat.technique.subtechnique.reference threat_index threat_indicator_path threat_language"
    " threat_mapping.entries.field threat_mapping.entries.value threat_mapping.entries.type"
    " threat_query threshold.field threshold.value timeline_id timeline_title to type updated_at"
    " updated_by version"
).split()
_ORIGINAL_EVENT = (
    "action category code created dataset duration end hash id kind module outcome provider"
    " risk_score risk_score_norm sequence severity start timezone type"
).split()
SIGNAL_ALIASES: dict[str, str] = {
    **{f"signal.ancestors.{f}": f"kibana.alert.ancestors.{f}" for f in ("depth", "id", "index", "type")},
    "signal.depth": "kibana.alert.depth",
    **{f"signal.original_event.{f}": f"kibana.alert.original_event.{f}" for f in _ORIGINAL_EVENT},
    "signal.original_time": "kibana.alert.original_time",
    **{f"signal.rule.{f}": f"kibana.alert.rule.{f}" for f in _RULE},
    "signal.rule.risk_score": "kibana.alert.risk_score",
    "signal.rule.severity": "kibana.alert.severity",
    "signal.status": "kibana.alert.workflow_status",
    **{
        f"signal.threshold_result.{f}": f"kibana.alert.threshold_result.{f}"
        for f in ("from", "terms.field", "terms.value", "cardinality.field", "cardinality.value", "count")
    },
}


def alert_event(alert: dict) -> Event:
    """The stored alert as a document of the alerts index, its ``signal.*`` aliases filled in."""
    doc = dict(alert)
    for alias, target in SIGNAL_ALIASES.items():
        values = lookup(alert, target)
        if values:
            doc[alias] = values[0] if len(values) == 1 else values
    uuid = str(alert.get("kibana.alert.uuid", ""))
    return Event(doc, ALERTS_INDEX, uuid, f"{ALERTS_INDEX}/{uuid}")


def reads_alerts(rule) -> bool:
    """Whether the rule's index patterns take the alerts index."""
    if getattr(rule, "type", None) == "esql":
        from vigil.engine.esql_rule import reads_index

        return reads_index(rule, ALERTS_INDEX)
    matches = getattr(rule, "matches_index", None)
    return bool(getattr(rule, "index", None)) and matches is not None and matches(ALERTS_INDEX)
