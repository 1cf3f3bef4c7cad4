"""The Elastic detection rule model, with Kibana's defaults for unset fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vigil.rules.indices import matches_patterns

# Kibana's defaults for rule params a prebuilt rule may leave unset.
# - Detection engine "Create rule" API (elastic.co/guide/en/siem/guide/7.6/rules-api-create.html):
#   enabled "defaults to true"; from "defaults to now-6m"; interval 5m; false_positives, filters,
#   references, tags and threat default to empty arrays.
# - max_signals: DEFAULT_MAX_SIGNALS = 100 in Kibana's security_solution common/constants.ts; the
#   rule pages show "Maximum alerts per execution: 100" for rules that omit it (seed page).
# - Kibana's prebuilt-rules API (elastic.co/guide/en/security/current/prebuilt-rules-api.html) says
#   "By default, all loaded prebuilt rules are disabled". Vigil takes loading a rule file as the
#   "Install and enable" choice, so a loaded rule is enabled unless it says `enabled = false`
#   (as a Kibana export of a disabled rule does).
DEFAULT_FROM = "now-6m"
DEFAULT_TO = "now"
DEFAULT_INTERVAL = "5m"
DEFAULT_MAX_SIGNALS = 100
DEFAULT_ENABLED = True
# Rule types Vigil runs on a schedule over a time range (aggregations, first-seen times),
# not event by event: see vigil.engine.replay.
SCHEDULED_TYPES = ("threshold", "new_terms", "threat_match")
# ES|QL rules run on the same replayed schedule (vigil.engine.esql_rule).
SCHEDULED_TYPES += ("esql",)
# Why machine learning rules never run in Vigil: they read anomaly records (record_score)
# that Elastic's ML jobs write, from models trained inside Elasticsearch (rule_types/ml/).
ML_REASON = (
    "machine_learning rules read the anomaly scores of Elastic's anomaly detection jobs, "
    "which only Elasticsearch computes: they cannot run outside Elastic"
)


@dataclass
class Rule:
    rule_id: str
    name: str
    description: str = ""
    type: str = "query"
    language: str | None = None
    query: str | None = None
    index: list[str] = field(default_factory=list)
    from_: str = DEFAULT_FROM
    interval: str = DEFAULT_INTERVAL
    max_signals: int = DEFAULT_MAX_SIGNALS
    severity: str = "low"
    severity_mapping: list[dict] = field(default_factory=list)
    risk_score: int = 21
    risk_score_mapping: list[dict] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    threat: list[dict] = field(default_factory=list)
    note: str | None = None
    setup: str | None = None
    references: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)
    author: list[str] = field(default_factory=list)
    license: str | None = None
    version: int = 1
    timestamp_override: str | None = None
    # Match strings past their field's ignore_above, which Elasticsearch does not index.
    match_long_values: bool = False
    # EQL search parameters (Kibana passes them as event_category_field, timestamp_field
    # and tiebreaker_field: see :meth:`eql_options`); None: Elasticsearch's defaults.
    event_category_override: str | None = None
    timestamp_field: str | None = None
    tiebreaker_field: str | None = None
    building_block_type: str | None = None
    exceptions_list: list[dict] = field(default_factory=list)
    # Query DSL filters (Kibana's filter bar), ANDed with the query: see vigil.rules.filters.
    filters: Any = None
    required_fields: list[dict] = field(default_factory=list)
    related_integrations: list[dict] = field(default_factory=list)
    enabled: bool = DEFAULT_ENABLED
    source: str | None = None
    line: int | None = None
    raw: dict = field(default_factory=dict, repr=False)
    _compiled: Any = field(default=None, repr=False, compare=False)
    _compile_error: Exception | None = field(default=None, repr=False, compare=False)

    @property
    def runnable(self) -> bool:
        """An EQL rule, or a custom query, threshold or new terms rule in KQL, whose query compiles."""
        return self.why_not_runnable is None

    @property
    def why_not_runnable(self) -> str | None:
        """Why Vigil does not run this rule, in one line (None when it does)."""
        if self.query_language is None:
            if self.type == "query":
                return f"{self.language or 'this'} queries do not run yet (KQL and EQL do)"
            if self.type == "machine_learning":
                return ML_REASON
            return f"{self.type} rules do not run yet"
        if not self.query:
            return "the rule has no query"
        if self.type in SCHEDULED_TYPES:
            problem = self.scheduled_problem()
            if problem:
                return problem
        if self.raw.get("alert_suppression") is not None:
            from vigil.engine.suppression import suppression_of

            try:
                suppression_of(self)  # as Kibana's rule schema checks it
            except ValueError as exc:
                return str(exc)
        if self.query_language == "eql":
            # Elasticsearch refuses an EQL search whose event_category_field or
            # timestamp_field is empty (EqlSearchRequest.validate).
            for key in ("event_category_override", "timestamp_field"):
                if getattr(self, key) == "":
                    return f"{key} is empty (Elasticsearch refuses an empty field name)"
        try:
            self.compiled()
        except Exception as exc:  # noqa: BLE001 - the reason is the compile error
            kind = getattr(exc, "kind", None)
            message = getattr(exc, "message", None) or str(exc)
            return f"{kind}: {message}" if kind else message
        return None

    @property
    def query_language(self) -> str | None:
        """The language Vigil runs this rule's query in: "eql", "kuery", or None
        (a rule type or language Vigil does not run, such as Lucene queries)."""
        if self.type == "eql":
            return "eql"
        if self.type == "esql":
            return "esql"
        if self.type in ("query", *SCHEDULED_TYPES) and self.language == "kuery":
            return "kuery"
        return None

    def scheduled_problem(self) -> str | None:
        """Why a threshold or new terms rule cannot run as Kibana runs it (None: it can)."""
        from vigil.rules.params import new_terms_params, threshold_params

        if self.type == "esql":
            return None  # an ES|QL rule's parameters are its query
        try:
            if self.type == "threshold":
                threshold_params(self.raw)
            elif self.type == "threat_match":
                return _threat_match_problem(self)
            else:
                new_terms_params(self.raw, self.from_)
        except ValueError as exc:
            return str(exc)
        return None

    def filter_problem(self) -> str | None:
        """Why the rule's ``filters`` cannot run as Elasticsearch runs them (None: they can)."""
        from vigil.rules.filters import FilterUnsupported, filters_condition

        try:
            filters_condition(self.filters)
        except FilterUnsupported as exc:
            return f"{exc.kind}: {exc.message}"
        return None

    def compiled(self) -> Any:
        """The compiled query (:class:`vigil.eql.query.Query`), built once; a KQL
        query is translated into an EQL event query first. The rule's ``filters``
        are ANDed into every event query, so every path that runs the compiled
        statement (matcher, routing, SQL, Spark, replay) runs them too. An ES|QL
        rule's is a checked :class:`vigil.esql.evaluate.Program`."""
        if self.type == "esql":
            return self._esql_program()
        compiled = self._compiled
        if compiled is not None and compiled.options.match_long_values != self.match_long_values:
            # Set after the rule was checked (scan --match-long-values): another schema.
            self._compiled = self._compile_error = None
        elif compiled is not None:
            return compiled
        if self._compile_error is not None:
            raise self._compile_error
        if self._compiled is None:
            from vigil import eql, kql
            from vigil.rules.filters import filters_condition, with_filters

            try:
                if self.query_language == "kuery":
                    statement = kql.to_eql(self.query or "")
                else:
                    statement = eql.parse(self.query)
                statement = with_filters(statement, filters_condition(self.filters))
                self._compiled = eql.compile(statement, options=self.eql_options())
            except Exception as exc:
                self._compile_error = exc
                raise
        return self._compiled

    def _esql_program(self) -> Any:
        if self._compile_error is not None:
            raise self._compile_error
        if self._compiled is None:
            from vigil import esql

            try:
                self._compiled = esql.compile(self.query or "")
            except Exception as exc:
                self._compile_error = exc
                raise
        return self._compiled

    def eql_options(self) -> Any:
        """The EQL search options Kibana sends for this rule (build_eql_search_request.ts
        in Kibana's detection engine): ``event_category_field`` from
        ``event_category_override``, ``timestamp_field``, and ``tiebreaker_field`` when
        not empty; unset ones keep Elasticsearch's defaults (``event.category``,
        ``@timestamp``, none). ``timestamp_override`` is not among them: it only cuts
        the search window (see :mod:`vigil.scheduler.runner`)."""
        from vigil.eql.query import QueryOptions

        options = QueryOptions(match_long_values=self.match_long_values)
        if self.event_category_override:
            options.event_category_field = self.event_category_override
        if self.timestamp_field:
            options.timestamp_field = self.timestamp_field
        if self.tiebreaker_field:
            options.tiebreaker_field = self.tiebreaker_field
        return options

    def matches_index(self, index_name: str | None) -> bool:
        if index_name is None or not self.index:
            return True
        return matches_patterns(self.index, index_name)

    def kibana_parameters(self) -> dict[str, Any]:
        """Rule params as Kibana stores them in kibana.alert.rule.parameters."""
        params: dict[str, Any] = {
            "description": self.description,
            "risk_score": self.risk_score,
            "severity": self.severity,
            "license": self.license,
            "note": self.note,
            "setup": self.setup,
            "timestamp_override": self.timestamp_override,
            "building_block_type": self.building_block_type,
            "author": self.author,
            "false_positives": self.false_positives,
            "from": self.from_,
            "rule_id": self.rule_id,
            "max_signals": self.max_signals,
            "risk_score_mapping": self.risk_score_mapping,
            "severity_mapping": self.severity_mapping,
            "threat": self.threat,
            "to": self.raw.get("to") or DEFAULT_TO,
            "references": self.references,
            "version": self.version,
            "exceptions_list": self.exceptions_list,
            "immutable": True,
            "related_integrations": self.related_integrations,
            "required_fields": self.required_fields,
            "type": self.type,
            "language": self.language,
            "index": self.index,
            "query": self.query,
            "filters": self.filters,
        }
        if self.type == "eql":
            # typeSpecificCamelToSnake's EQL params (Kibana's rule_management), which
            # buildAlertFields puts into the alert; unset ones are left out.
            params["timestamp_field"] = self.timestamp_field
            params["event_category_override"] = self.event_category_override
            params["tiebreaker_field"] = self.tiebreaker_field
        params.update(self._scheduled_parameters())
        if self.type == "threat_match":
            # Kibana's threat match params (typeSpecificCamelToSnake), as the rule has them.
            params.update({k: self.raw[k] for k in _THREAT_PARAMS if self.raw.get(k) is not None})
        return {k: v for k, v in params.items() if v is not None}

    def _scheduled_parameters(self) -> dict[str, Any]:
        """Threshold and new terms params as Kibana keeps them (threshold normalized to a
        field list, new terms as new_terms_fields and history_window_start)."""
        from vigil.rules.params import new_terms_params, threshold_params

        try:
            if self.type == "threshold":
                t = threshold_params(self.raw)
                card = (
                    [{"field": t.cardinality_field, "value": t.cardinality_value}]
                    if t.cardinality_field
                    else []
                )
                spec = {"field": list(t.fields), "value": t.value}
                # Kibana's normalizeThresholdObject normalizes the field list and keeps the
                # rest as given: no cardinality key appears where the rule had none.
                if "cardinality" in (self.raw.get("threshold") or {}):
                    spec["cardinality"] = card
                return {"threshold": spec}
            if self.type == "new_terms":
                n = new_terms_params(self.raw, self.from_)
                spec = self.raw.get("new_terms") or {}
                start = spec.get("history_window_start") if isinstance(spec, dict) else None
                if isinstance(start, list) and start and isinstance(start[0], dict):
                    start = start[0].get("value")
                return {
                    "new_terms_fields": list(n.fields),
                    "history_window_start": start or self.raw.get("history_window_start"),
                }
        except ValueError:
            pass
        return {}

    def summary(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "name": self.name,
            "type": self.type,
            "severity": self.severity,
            "risk_score": self.risk_score,
            "runnable": self.runnable,
            "source": self.source,
        }


_THREAT_PARAMS = (
    "threat_filters",
    "threat_index",
    "threat_indicator_path",
    "threat_language",
    "threat_mapping",
    "threat_query",
    "items_per_search",
    "concurrent_searches",
)


def _threat_match_problem(rule: Rule) -> str | None:
    """Why an indicator match rule's threat parameters cannot run (None: they can)."""
    from vigil.engine.indicator_match import check_threat_query, params_of

    try:
        check_threat_query(rule, params_of(rule))
    except ValueError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - the reason is the threat query's error
        kind = getattr(exc, "kind", None)
        message = getattr(exc, "message", None) or str(exc)
        return f"threat_query: {kind}: {message}" if kind else f"threat_query: {message}"
    return None


_LIST_FIELDS = (
    "index",
    "severity_mapping",
    "risk_score_mapping",
    "tags",
    "threat",
    "references",
    "false_positives",
    "author",
    "exceptions_list",
    "required_fields",
    "related_integrations",
)
_SCALAR_FIELDS = (
    "description",
    "type",
    "language",
    "query",
    "severity",
    "note",
    "setup",
    "license",
    "timestamp_override",
    "building_block_type",
    "interval",
)
# EQL search parameters: field names, so strings (see Rule.eql_options).
_FIELD_NAME_FIELDS = ("event_category_override", "timestamp_field", "tiebreaker_field")


def rule_from_dict(data: dict, *, source: str | None = None, line: int | None = None) -> Rule:
    """Build a Rule from snake_case rule params; raises ValueError naming a bad field."""
    for key in ("rule_id", "name"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ValueError(f"missing required field {key!r}")
    kwargs: dict[str, Any] = {"rule_id": data["rule_id"], "name": data["name"]}
    for key in _LIST_FIELDS:
        if data.get(key) is not None:
            if not isinstance(data[key], list):
                raise ValueError(f"field {key!r} must be a list")
            kwargs[key] = list(data[key])
    for key in _SCALAR_FIELDS:
        if data.get(key) is not None:
            kwargs[key] = data[key]
    for key in _FIELD_NAME_FIELDS:
        if data.get(key) is not None:
            if not isinstance(data[key], str):
                raise ValueError(f"field {key!r} must be a field name (a string)")
            kwargs[key] = data[key]
    if data.get("filters") is not None:
        kwargs["filters"] = data["filters"]  # checked when compiled (vigil.rules.filters)
    if data.get("from") is not None:
        kwargs["from_"] = str(data["from"])
    for key in ("max_signals", "risk_score", "version"):
        if data.get(key) is not None:
            try:
                kwargs[key] = int(data[key])
            except (TypeError, ValueError):
                raise ValueError(f"field {key!r} must be an integer") from None
    if data.get("enabled") is not None:
        kwargs["enabled"] = bool(data["enabled"])
    return Rule(**kwargs, source=source, line=line, raw=dict(data))
