"""Alert suppression: alerts of one group folded into one alert, updated as more come.

A rule's ``alert_suppression`` (``group_by``: 1 to 3 fields; ``duration``: a time
window, or none for "per rule execution"; ``missing_fields_strategy``: ``suppress``,
the default, or ``doNotSuppress``) works as Kibana's detection engine does it:

- **Candidates.** Each alert gets ``kibana.alert.instance.id`` (a hash of the group's
  terms, the rule and the space), ``kibana.alert.suppression.terms`` (``[{field,
  value}]``), ``.start``/``.end`` and ``.docs_count``.

  - Custom query rules group their window's events first, as a composite aggregation
    would (``query/alert_suppression/group_and_bulk_create.ts``,
    ``wrap_suppressed_alerts.ts``): an event gives one group per combination of its
    fields' values; a missing field is a ``null`` term (``suppress``) or makes the
    event an ordinary alert (``doNotSuppress``); each group is one candidate, the
    alert of its earliest event, with ``start``/``end`` its first and last event
    times and ``docs_count`` the other events. Groups come in key order, at most
    ``max_signals`` of them. The groups alerted on are remembered (the "bucket
    history"): a later run leaves out a group's events up to its last one.
  - EQL and new terms rules take each alert as a candidate
    (``utils/wrap_suppressed_alerts.ts``, ``suppression_utils.ts``): a term's value
    is the field's values, sorted, as one value (``null`` when missing);
    ``start`` = ``end`` = the event's time; ``docs_count`` 0.
  - Threshold rules group by the threshold fields and need a duration
    (``threshold/wrap_suppressed_threshold_alerts.ts``): the instance is the
    bucket's sorted values; ``start``/``end`` the bucket's first and last event.

- **Against the store** (``alertWithSuppression`` in rule_registry's
  ``create_persistence_rule_type_wrapper.ts``): the open alert of the same instance
  whose start is within the window (``now - duration``; per execution: the run's
  ``from``, and only an alert of the same execution) is *updated*: its
  ``docs_count`` grows by the candidate's plus one, its ``end`` moves forward,
  ``kibana.alert.last_detected`` becomes now. A candidate whose end is not after
  that alert's end was already counted and is dropped. Candidates of one instance
  are folded together in memory first (sorted on start). Closed alerts are never
  updated: the next candidate opens a new alert.

The instance id is Kibana's ``objectHash([terms, ruleId, spaceId])``
(:mod:`vigil.engine.object_hash`), with the rule's ``rule_id`` as its id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from vigil.engine.alerts import alert_uuid, build_alert, event_key, rule_uuid
from vigil.engine.object_hash import object_hash
from vigil.engine.threshold import combinations, distinct, js_string, sort_key
from vigil.eql.dates import iso_from_millis, to_millis
from vigil.eql.fields import lookup
from vigil.events.model import Event

SPACE = "default"
INSTANCE = "kibana.alert.instance.id"
TERMS = "kibana.alert.suppression.terms"
START = "kibana.alert.suppression.start"
END = "kibana.alert.suppression.end"
DOCS = "kibana.alert.suppression.docs_count"
EXECUTION = "kibana.alert.rule.execution.uuid"
LAST_DETECTED = "kibana.alert.last_detected"
ALERT_START = "kibana.alert.start"
MAX_GROUP_BY = 3
_UNITS = {"s": 1000, "m": 60_000, "h": 3_600_000}


@dataclass(frozen=True, slots=True)
class Suppression:
    group_by: tuple[str, ...]
    duration_ms: int | None  # None: per rule execution
    suppress_missing: bool


def suppression_of(rule) -> Suppression | None:
    """The rule's suppression settings (None: it has none). Raises ValueError on settings
    Kibana's rule schema refuses (``AlertSuppression``: 1 to 3 fields, a duration of a
    positive value in ``s``, ``m`` or ``h``)."""
    spec = (getattr(rule, "raw", None) or {}).get("alert_suppression")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ValueError("alert_suppression must be an object (group_by, duration, missing_fields_strategy)")
    duration = _duration_ms(spec.get("duration"))
    if rule.type == "threshold":
        # Threshold rules group by their threshold fields, over a duration only.
        from vigil.engine.threshold import params_of

        if duration is None:
            raise ValueError("a threshold rule's alert_suppression needs a duration")
        return Suppression(params_of(rule).fields, duration, True)
    group_by = spec.get("group_by")
    if not isinstance(group_by, list) or not all(isinstance(f, str) and f for f in group_by):
        raise ValueError("alert_suppression.group_by must be a list of field names")
    if not 1 <= len(group_by) <= MAX_GROUP_BY:
        raise ValueError(f"alert_suppression.group_by must hold 1 to {MAX_GROUP_BY} fields")
    strategy = spec.get("missing_fields_strategy", "suppress")
    if strategy not in ("suppress", "doNotSuppress"):
        raise ValueError("alert_suppression.missing_fields_strategy must be suppress or doNotSuppress")
    return Suppression(tuple(group_by), duration, strategy == "suppress")


def _duration_ms(spec: Any) -> int | None:
    if spec is None:
        return None
    value = spec.get("value") if isinstance(spec, dict) else None
    unit = spec.get("unit") if isinstance(spec, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or unit not in _UNITS:
        raise ValueError("alert_suppression.duration must be {value: a positive integer, unit: s, m or h}")
    return value * _UNITS[unit]


def instance_id(terms: list[dict], rule) -> str:
    """``kibana.alert.instance.id``: ``objectHash([terms, ruleId, spaceId])``."""
    return object_hash([terms, rule_uuid(rule), SPACE])


def _stamp(alert: dict, rule, terms: list[dict], start: int, end: int, docs: int, instance=None) -> dict:
    alert[INSTANCE] = instance or instance_id(terms, rule)
    alert[TERMS] = terms
    alert[START] = iso_from_millis(start)
    alert[END] = iso_from_millis(end)
    alert[DOCS] = docs
    return alert


def _ms(value: Any) -> int:
    ms = to_millis(value) if value is not None else None
    return ms if ms is not None else 0


def event_time(doc: dict, rule) -> int | None:
    from vigil.engine.replay import event_time as combined

    return combined(doc, getattr(rule, "timestamp_override", None))


# --- candidates -------------------------------------------------------------------------


def _in_memory_terms(doc: dict, group_by: tuple[str, ...]) -> list[dict]:
    """getSuppressionTerms: each field's values (from the event's ``fields``, always a list),
    sorted and kept together as one value; ``null`` when missing."""
    terms = []
    for f in group_by:
        values = [v for v in lookup(doc, f) if not isinstance(v, dict | list)]
        terms.append({"field": f, "value": sorted(values, key=sort_key) if values else None})
    return terms


def in_memory_candidates(
    rule, spec: Suppression, alerts: list[dict], source: Callable[[dict], dict | None]
) -> tuple[list[list[dict]], list[list[dict]]]:
    """EQL, new terms and threshold alerts (each a signal: one alert, or a sequence's shell
    and building blocks) as candidates: ``(suppressible, ordinary)``. ``source`` gives
    the event an alert was raised on (None: the alert itself)."""
    suppressible, ordinary = [], []
    for signal in _signals(alerts):
        head = next((a for a in signal if "kibana.alert.group.index" not in a), signal[0])
        if rule.type == "threshold":
            result = head.get("kibana.alert.threshold_result") or {}
            terms = [{"field": t["field"], "value": t["value"]} for t in result.get("terms", [])]
            values = sorted((t["value"] for t in terms), key=sort_key)
            start = _ms(result.get("from"))
            end = _ms(head.get("kibana.alert.original_time"))
            _stamp(head, rule, terms, start, end, 0, object_hash([values, rule_uuid(rule), SPACE]))
            suppressible.append(signal)
            continue
        doc = source(head) or head
        terms = _in_memory_terms(doc, spec.group_by)
        if not spec.suppress_missing and any(t["value"] is None for t in terms):
            ordinary.append(signal)
            continue
        ts = event_time(doc, rule)
        when = ts if ts is not None else _ms(head.get("@timestamp"))
        _stamp(head, rule, terms, when, when, 0)
        suppressible.append(signal)
    return suppressible, ordinary


def _signals(alerts: list[dict]) -> list[list[dict]]:
    groups: dict[str, list[dict]] = {}
    for alert in alerts:
        key = alert.get("kibana.alert.group.id") or alert["kibana.alert.uuid"]
        groups.setdefault(str(key), []).append(alert)
    return list(groups.values())


@dataclass
class BucketHistory:
    """A custom query rule's groups already alerted on: key -> time of its last event."""

    entries: list[tuple[list, int]] = field(default_factory=list)

    @classmethod
    def load(cls, data: Any) -> BucketHistory:
        return cls([(list(k), int(end)) for k, end in (data or [])])

    def dump(self) -> list:
        return [[k, end] for k, end in self.entries]

    def prune(self, from_ms: int) -> None:
        # filterBucketHistory: a group stays while its last event is after the run's from.
        self.entries = [(k, end) for k, end in self.entries if end > from_ms]

    def excludes(self, values: list[list], ts: int, from_ms: int) -> bool:
        """buildBucketHistoryFilter: the event holds a remembered group's terms (a null term:
        the field is missing) and its time is in ``[from, end]`` of that group."""
        for key, end in self.entries:
            if not from_ms <= ts <= end:
                continue
            if all(
                (not vals) if want is None else any(js_string(v) == js_string(want) for v in vals)
                for want, vals in zip(key, values, strict=True)
            ):
                return True
        return False


@dataclass(slots=True)
class _Group:
    key: tuple
    event: Event
    count: int
    first: int
    last: int


def query_candidates(
    rule,
    spec: Suppression,
    matched: list[tuple[Event, int]],
    history: BucketHistory,
    *,
    now: datetime,
    from_ms: int,
    to_ms: int,
) -> tuple[list[dict], list[Event]]:
    """A custom query rule's run: its matching events (with their times, ascending) grouped
    on ``group_by``. Returns the groups' candidate alerts and the events that become
    ordinary alerts (``doNotSuppress`` and a field missing); ``history`` is updated."""
    history.prune(from_ms)
    groups: dict[tuple, _Group] = {}
    ordinary: list[Event] = []
    for event, ts in matched:
        values = [distinct(lookup(event.doc, f)) for f in spec.group_by]
        if history.excludes(values, ts, from_ms):
            continue
        if any(not v for v in values):
            if not spec.suppress_missing:
                ordinary.append(event)
                continue
            values = [v or [None] for v in values]
        for key in combinations(values):
            ident = tuple((v is None, type(v) is str, js_string(v)) for v in key)
            g = groups.get(ident)
            if g is None:
                groups[ident] = _Group(key, event, 1, ts, ts)
            else:
                g.count += 1
                g.last = max(g.last, ts)
    # Composite order: a missing_bucket null sorts first; the page is max_signals long.
    chosen = sorted(
        groups.values(),
        key=lambda g: tuple((v is not None, sort_key(v) if v is not None else ()) for v in g.key),
    )[: rule.max_signals]
    out = []
    for g in chosen:
        terms = [{"field": f, "value": v} for f, v in zip(spec.group_by, g.key, strict=True)]
        alert = build_alert(rule, g.event, now=now)
        alert["kibana.alert.uuid"] = alert_uuid(
            g.event.index or "",
            event_key(g.event),
            rule_uuid(rule),
            orjson.dumps(terms, default=str),
            g.first,
            g.last,
        )
        out.append(_stamp(alert, rule, terms, g.first, g.last, g.count - 1))
        history.entries.append((list(g.key), g.last))
    # bulkCreateUnsuppressedAlerts: as many ordinary alerts as the groups leave of max_signals.
    return out, ordinary[: max(rule.max_signals - len(chosen), 0)]


# --- against the store ------------------------------------------------------------------


class AlertIndex:
    """What suppression needs of where alerts are kept (the store, or memory in a scan)."""

    def known(self, uuids: list[str]) -> set[str]:
        raise NotImplementedError

    def open_by_instance(self, instance_ids: list[str], since_ms: int) -> dict[str, dict]:
        raise NotImplementedError


@dataclass
class Outcome:
    created: list[dict] = field(default_factory=list)  # new alerts (with their building blocks)
    updated: list[dict] = field(default_factory=list)  # stored alerts with new counts
    suppressed: int = 0  # events folded into an alert (Kibana's suppressed alerts count)


def persist(
    signals: list[list[dict]],
    index: AlertIndex,
    *,
    window_start_ms: int,
    per_execution: bool,
    execution_id: str,
    now_ms: int,
    max_alerts: int,
) -> Outcome:
    """alertWithSuppression: which candidates become alerts and which update an open one."""
    out = Outcome()
    if not signals:
        return out
    now_iso = iso_from_millis(now_ms)
    for signal in signals:
        for alert in signal:
            alert[EXECUTION] = execution_id
            alert.setdefault(ALERT_START, alert.get("@timestamp", now_iso))
            alert.setdefault(LAST_DETECTED, alert.get("@timestamp", now_iso))
    known = index.known([_head(s)["kibana.alert.uuid"] for s in signals])
    fresh = [s for s in signals if _head(s)["kibana.alert.uuid"] not in known]
    existing = index.open_by_instance([_head(s)[INSTANCE] for s in fresh], window_start_ms)

    def already_counted(head: dict) -> bool:
        ex = existing.get(head[INSTANCE])
        if ex is None or ex.get(EXECUTION) == execution_id:
            return False
        return _ms(ex.get(END)) >= _ms(head[END])

    pending = [s for s in fresh if not already_counted(_head(s))]
    # suppressAlertsInMemory: sorted on start, later candidates of an instance fold into the first.
    pending.sort(key=lambda s: _ms(_head(s)[START]))
    first: dict[str, dict] = {}
    kept: list[list[dict]] = []
    for signal in pending:
        head = _head(signal)
        iid = head[INSTANCE]
        if iid in first:
            f = first[iid]
            f[DOCS] += head[DOCS] + 1
            if _ms(head[END]) > _ms(f[END]):
                f[END] = head[END]
            continue
        first[iid] = head
        kept.append(signal)
    for signal in kept:
        head = _head(signal)
        ex = existing.get(head[INSTANCE])
        same_run = ex is not None and ex.get(EXECUTION) == execution_id
        if ex is not None and (same_run or not per_execution):
            if _ms(ex.get(END)) < _ms(head[END]):
                ex[END] = head[END]
            if same_run and _ms(ex.get(START)) >= _ms(head[START]):
                ex[START] = head[START]
            ex[LAST_DETECTED] = now_iso
            ex[DOCS] = int(ex.get(DOCS) or 0) + head[DOCS] + 1
            out.updated.append(ex)
            out.suppressed += head[DOCS] + 1
        elif len(out.created) < max_alerts:
            out.created.append(signal)
            out.suppressed += head[DOCS]
    return out


def _head(signal: list[dict]) -> dict:
    return next((a for a in signal if "kibana.alert.group.index" not in a), signal[0])


class MemoryIndex(AlertIndex):
    """Alerts of a scan, kept in memory: the replay's stand-in for the store."""

    def __init__(self) -> None:
        self.by_uuid: dict[str, dict] = {}

    def known(self, uuids: list[str]) -> set[str]:
        return {u for u in uuids if u in self.by_uuid}

    def open_by_instance(self, instance_ids: list[str], since_ms: int) -> dict[str, dict]:
        wanted = set(instance_ids)
        out: dict[str, dict] = {}
        for alert in self.by_uuid.values():
            iid = alert.get(INSTANCE)
            if iid in wanted and _ms(alert.get("@timestamp")) >= since_ms:
                if alert.get("kibana.alert.workflow_status") == "closed":
                    continue
                prev = out.get(iid)
                if prev is None or _ms(alert.get("@timestamp")) >= _ms(prev.get("@timestamp")):
                    out[iid] = alert
        return out

    def add(self, alerts: Iterable[dict]) -> None:
        for alert in alerts:
            self.by_uuid.setdefault(alert["kibana.alert.uuid"], alert)


def execution_uuid(rule, now_ms: int) -> str:
    """One id per rule run: ``kibana.alert.rule.execution.uuid``."""
    return alert_uuid("execution", rule_uuid(rule), now_ms)[:36]


def window_start(spec: Suppression, *, now_ms: int, from_ms: int) -> int:
    """Where the suppression window starts: ``now - duration``, else the run's ``from``."""
    return now_ms - spec.duration_ms if spec.duration_ms is not None else from_ms


class ReplaySuppressor:
    """Suppression inside a scan's replay: each replayed run's alerts against the alerts
    of the earlier runs, held in memory. The suppressed alert is updated in place, so the
    scan writes it once, with its final counts, at the end."""

    def __init__(self, rule, spec: Suppression) -> None:
        self.rule = rule
        self.spec = spec
        self.index = MemoryIndex()
        self.order: list[str] = []

    @classmethod
    def for_rule(cls, rule) -> ReplaySuppressor | None:
        try:
            spec = suppression_of(rule)
        except ValueError:
            return None
        return cls(rule, spec) if spec is not None else None

    def run(self, alerts: list[dict], *, from_ms: int, to_ms: int) -> None:
        by_uuid = {a["kibana.alert.uuid"]: a for a in alerts}
        suppressible, ordinary = in_memory_candidates(self.rule, self.spec, alerts, lambda a: None)
        outcome = persist(
            suppressible,
            self.index,
            window_start_ms=window_start(self.spec, now_ms=to_ms, from_ms=from_ms),
            per_execution=self.spec.duration_ms is None,
            execution_id=execution_uuid(self.rule, to_ms),
            now_ms=to_ms,
            max_alerts=self.rule.max_signals,
        )
        for signal in [*ordinary, *outcome.created]:
            for alert in signal:
                if (
                    alert["kibana.alert.uuid"] in by_uuid
                    and alert["kibana.alert.uuid"] not in self.index.by_uuid
                ):
                    self.index.add([alert])
                    self.order.append(alert["kibana.alert.uuid"])

    def alerts(self) -> list[dict]:
        return [self.index.by_uuid[u] for u in self.order]
