"""Indicator match rules through ``vigil scan`` and ``vigil rules``: indicators from the
inputs (a ``logs-ti_*`` index) or from ``--indicators FILE`` (an Elasticsearch export),
with Elastic's prebuilt rules from ``rules/threat_intel``."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from vigil.cli import main

RUN = "2024-05-20T10:00:00.000Z"
IP = "203.0.113.9"


@pytest.fixture(scope="module")
def rules_dir(shared) -> Path:
    return shared / "detection-rules" / "rules" / "threat_intel"


def scan(capsys, *argv) -> tuple[int, list[dict], str]:
    code = main(["scan", "--format", "ndjson", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, [orjson.loads(line) for line in out.splitlines() if line.strip()], err


def write(path: Path, docs: list) -> Path:
    path.write_text("".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs))
    return path


def ioc_hit(n: int, ip: str = IP, **source) -> dict:
    """An indicator as an Elasticsearch export hit of Elastic Agent's abuse.ch latest index."""
    doc = {
        "@timestamp": "2024-05-18T00:00:00.000Z",
        "event": {
            "kind": "enrichment",
            "category": ["threat"],
            "type": ["indicator"],
            "module": "ti_abusech",
            "dataset": "ti_abusech.ip",
            "ingested": "2024-05-18T00:00:05.000Z",
        },
        "threat": {"indicator": {"ip": ip, "type": "ipv4-addr"}, "feed": {"name": "AbuseCH"}},
        **source,
    }
    return {"_index": "logs-ti_abusech_latest.dest_ip-3", "_id": f"ioc-{n}", "_source": doc}


def network_event(n: int, ip: str) -> dict:
    return {
        "_index": ".ds-logs-endpoint.events.network-default-2024.05.20-000001",
        "_id": f"ev-{n}",
        "_source": {
            "@timestamp": RUN,
            "event": {"ingested": RUN, "category": ["network"]},
            "source": {"ip": "10.0.0.5"},
            "destination": {"ip": ip},
            "host": {"name": "ws-01"},
        },
    }


def rule_file(rules_dir: Path) -> Path:
    return rules_dir / "threat_intel_indicator_match_address.toml"


def test_indicators_file_enriches_the_alert(capsys, tmp_path, rules_dir):
    feed = write(tmp_path / "feed.ndjson", [ioc_hit(1), ioc_hit(2, ip="192.0.2.1")])
    events = write(tmp_path / "events.ndjson", [network_event(1, IP), network_event(2, "198.51.100.1")])
    code, alerts, err = scan(capsys, "--rules", rule_file(rules_dir), "--indicators", feed, events)
    assert code == 0, err
    assert len(alerts) == 1
    (alert,) = alerts
    assert alert["kibana.alert.ancestors"][0]["id"] == "ev-1"
    assert alert["threat"]["enrichments"] == [
        {
            "indicator": {"ip": IP, "type": "ipv4-addr"},
            "feed": {"name": "AbuseCH"},
            "matched": {
                "atomic": IP,
                "field": "destination.ip",
                "id": "ioc-1",
                "index": "logs-ti_abusech_latest.dest_ip-3",
                "type": "indicator_match_rule",
            },
        }
    ]
    assert "2 events read" in err  # the indicator documents are not events


def test_indicators_among_the_inputs_give_the_same_alert(capsys, tmp_path, rules_dir):
    feed = write(tmp_path / "feed.ndjson", [ioc_hit(1)])
    events = write(tmp_path / "events.ndjson", [network_event(1, IP)])
    _, by_option, _ = scan(capsys, "--rules", rule_file(rules_dir), "--indicators", feed, events)
    _, by_input, err = scan(capsys, "--rules", rule_file(rules_dir), feed, events)
    assert by_input == by_option and len(by_input) == 1
    assert "had no indicators" not in err
    # Without indicators, nothing, and the summary says why.
    code, none, err = scan(capsys, "--rules", rule_file(rules_dir), events)
    assert code == 0 and none == []
    assert "1 indicator match rule had no indicators" in err


def test_bad_indicator_lines_are_reported_and_the_rest_read(capsys, tmp_path, rules_dir):
    bad_object = ioc_hit(3)
    bad_object["_source"]["threat"]["indicator"] = "<b>not an object</b>"
    bad_object["_source"]["threat.indicator.ip"] = IP
    feed = write(tmp_path / "feed.ndjson", ['{"_index": "logs-ti_x", "_source": {', ioc_hit(1), bad_object])
    events = write(tmp_path / "events.ndjson", [network_event(1, IP)])
    code, alerts, err = scan(capsys, "--rules", rule_file(rules_dir), "--indicators", feed, events)
    assert code == 1
    assert [e["matched"]["id"] for e in alerts[0]["threat"]["enrichments"]] == ["ioc-1"]
    assert "feed.ndjson:1" in err
    assert "feed.ndjson:3" in err and "threat.indicator is not an object" in err
    code, _, err = scan(capsys, "--rules", rule_file(rules_dir), "--indicators", tmp_path / "missing", events)
    assert code != 0 and "missing" in err


def test_every_threat_intel_rule_listed_runnable_and_valid(capsys, rules_dir):
    assert main(["rules", "list", "--rules", str(rules_dir), "--format", "ndjson"]) == 0
    out, _ = capsys.readouterr()
    listed = [orjson.loads(line) for line in out.splitlines() if line.strip()]
    threat = [r for r in listed if r["type"] == "threat_match"]
    assert len(threat) == 6 and all(r["runnable"] for r in threat)
    assert main(["rules", "validate", str(rules_dir)]) == 0


def test_validate_checks_threat_parameters_as_kibana_does(capsys, tmp_path):
    base = {
        "rule_id": "tm-1",
        "name": "custom indicator match",
        "type": "threat_match",
        "language": "kuery",
        "query": "source.ip:*",
        "index": ["logs-*"],
        "threat_index": ["logs-ti_*"],
        "threat_query": "threat.indicator.ip:*",
        "threat_mapping": [
            {"entries": [{"field": "source.ip", "type": "mapping", "value": "threat.indicator.ip"}]}
        ],
        "risk_score": 50,
        "severity": "medium",
        "description": "d",
    }
    bad = [
        {**base, "rule_id": "a", "threat_mapping": []},
        {
            **base,
            "rule_id": "b",
            "threat_mapping": [{"entries": [{"field": "source.ip", "type": "mapping"}]}],
        },
        {**base, "rule_id": "c", "threat_index": []},
        {**base, "rule_id": "d", "threat_query": "threat.indicator.ip:(a"},
        {**base, "rule_id": "e", "items_per_search": 0},
    ]
    path = write(tmp_path / "rules.ndjson", [base, *bad])
    assert main(["rules", "validate", str(path), "--format", "ndjson"]) == 1
    out, _ = capsys.readouterr()
    problems = [orjson.loads(line) for line in out.splitlines() if line.strip()]
    assert sorted(p["rule_id"] for p in problems) == ["a", "b", "c", "d", "e"]
    messages = " ".join(p["message"] for p in problems)
    for part in (
        "threat_mapping must be a non-empty list",
        "needs a field and a value",
        "threat_query line 1",
    ):
        assert part in messages
