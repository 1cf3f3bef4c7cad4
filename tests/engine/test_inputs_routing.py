"""From input files to the rules that read them: which index each event belongs to.

An event's index is ``--index`` for its input, else the ``_index`` of an exported
hit, else ``data_stream.type-dataset-namespace`` (Fleet's data stream naming); with
none it is offered to every rule. A rule reads only the indices its patterns select
(Elasticsearch multi-target syntax: ``*`` wildcards, comma lists, ``-pattern``
exclusions after an including pattern).
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from vigil.engine import Engine
from vigil.events.readers import ReadStats, read_inputs
from vigil.rules import bundled_rules
from vigil.rules.model import rule_from_dict

NOW = datetime(2024, 1, 1, tzinfo=UTC)
MODULE = "/usr/lib/dracut/modules.d/99evil/module-setup.sh"


def _doc(**extra) -> dict:
    doc = {
        "@timestamp": "2024-01-01T00:00:00Z",
        "event": {"category": ["file"], "type": ["creation"], "action": "creation"},
        "host": {"os": {"type": "linux"}, "name": "web-1"},
        "file": {"path": MODULE, "name": "module-setup.sh", "extension": "sh"},
        "process": {"executable": "/usr/bin/curl", "name": "curl"},
    }
    doc.update(extra)
    return doc


def _rule(rule_id: str, index: list[str]):
    return rule_from_dict(
        {"rule_id": rule_id, "name": rule_id, "type": "eql", "query": "file where true", "index": index}
    )


def _routed(rules, events) -> dict[str, list[str]]:
    """For each rule, the alerts' source indices (ancestors) in order."""
    out: dict[str, list[str]] = {r.rule_id: [] for r in rules}
    for alert in Engine(rules, now=NOW).scan(events):
        out[alert["kibana.alert.rule.rule_id"]].append(alert["kibana.alert.ancestors"][0]["index"])
    return out


def _write(path, items):
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in items) + b"\n")
    return path


DS = {"type": "logs", "dataset": "endpoint.events.file", "namespace": "prod"}


def test_index_comes_from_hit_then_data_stream_then_none(tmp_path):
    f = _write(
        tmp_path / "mixed.ndjson",
        [
            {"_index": "endgame-2024", "_id": "h1", "_source": _doc(data_stream=DS)},
            _doc(data_stream=DS),
            {"data_stream.type": "logs", "data_stream.dataset": "sentinel_one_cloud_funnel.event", **_doc()},
            _doc(),
            _doc(data_stream={"type": "logs", "dataset": "x"}),  # no namespace: no index
        ],
    )
    assert [e.index for e in read_inputs([f])] == [
        "endgame-2024",  # the hit's _index wins over its data_stream fields
        "logs-endpoint.events.file-prod",
        None,  # flat data_stream fields without a namespace
        None,
        None,  # no namespace
    ]


def test_flat_data_stream_fields_name_the_index(tmp_path):
    doc = {
        "data_stream.type": "logs",
        "data_stream.dataset": "sentinel_one_cloud_funnel.event",
        "data_stream.namespace": "default",
        **_doc(),
    }
    [event] = read_inputs([_write(tmp_path / "flat.ndjson", [doc])])
    assert event.index == "logs-sentinel_one_cloud_funnel.event-default"


def test_index_option_wins_for_its_input(tmp_path):
    f = _write(tmp_path / "a.ndjson", [{"_index": "endgame-1", "_source": _doc()}, _doc(data_stream=DS)])
    assert [e.index for e in read_inputs([f], index="winlogbeat-x")] == ["winlogbeat-x"] * 2


def test_seed_rule_reads_its_indices_only(tmp_path):
    [seed] = bundled_rules().rules
    f = _write(
        tmp_path / "hits.ndjson",
        [
            {"_index": "logs-endpoint.events.file-default", "_id": "1", "_source": _doc()},
            {"_index": "logs-sentinel_one_cloud_funnel.event-default", "_id": "2", "_source": _doc()},
            {"_index": "endgame-8.0.0-000001", "_id": "3", "_source": _doc()},
            {"_index": "logs-endpoint.events.process-default", "_id": "4", "_source": _doc()},
            {"_index": "auditbeat-8.0.0", "_id": "5", "_source": _doc()},
            {"_id": "6", "_source": _doc()},  # no index: every rule reads it
        ],
    )
    stats = ReadStats()
    routed = _routed([seed], read_inputs([f], stats=stats))
    assert stats.events == 6
    assert routed[seed.rule_id] == [
        "logs-endpoint.events.file-default",
        "logs-sentinel_one_cloud_funnel.event-default",
        "endgame-8.0.0-000001",
        "",
    ]


def test_event_without_index_reaches_every_rule(tmp_path):
    rules = [_rule("win", ["winlogbeat-*"]), _rule("linux", ["logs-endpoint.*"])]
    f = _write(tmp_path / "plain.ndjson", [_doc()])
    assert _routed(rules, read_inputs([f])) == {"win": [""], "linux": [""]}


@pytest.mark.parametrize(
    ("patterns", "index", "read"),
    [
        (["logs-*"], "logs-endpoint.events.file-default", True),
        (["logs-endpoint.events.file*"], "logs-endpoint.events.file-default", True),
        (["logs-endpoint.events.file*"], "logs-endpoint.events.files", True),
        (["logs-endpoint.events.file*"], "logs-endpoint.events.process-default", False),
        (["logs-*", "-logs-endpoint.events.process-*"], "logs-endpoint.events.process-default", False),
        (["logs-*", "-logs-endpoint.events.process-*"], "logs-endpoint.events.file-default", True),
        (["logs-*,-logs-test-*"], "logs-test-1", False),
        (["-logs-test-*", "logs-*"], "logs-test-1", True),  # an exclusion only removes what came before
        (["endgame-*"], "Endgame-1", False),  # index names are case-sensitive
        (["logs-?"], "logs-a", False),  # only * is a wildcard in index patterns
        (["logs-?"], "logs-?", True),
    ],
)
def test_rule_index_patterns(tmp_path, patterns, index, read):
    rule = _rule("r", patterns)
    f = _write(tmp_path / "hit.ndjson", [{"_index": index, "_id": "1", "_source": _doc()}])
    assert _routed([rule], read_inputs([f]))["r"] == ([index] if read else [])


def test_two_inputs_each_with_its_own_index_in_one_scan(tmp_path):
    rules = [_rule("win", ["winlogbeat-*"]), _rule("linux", ["logs-endpoint.*"])]
    a = _write(tmp_path / "a.ndjson", [_doc()])
    b = _write(tmp_path / "b.ndjson", [_doc(host={"name": "other", "os": {"type": "linux"}})])
    events = [*read_inputs([a], index="winlogbeat-1"), *read_inputs([b], index="logs-endpoint.events.file-x")]
    assert _routed(rules, events) == {"win": ["winlogbeat-1"], "linux": ["logs-endpoint.events.file-x"]}


def test_elastic_defend_export_routes_by_its_data_stream(shared):
    [seed] = bundled_rules().rules
    path = shared / "conformance" / "elastic-defend" / "events.ndjson"
    events = list(read_inputs([path]))
    creation = next(e for e in events if e.doc["event"]["action"] == "creation")
    creation.doc["file"] = {"path": MODULE, "name": "module-setup.sh", "extension": "sh"}
    alerts = list(Engine([seed], now=NOW).scan([creation]))
    assert len(alerts) == 1
