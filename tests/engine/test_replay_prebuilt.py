"""Elastic's prebuilt threshold and new terms rules, each over events built from its own query,
replayed on its schedule as ``vigil scan`` does (vigil.engine.replay).

Every runnable rule of each type is taken (found by its type). For each, the events
Kibana would alert on and twins it would not: a threshold group one event (or one
distinct value) short of the threshold, or spread wider than the look-back; a new
terms value already seen inside the history window. Several runs are replayed each
time, so the threshold signal history and the new terms history windows are exercised.
"""

from __future__ import annotations

import copy
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vigil.engine.replay import replay
from vigil.eql.fields import lookup
from vigil.events.model import Event
from vigil.rules.loaders import load_rules
from vigil.scheduler.windows import duration_ms

sys.path.insert(0, str(Path(__file__).parent))
from shaped_events import put, satisfy  # noqa: E402

RULES = Path(__file__).resolve().parents[2].parent / "shared" / "detection-rules"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# Built events the query builder cannot serve (named, so a new one is seen).
UNSERVED = {
    "Execution via MSSQL xp_cmdshell Stored Procedure",
    "Query Registry using Built-in Tools",
    "Discovery of Internet Capabilities via Built-in Tools",
}


def _rules(kind: str) -> list:
    if not RULES.is_dir():
        return []
    ruleset = load_rules([RULES / "rules", RULES / "rules_building_block"])
    return [r for r in ruleset.rules if r.type == kind and r.runnable]


THRESHOLD = _rules("threshold")
NEW_TERMS = _rules("new_terms")


def _put(doc: dict, dotted: str, value) -> None:
    put(doc, tuple(dotted.split(".")), value)


_BASES: dict[str, dict | None] = {}


def _base(rule) -> dict:
    if rule.rule_id not in _BASES:
        q = rule.compiled()
        _BASES[rule.rule_id] = satisfy(q.statement.query.condition, {}, q.matches)
    doc = _BASES[rule.rule_id]
    if doc is None:
        assert rule.name in UNSERVED
        pytest.skip("no event can be built for this query")
    return copy.deepcopy(doc)


def _free(rule, doc: dict, field: str, value) -> bool:
    """Whether ``field`` may take ``value`` in ``doc`` and the rule still match."""
    trial = copy.deepcopy(doc)
    _put(trial, field, value)
    return rule.compiled().matches(trial)


def _at(doc: dict, when: datetime, rule) -> Event:
    doc = copy.deepcopy(doc)
    stamp = when.isoformat().replace("+00:00", "Z")
    doc["@timestamp"] = stamp
    if rule.timestamp_override:
        _put(doc, rule.timestamp_override, stamp)
    return Event(doc, None, None, None)


def _alerts(rule, events: list[Event]) -> list[dict]:
    return list(replay([rule], events))


# --- threshold ---------------------------------------------------------------------


def _threshold_events(rule, count: int, distinct: int, group: str, start: datetime, step: timedelta) -> list:
    spec = rule.kibana_parameters()["threshold"]
    base = _base(rule)
    for f in spec["field"]:
        if _free(rule, base, f, group):
            _put(base, f, group)
    card = spec["cardinality"][0]["field"] if spec.get("cardinality") else None
    events = []
    for i in range(count):
        doc = base
        if card:
            value = f"card-{i % distinct}"
            if not _free(rule, base, card, value):
                pytest.skip(f"the query fixes the cardinality field {card}")
            doc = copy.deepcopy(base)
            _put(doc, card, value)
        events.append(_at(doc, start + i * step, rule))
    return events


def _needs(rule) -> tuple[int, int]:
    spec = rule.kibana_parameters()["threshold"]
    card = spec["cardinality"][0]["value"] if spec.get("cardinality") else 1
    return spec["value"], max(card, 1)


def test_prebuilt_threshold_rules_are_found():
    if not RULES.is_dir():
        pytest.skip("detection-rules not present")
    assert len(THRESHOLD) >= 26


@pytest.mark.parametrize("rule", THRESHOLD, ids=lambda r: r.name)
def test_threshold_alerts_once_per_group_across_overlapping_runs(rule):
    value, card = _needs(rule)
    n = max(value, card)
    events = _threshold_events(rule, n, card, "group-a", T0, timedelta(seconds=1))
    alerts = _alerts(rule, events)
    # Runs every interval over an overlapping look-back all see these events: the signal
    # history leaves them out after the first alert.
    assert len(alerts) == 1
    result = alerts[0]["kibana.alert.threshold_result"]
    assert result["count"] == n
    fields = rule.kibana_parameters()["threshold"]["field"]
    assert [t["field"] for t in result["terms"]] == fields
    for t in result["terms"]:
        # The bucket's terms are fields of the alert (an event.* one under original_event).
        name = t["field"]
        if name.startswith("event."):
            name = "kibana.alert.original_event." + name[len("event.") :]
        assert alerts[0][name] == t["value"]
        assert t["value"] in lookup(events[0].doc, t["field"])
    if card > 1:
        assert result["cardinality"][0]["value"] == card
    assert alerts[0]["kibana.alert.original_time"] == events[-1].doc["@timestamp"].replace("Z", ".000Z")


@pytest.mark.parametrize("rule", THRESHOLD, ids=lambda r: r.name)
def test_threshold_short_of_the_count_or_cardinality_does_not_alert(rule):
    value, card = _needs(rule)
    if card > 1:
        # Many events, one distinct value short.
        events = _threshold_events(rule, max(value, card), card - 1, "group-a", T0, timedelta(seconds=1))
    elif value > 1:
        events = _threshold_events(rule, value - 1, 1, "group-a", T0, timedelta(seconds=1))
    else:
        pytest.skip("one event reaches a threshold of 1")
    assert _alerts(rule, events) == []


@pytest.mark.parametrize("rule", THRESHOLD, ids=lambda r: r.name)
def test_threshold_events_spread_past_the_look_back_do_not_alert(rule):
    value, card = _needs(rule)
    n = max(value, card)
    if n < 2:
        pytest.skip("one event reaches the threshold")
    step = timedelta(milliseconds=duration_ms(rule.from_) + 60_000)
    assert _alerts(rule, _threshold_events(rule, n, card, "group-a", T0, step)) == []


@pytest.mark.parametrize("rule", THRESHOLD, ids=lambda r: r.name)
def test_threshold_group_alerts_again_on_newer_events(rule):
    value, card = _needs(rule)
    n = max(value, card)
    first = _threshold_events(rule, n, card, "group-a", T0, timedelta(seconds=1))
    later = _threshold_events(rule, n, card, "group-a", T0 + timedelta(hours=2), timedelta(seconds=1))
    alerts = _alerts(rule, first + later)
    assert len(alerts) == 2
    assert len({a["kibana.alert.uuid"] for a in alerts}) == 2
    assert [a["kibana.alert.threshold_result"]["count"] for a in alerts] == [n, n]
    # Same data, same alerts and ids.
    assert [a["kibana.alert.uuid"] for a in _alerts(rule, first + later)] == [
        a["kibana.alert.uuid"] for a in alerts
    ]


# --- new terms -----------------------------------------------------------------------


def _terms_doc(rule, base: dict, tag: str) -> dict:
    doc = copy.deepcopy(base)
    for f in rule.kibana_parameters()["new_terms_fields"]:
        if _free(rule, doc, f, f"{tag}-{f}"):
            _put(doc, f, f"{tag}-{f}")
    return doc


def _free_fields(rule, base: dict) -> list[str]:
    return [f for f in rule.kibana_parameters()["new_terms_fields"] if _free(rule, base, f, "vigil-free")]


def test_prebuilt_new_terms_rules_are_found():
    if not RULES.is_dir():
        pytest.skip("detection-rules not present")
    assert len(NEW_TERMS) >= 230


@pytest.mark.parametrize("rule", NEW_TERMS, ids=lambda r: r.name)
def test_new_terms_history_window(rule):
    base = _base(rule)
    if not _free_fields(rule, base):
        pytest.skip("the query fixes every new terms field")
    history = timedelta(milliseconds=rule_history(rule))
    a, b = _terms_doc(rule, base, "a"), _terms_doc(rule, base, "b")
    events = [
        _at(a, T0, rule),  # no history yet: new
        _at(a, T0 + history / 2, rule),  # seen inside the history window: not new
        _at(b, T0 + history / 2, rule),  # never seen: new
        _at(a, T0 + history * 3, rule),  # the last sighting left the window: new again
    ]
    alerts = _alerts(rule, events)
    got = [(a["kibana.alert.original_time"], a["kibana.alert.new_terms"]) for a in alerts]
    fields = rule.kibana_parameters()["new_terms_fields"]

    def terms(doc):
        return [lookup(doc, f)[0] for f in fields]

    def stamp(e):
        return e.doc["@timestamp"].replace("Z", ".000Z")

    assert got == [
        (stamp(events[0]), terms(a)),
        (stamp(events[2]), terms(b)),
        (stamp(events[3]), terms(a)),
    ]
    assert len({x["kibana.alert.uuid"] for x in alerts}) == 3


@pytest.mark.parametrize("rule", NEW_TERMS, ids=lambda r: r.name)
def test_new_terms_seen_before_the_replay_start_is_not_new(rule):
    base = _base(rule)
    if not _free_fields(rule, base):
        pytest.skip("the query fixes every new terms field")
    # Enabled past the first event's reach (its first run looks back ``from``), and seen
    # again while the first event is still inside the history window.
    span = timedelta(milliseconds=duration_ms(rule.from_))
    later = T0 + span + timedelta(minutes=30)
    if timedelta(milliseconds=rule_history(rule)) <= later + timedelta(minutes=1) - T0:
        pytest.skip("the history window is too short for this shape")
    a = _terms_doc(rule, base, "a")
    events = [_at(a, T0, rule), _at(a, later + timedelta(minutes=1), rule)]
    start = int(later.timestamp() * 1000)
    assert list(replay([rule], events, start_ms=start)) == []


@pytest.mark.parametrize("rule", NEW_TERMS, ids=lambda r: r.name)
def test_new_terms_arrays_give_each_combination(rule):
    base = _base(rule)
    free = _free_fields(rule, base)
    if not free or not _free(rule, base, free[0], ["x1", "x2"]):
        pytest.skip("no new terms field takes an array here")
    doc = _terms_doc(rule, base, "a")
    _put(doc, free[0], ["x1", "x2"])
    alerts = _alerts(rule, [_at(doc, T0, rule)])
    position = rule.kibana_parameters()["new_terms_fields"].index(free[0])
    assert sorted(a["kibana.alert.new_terms"][position] for a in alerts) == ["x1", "x2"]


def rule_history(rule) -> int:
    return duration_ms(rule.kibana_parameters()["history_window_start"])
