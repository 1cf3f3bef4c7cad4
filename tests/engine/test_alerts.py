"""Alerts as Kibana writes them for EQL rules.

References (Kibana, x-pack security_solution, server/lib/detection_engine/rule_types):
factories/utils/build_alert.ts (kibana.alert.* fields, ancestors, depth),
factories/utils/transform_hit_to_alert.ts (event alerts), eql/build_alert_group_from_sequence.ts
and its test (sequence shell and building blocks), utils/reason_formatters.ts (reason),
utils/mappings/build_severity_from_mapping.ts and build_risk_score_from_mapping.ts.
"""

from datetime import UTC, datetime

import orjson
import pytest

from vigil.engine import Engine
from vigil.engine.alerts import build_alert, build_reason, build_sequence_alerts, intersection
from vigil.events.model import Event
from vigil.rules import bundled_rules
from vigil.rules.model import rule_from_dict

NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
INDEX = "logs-endpoint.events.file-default"


def _seed():
    [rule] = bundled_rules().rules
    return rule


def _doc(**over):
    doc = {
        "@timestamp": "2024-10-16T11:06:12.2007223Z",
        "event": {"kind": "event", "category": ["file"], "type": ["creation"], "action": "creation"},
        "host": {"name": "web-1", "os": {"type": "linux"}},
        "user": {"name": "root", "id": 0},
        "process": {"name": "curl", "executable": "/usr/bin/curl"},
        "file": {"path": "/lib/dracut/modules.d/99x/x.sh", "name": "x.sh", "extension": "sh"},
    }
    doc.update(over)
    return doc


def _rule(**over):
    data = {
        "rule_id": "r-1",
        "name": "Test rule",
        "type": "eql",
        "language": "eql",
        "query": "any where true",
        "index": ["logs-*"],
        "severity": "low",
        "risk_score": 21,
    }
    data.update(over)
    return rule_from_dict(data)


# --- event alerts --------------------------------------------------------------------


def test_event_alert_keeps_the_source_and_marks_it_a_signal():
    alert = build_alert(_seed(), Event(_doc(), INDEX, "ev-1"), now=NOW)
    assert alert["host"] == {"name": "web-1", "os": {"type": "linux"}}
    assert alert["process"]["executable"] == "/usr/bin/curl"
    assert alert["event"]["kind"] == "signal"
    assert alert["event"]["category"] == ["file"]
    # build_alert.test.ts: flattenWithPrefix(ALERT_ORIGINAL_EVENT, {action, category, kind, ...})
    assert alert["kibana.alert.original_event.kind"] == "event"
    assert alert["kibana.alert.original_event.action"] == "creation"
    assert alert["kibana.alert.original_event.type"] == ["creation"]
    assert alert["kibana.alert.original_time"] == "2024-10-16T11:06:12.200Z"
    assert alert["@timestamp"] == "2024-05-06T07:08:09.123Z"
    assert alert["kibana.alert.intended_timestamp"] == alert["@timestamp"]


def test_event_alert_kibana_fields():
    rule = _seed()
    alert = build_alert(rule, Event(_doc(), INDEX, "ev-1"), now=NOW)
    assert alert["kibana.alert.ancestors"] == [{"id": "ev-1", "type": "event", "index": INDEX, "depth": 0}]
    assert alert["kibana.alert.depth"] == 1
    assert alert["kibana.alert.status"] == "active"
    assert alert["kibana.alert.workflow_status"] == "open"
    assert alert["kibana.alert.severity"] == "low" and alert["kibana.alert.risk_score"] == 21
    assert alert["kibana.alert.rule.rule_id"] == "dc765fb2-0c99-4e57-8c11-dafdf1992b66"
    assert alert["kibana.alert.rule.uuid"] and alert["kibana.alert.rule.consumer"] == "siem"
    assert alert["kibana.alert.rule.indices"] == rule.index
    assert alert["kibana.alert.rule.timestamp_override"] == "event.ingested"
    params = alert["kibana.alert.rule.parameters"]
    assert params["query"] == rule.query and params["index"] == rule.index and params["type"] == "eql"
    tactics = [t["tactic"]["name"] for t in alert["kibana.alert.rule.threat"]]
    assert tactics == ["Persistence", "Execution", "Defense Evasion"]
    assert params["threat"] == alert["kibana.alert.rule.threat"]
    assert "kibana.alert.building_block_type" not in alert
    assert "kibana.alert.group.id" not in alert
    orjson.dumps(alert)  # an alert is plain JSON


def test_flat_dotted_event_fields_are_kept_too():
    doc = {"@timestamp": 0, "event.category": "file", "event.kind": "event", "host.name": "h"}
    alert = build_alert(_rule(), Event(doc), now=NOW)
    assert alert["event"] == {"category": "file", "kind": "signal"}
    assert alert["kibana.alert.original_event.kind"] == "event"
    assert alert["kibana.alert.original_time"] == "1970-01-01T00:00:00.000Z"
    assert alert["kibana.alert.reason"] == "file event on h created low alert Test rule."


def test_building_block_rule_marks_its_alerts():
    alert = build_alert(_rule(building_block_type="default"), Event(_doc()), now=NOW)
    assert alert["kibana.alert.building_block_type"] == "default"
    assert alert["kibana.alert.rule.building_block_type"] == "default"


def test_alert_uuid_is_a_hash_of_index_event_and_rule():
    rule, other = _rule(), _rule(rule_id="r-2")
    event = Event(_doc(), INDEX, "ev-1")
    first = build_alert(rule, event, now=NOW)["kibana.alert.uuid"]
    later = build_alert(rule, Event(_doc(), INDEX, "ev-1"), now=datetime(2030, 1, 1, tzinfo=UTC))
    assert later["kibana.alert.uuid"] == first
    assert build_alert(other, event, now=NOW)["kibana.alert.uuid"] != first
    assert build_alert(rule, Event(_doc(), "logs-other", "ev-1"), now=NOW)["kibana.alert.uuid"] != first
    assert build_alert(rule, Event(_doc(), INDEX, "ev-2"), now=NOW)["kibana.alert.uuid"] != first


def test_alert_uuid_without_event_id_hashes_the_content():
    rule = _rule()
    a = build_alert(rule, Event(_doc()), now=NOW)
    # the same content with its keys in another order is the same event
    b = build_alert(rule, Event(dict(reversed(list(_doc().items())))), now=NOW)
    c = build_alert(rule, Event(_doc(user={"name": "alice"})), now=NOW)
    assert a["kibana.alert.uuid"] == b["kibana.alert.uuid"] != c["kibana.alert.uuid"]
    assert a["kibana.alert.ancestors"][0]["id"] == b["kibana.alert.ancestors"][0]["id"]


def test_scanning_twice_gives_the_same_alert_ids(tmp_path):
    events = [
        Event(_doc(process={"name": n, "executable": f"/usr/bin/{n}"}), INDEX) for n in ("sh", "vi", "cp")
    ]
    first = [a["kibana.alert.uuid"] for a in Engine(bundled_rules().rules, now=NOW).scan(events)]
    second = [a["kibana.alert.uuid"] for a in Engine(bundled_rules().rules).scan(events)]
    assert len(first) == 3 and len(set(first)) == 3 and first == second


# --- reason (reason_formatters.ts) ----------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (
            _doc(),
            "file event with process curl, file x.sh, by root on web-1 created low alert R.",
        ),
        ({}, "event created low alert R."),
        ({"host": {"name": "h"}}, "event on h created low alert R."),
        ({"user": {"name": "u"}}, "event by u created low alert R."),
        (
            {"event": {"category": ["process", "file"]}, "process": {"name": "a", "parent": {"name": "b"}}},
            "process, file event with process a, parent process b, created low alert R.",
        ),
        (
            {"source": {"ip": "10.0.0.1", "port": "22"}, "destination": {"ip": ["1.1.1.1", "::1"]}},
            "event with source 10.0.0.1:22, destination 1.1.1.1, ::1 created low alert R.",
        ),
        # a bare number is not shown (JavaScript numbers have no length), an array of one is
        ({"source": {"ip": "10.0.0.1", "port": 22}}, "event with source 10.0.0.1 created low alert R."),
        ({"source": {"port": [22]}}, "event with:22, created low alert R."),
        # a lone "-" and empty values are left out
        (
            {"process": {"name": "-"}, "file": {"name": ""}, "host": {"name": []}},
            "event created low alert R.",
        ),
        ({"user.name": "flat", "event.category": "network"}, "network event by flat created low alert R."),
    ],
)
def test_reason_follows_kibanas_template(doc, reason):
    assert build_reason("R", "low", doc) == reason


def test_reason_of_the_seed_rule_on_an_elastic_defend_event(shared):
    line = (shared / "conformance" / "elastic-defend" / "events.ndjson").read_bytes().splitlines()[1]
    hit = orjson.loads(line)
    alert = build_alert(_seed(), Event(hit["_source"], hit["_index"]), now=NOW)
    assert alert["kibana.alert.reason"] == (
        "file event with process systemd-journald, file .#8:5203253Z9Q47q, by root "
        "on endpoint-complete-deb-gd-1 created low alert Dracut Module Creation."
    )
    assert alert["kibana.alert.original_time"] == "2024-10-16T11:06:12.200Z"
    assert alert["kibana.alert.ancestors"][0]["index"] == hit["_index"]


# --- severity and risk score mappings ------------------------------------------------


def test_severity_mapping_highest_matching_severity_wins():
    rule = _rule(
        severity_mapping=[
            {"field": "host.name", "operator": "equals", "value": "web-1", "severity": "critical"},
            {"field": "user.name", "operator": "equals", "value": "root", "severity": "medium"},
            {"field": "user.id", "operator": "equals", "value": "0", "severity": "high"},
        ]
    )
    assert build_alert(rule, Event(_doc()), now=NOW)["kibana.alert.severity"] == "critical"
    other_host = build_alert(rule, Event(_doc(host={"name": "db"})), now=NOW)
    # user.id is the number 0 in Elastic Defend events: compared as the string "0"
    assert other_host["kibana.alert.severity"] == "high"
    assert other_host["kibana.alert.reason"].endswith("created high alert Test rule.")
    assert other_host["kibana.alert.rule.severity"] == "low"
    nobody = build_alert(rule, Event({"host": {"name": "db"}}), now=NOW)
    assert nobody["kibana.alert.severity"] == "low"


def test_severity_mapping_on_event_severity_compares_numbers():
    rule = _rule(severity_mapping=[{"field": "event.severity", "value": "73.9", "severity": "high"}])
    assert build_alert(rule, Event({"event": {"severity": 73}}), now=NOW)["kibana.alert.severity"] == "high"
    assert build_alert(rule, Event({"event": {"severity": "73"}}), now=NOW)["kibana.alert.severity"] == "low"


def test_risk_score_mapping_takes_the_largest_valid_value():
    rule = _rule(risk_score_mapping=[{"field": "x.risk", "operator": "equals", "value": ""}])
    assert (
        build_alert(rule, Event({"x": {"risk": [10, "55", 101, -1, "n/a"]}}), now=NOW)[
            "kibana.alert.risk_score"
        ]
        == 55
    )
    assert build_alert(rule, Event({"x": {"risk": 12.5}}), now=NOW)["kibana.alert.risk_score"] == 12.5
    assert build_alert(rule, Event({"x": {"risk": 300}}), now=NOW)["kibana.alert.risk_score"] == 21
    assert build_alert(rule, Event({}), now=NOW)["kibana.alert.risk_score"] == 21


# --- sequences (build_alert_group_from_sequence.ts) ------------------------------------


def _sequence_events():
    a = Event(_doc(process={"name": "curl", "executable": "/usr/bin/curl"}), INDEX, "e1")
    b = Event(_doc(process={"name": "sh", "executable": "/bin/sh"}, file={"name": "y.sh"}), INDEX, "e2")
    return a, b


def test_sequence_gives_a_shell_and_building_blocks_tied_by_group_id():
    rule = _rule(query="sequence [file where true] [file where true]")
    a, b = _sequence_events()
    shell, *blocks = build_sequence_alerts(rule, [a, None, b], now=NOW)
    assert len(blocks) == 2
    group = shell["kibana.alert.group.id"]
    assert group == shell["kibana.alert.uuid"]
    assert [x["kibana.alert.group.id"] for x in blocks] == [group, group]
    assert [x["kibana.alert.group.index"] for x in blocks] == [0, 1]
    assert all(x["kibana.alert.building_block_type"] == "default" for x in blocks)
    assert "kibana.alert.building_block_type" not in shell and "kibana.alert.group.index" not in shell
    assert [x["kibana.alert.depth"] for x in blocks] == [1, 1] and shell["kibana.alert.depth"] == 2
    assert blocks[0]["kibana.alert.ancestors"] == [{"id": "e1", "type": "event", "index": INDEX, "depth": 0}]
    assert shell["kibana.alert.ancestors"] == [
        {"id": "e1", "type": "event", "index": INDEX, "depth": 0},
        {"id": blocks[0]["kibana.alert.uuid"], "type": "signal", "index": "", "depth": 1, "rule": "r-1"},
        {"id": "e2", "type": "event", "index": INDEX, "depth": 0},
        {"id": blocks[1]["kibana.alert.uuid"], "type": "signal", "index": "", "depth": 1, "rule": "r-1"},
    ]
    assert shell["event"]["kind"] == "signal" and shell["kibana.alert.workflow_status"] == "open"
    ids = [x["kibana.alert.uuid"] for x in (shell, *blocks)]
    assert len(set(ids)) == 3
    again = [x["kibana.alert.uuid"] for x in build_sequence_alerts(rule, [a, None, b])]
    assert again == ids


def test_sequence_shell_holds_what_its_events_share_and_reasons_on_it():
    rule = _rule(query="sequence [file where true] [file where true]")
    a, b = _sequence_events()
    shell, first, second = build_sequence_alerts(rule, [a, b], now=NOW)
    assert shell["host"] == {"name": "web-1", "os": {"type": "linux"}}
    assert shell["user"] == {"name": "root", "id": 0}
    assert "process" not in shell and "file" not in shell
    # the reason is built on the shared fields only
    assert shell["kibana.alert.reason"] == "file event by root on web-1 created low alert Test rule."
    assert first["kibana.alert.reason"].startswith("file event with process curl, file x.sh,")
    assert second["kibana.alert.reason"].startswith("file event with process sh, file y.sh,")
    assert shell["kibana.alert.original_event.action"] == "creation"


def test_sequence_building_block_ids_depend_on_the_whole_sequence():
    rule = _rule(query="sequence [file where true] [file where true]")
    a, b = _sequence_events()
    c = Event(_doc(), INDEX, "e3")
    one = build_sequence_alerts(rule, [a, b], now=NOW)
    two = build_sequence_alerts(rule, [a, c], now=NOW)
    assert one[1]["kibana.alert.uuid"] != two[1]["kibana.alert.uuid"]


def test_sequences_take_no_severity_mapping():
    rule = _rule(
        query="sequence [file where true] [file where true]",
        severity_mapping=[{"field": "host.name", "value": "web-1", "severity": "critical"}],
    )
    shell, *blocks = build_sequence_alerts(rule, list(_sequence_events()), now=NOW)
    assert {x["kibana.alert.severity"] for x in (shell, *blocks)} == {"low"}


def test_intersection_follows_kibanas_object_intersection():
    a = {"f1": 1, "f2": 1, "f5": 1, "f6": None, "arr": [1, 2], "c": {"s1": 1, "s2": 1}, "only_a": {"x": 1}}
    b = {"f1": 1, "f2": 2, "f5": "1", "f6": None, "arr": [2, 3], "c": {"s1": 1, "s2": 2}, "only_a": {"y": 1}}
    assert intersection([a, b]) == {"f1": 1, "f6": None, "arr": [2], "c": {"s1": 1}}
    assert intersection([{"f": 1}, {"f": [1, 2, 3]}]) == {"f": [1]}
    assert intersection([{"t": True}, {"t": 1}]) is None
    assert intersection([{"a": 1}]) == {"a": 1} and intersection([]) is None


def _sequence_engine_alerts():
    rule = _rule(
        query='sequence by host.name [file where process.name == "curl"] [file where process.name == "sh"]'
    )
    a, b = _sequence_events()
    return list(Engine([rule], now=NOW).scan([a, b]))


def test_engine_sequence_alerts_are_tied_by_group_id():
    alerts = _sequence_engine_alerts()
    assert len(alerts) == 3
    groups = {a["kibana.alert.group.id"] for a in alerts}
    assert len(groups) == 1
    blocks = [a for a in alerts if "kibana.alert.group.index" in a]
    assert sorted(a["kibana.alert.group.index"] for a in blocks) == [0, 1]
    assert all(a["kibana.alert.building_block_type"] == "default" for a in blocks)


def test_engine_sequence_shell_is_kibanas():
    shell = _sequence_engine_alerts()[0]
    assert shell["kibana.alert.depth"] == 2 and len(shell["kibana.alert.ancestors"]) == 4
    assert shell["host"]["name"] == "web-1"
