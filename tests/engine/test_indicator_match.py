"""Elastic's prebuilt indicator match (threat_match) rules, each over events and indicators
built from its own mapping, replayed on its schedule as ``vigil scan`` does.

Semantics from Kibana's indicator match executor
(``x-pack/solutions/security/plugins/security_solution/server/lib/detection_engine/
rule_types/indicator_match/threat_mapping/``): ``build_threat_mapping_filter.ts``
(groups OR-ed, entries AND-ed, terms queries on keyword and ip fields),
``utils.ts`` ``getSignalValueMap`` (an event is keyed by its field's first value),
``get_signals_map_from_threat_index.ts`` (an indicator's values as text),
``validate_complete_threat_matches.ts``, ``enrich_signal_threat_matches.ts`` (the
``threat.enrichments`` entries), ``get_threat_list.ts`` (threat query, threat
filters and exceptions on the indicators).

For every rule: the data Kibana alerts on (an indicator of each mapping group, and
an event holding its value) and twins it does not alert on (another value, an
indicator outside the threat query's 30 days, from a transform's source, outside the
threat filters or the threat index, written after the run, or the value second in
the event's list).
"""

from __future__ import annotations

import copy
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vigil.engine.indicator_match import params_of
from vigil.engine.replay import Replay, replay
from vigil.events.model import Event

sys.path.insert(0, str(Path(__file__).parent))
from shaped_events import put  # noqa: E402

RUN = datetime(2024, 5, 20, 10, 0, tzinfo=UTC)
EVENT_INDEX = ".ds-logs-endpoint.events.process-default-2024.05.20-000001"
VALUES = {
    "ip": "203.0.113.9",
    "address": "phish@bad.example",
    "md5": "44d88612fea8a8f36de82e1278abb02f",
    "sha1": "3395856ce81f2b7382dee72602f798b642f14140",
    "sha256": "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
    "imphash": "f34d5f2d4577ed6d9ceec516c1f5a744",
    "registry.path": "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\evil",
    "url.full": "http://bad.example/payload.exe",
    "url.original": "http://bad.example/payload.exe?x=1",
    "vulnerability.id": "CVE-2024-3400",
}


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _put(doc: dict, dotted: str, value) -> None:
    put(doc, tuple(dotted.split(".")), value)


def value_for(field: str) -> str:
    for key in sorted(VALUES, key=len, reverse=True):
        if field.endswith(key):
            return VALUES[key]
    raise AssertionError(f"no test value for {field}")


def threat_index_of(rule) -> str:
    """An index the rule's threat_index takes, as Elastic Agent's ti_* packages name them."""
    patterns = rule.raw["threat_index"]
    if "logs-ti_*" in patterns:
        return "logs-ti_abusech_latest.dest_ip-3"
    if "filebeat-8*" in patterns:
        return "filebeat-8.12.0-2024.05.01"
    assert "*" not in patterns[0]
    return patterns[0]


def indicator(rule, entry, value, *, written: datetime, n: int = 1, **extra) -> Event:
    """An indicator document as the ti_* integrations write it, for one mapping entry."""
    module = "ti_rapid7_threat_command" if "rapid7" in rule.raw["threat_query"] else "ti_abusech"
    if "event.module:threatintel" in rule.raw["threat_query"]:
        module = "threatintel"  # the Filebeat module
    doc: dict = {
        "@timestamp": iso(written),
        "event": {
            "kind": "enrichment",
            "category": ["threat"],
            "type": ["indicator"],
            "module": module,
            "dataset": f"{module}.indicator",
            "ingested": iso(written),
        },
        "threat": {"feed": {"name": "AbuseCH"}},
    }
    index = extra.pop("index", None) or threat_index_of(rule)
    _put(doc, entry.value, value)
    if entry.value.endswith("url.original"):
        # The URL rule's threat query takes indicators with a url.full.
        _put(doc, "threat.indicator.url.full", "https://ioc.example/other")
    path = rule.raw.get("threat_indicator_path", "threat.indicator")
    if path != "threat.indicator":
        _put(doc, f"{path}.id", value)  # rapid7.tc.vulnerability: the vendor's own object
    for k, v in extra.items():
        _put(doc, k.replace("__", "."), v)
    return Event(doc, index=index, id=f"ioc-{n}")


def event(field: str, value, *, at: datetime, n: int = 1) -> Event:
    doc: dict = {
        "@timestamp": iso(at),
        "event": {"ingested": iso(at + timedelta(seconds=1)), "category": ["process"]},
        "host": {"name": "ws-01"},
    }
    _put(doc, field, value)
    if field == "url.original":
        _put(doc, "url.full", "https://benign.example/")  # the rule's query reads url.full
    return Event(doc, index=EVENT_INDEX, id=f"ev-{n}")


@pytest.fixture(scope="module")
def threat_rules(prebuilt_rules) -> dict:
    rules = {r.name: r for r in prebuilt_rules if r.type == "threat_match"}
    assert len(rules) == 9
    return rules


def runnable(threat_rules) -> list:
    return [r for r in threat_rules.values() if r.runnable]


def alerts_of(rule, events) -> list[dict]:
    return list(replay([rule], events))


# Rules whose indicators can pass their threat filters with real data. The deprecated
# "Threat Intel Indicator Match" rule filters on match_phrase event.dataset "ti_*", a
# phrase (never a wildcard): only a dataset named "ti_*" passes it (see below).
LITERAL_DATASET = "Deprecated - Threat Intel Indicator Match"


def test_runnable_rules(threat_rules):
    assert sorted(r.name for r in runnable(threat_rules)) == sorted(
        n for n in threat_rules if n != "Threat Intel Filebeat Module (v7.x) Indicator Match"
    )
    why = threat_rules["Threat Intel Filebeat Module (v7.x) Indicator Match"].why_not_runnable
    assert "threatintel.indicator.file.hash.*" in why


def _cases(threat_rules):
    for rule in runnable(threat_rules):
        for group in params_of(rule).mapping:
            (entry,) = group  # Elastic's rules have one entry a group
            yield rule, entry


def test_each_mapping_group_of_each_rule_alerts_with_kibanas_enrichment(threat_rules):
    checked = 0
    for rule, entry in _cases(threat_rules):
        value = value_for(entry.field)
        extra = {"event__dataset": "ti_*"} if rule.name == LITERAL_DATASET else {}
        ioc = indicator(rule, entry, value, written=RUN - timedelta(days=3), **extra)
        ev = event(entry.field, value, at=RUN)
        got = alerts_of(rule, [ioc, ev])
        assert len(got) == 1, (rule.name, entry)
        alert = got[0]
        assert alert["kibana.alert.rule.rule_type_id"] == "siem.indicatorRule"
        assert alert["kibana.alert.rule.type"] == "threat_match"
        assert alert["kibana.alert.rule.parameters"]["threat_mapping"] == rule.raw["threat_mapping"]
        assert alert["kibana.alert.ancestors"][0]["id"] == "ev-1"
        path = rule.raw.get("threat_indicator_path", "threat.indicator")
        indicator_object = ioc.doc
        for part in path.split("."):
            indicator_object = indicator_object[part]
        assert alert["threat"]["enrichments"] == [
            {
                "indicator": indicator_object,
                "feed": {"name": "AbuseCH"},
                "matched": {
                    "atomic": value,
                    "field": entry.field,
                    "id": "ioc-1",
                    "index": threat_index_of(rule),
                    "type": "indicator_match_rule",
                },
            }
        ]
        checked += 1
    assert checked == 2 + 4 + 9 + 1 + 2 + 1 + 8 + 8  # groups of the 8 runnable rules


def _no_alert_twins(rule, entry, value):
    """(why, events) Kibana raises nothing on."""
    ev = event(entry.field, value, at=RUN)
    written = RUN - timedelta(days=3)
    extra = {"event__dataset": "ti_*"} if rule.name == LITERAL_DATASET else {}

    def ioc(**over):
        return indicator(
            rule, entry, over.pop("value", value), written=over.pop("written", written), **{**extra, **over}
        )

    yield "another value", [ioc(value=value + "0"), ev]
    yield "no indicator", [ev]
    # threat_query: @timestamp >= "now-30d/d" at the run: 2024-04-20T00:00 and later.
    old = datetime(2024, 4, 19, 23, 59, 59, tzinfo=UTC)
    yield "older than the threat query's window", [ioc(written=old), ev]
    yield "written after the run", [ioc(written=RUN + timedelta(hours=2)), ev]
    yield "outside the threat index", [ioc(index="logs-endpoint.events.file-default"), ev]
    if rule.raw.get("threat_filters"):
        yield "outside the threat filters", [ioc(event__kind="event"), ev]
    if "is_ioc_transform_source" in rule.raw["threat_query"]:
        yield "a transform's source document", [ioc(labels__is_ioc_transform_source="true"), ev]
    # getSignalValueMap keys an event by its field's first value only.
    second = event(entry.field, ["198.51.100.77" if entry.field.endswith("ip") else "other", value], at=RUN)
    yield "the value second in the event's list", [ioc(), second]


def test_twins_kibana_does_not_alert_on(threat_rules):
    seen = set()
    for rule, entry in _cases(threat_rules):
        value = value_for(entry.field)
        for why, events in _no_alert_twins(rule, entry, value):
            assert alerts_of(rule, events) == [], (rule.name, entry.field, why)
            seen.add(why)
    assert len(seen) == 8


def test_indicator_value_lists_match_on_any_value_and_the_alert_keeps_them(threat_rules):
    rule = threat_rules["Threat Intel IP Address Indicator Match"]
    entry = params_of(rule).mapping[0][0]
    ioc = indicator(rule, entry, ["192.0.2.1", VALUES["ip"]], written=RUN - timedelta(days=1))
    # Two indicators, fewer events than indicators: the indicators are searched with the
    # events' values, and every value of an indicator counts.
    other = indicator(rule, entry, "192.0.2.200", written=RUN - timedelta(days=1), n=2)
    got = alerts_of(rule, [ioc, other, event("source.ip", VALUES["ip"], at=RUN)])
    assert [e["matched"]["id"] for e in got[0]["threat"]["enrichments"]] == ["ioc-1"]


def test_one_alert_per_event_with_every_match(threat_rules):
    rule = threat_rules["Threat Intel IP Address Indicator Match"]
    src, dst = (g[0] for g in params_of(rule).mapping)
    ip = VALUES["ip"]
    iocs = [indicator(rule, src, ip, written=RUN - timedelta(days=n), n=n) for n in (1, 2)]
    ev = event("source.ip", ip, at=RUN)
    _put(ev.doc, "destination.ip", ip)
    ev.doc["threat"] = {"enrichments": [{"matched": {"type": "investigation_time"}}]}
    got = alerts_of(rule, [*iocs, ev])
    assert len(got) == 1
    enrichments = got[0]["threat"]["enrichments"]
    # The event's own enrichments first, then per indicator every matched entry.
    assert enrichments[0] == {"matched": {"type": "investigation_time"}}
    assert [(e["matched"]["id"], e["matched"]["field"]) for e in enrichments[1:]] == [
        ("ioc-1", "source.ip"),
        ("ioc-1", "destination.ip"),
        ("ioc-2", "source.ip"),
        ("ioc-2", "destination.ip"),
    ]


def test_ip_values_compare_as_the_fields_api_formats_them(threat_rules):
    rule = threat_rules["Threat Intel IP Address Indicator Match"]
    entry = params_of(rule).mapping[0][0]
    ioc = indicator(rule, entry, "2001:db8::1", written=RUN - timedelta(days=1))
    # The fields API formats an ip (NetworkAddress.format): upper-case, long IPv6 is its short form.
    assert len(alerts_of(rule, [ioc, event("source.ip", "2001:DB8:0:0:0:0:0:1", at=RUN)])) == 1
    # An indicator's _source text is compared as written.
    mapped = indicator(rule, entry, "::ffff:203.0.113.9", written=RUN - timedelta(days=1))
    assert alerts_of(rule, [mapped, event("source.ip", "203.0.113.9", at=RUN)]) == []


def test_literal_match_phrase_in_the_deprecated_fleet_rule(threat_rules):
    """match_phrase "ti_*" is a phrase on a keyword: a real ti_* dataset never passes it,
    so Kibana never alerts with that rule on Elastic Agent's indicators."""
    rule = threat_rules[LITERAL_DATASET]
    entry = params_of(rule).mapping[4][0]  # source.ip
    ioc = indicator(
        rule, entry, VALUES["ip"], written=RUN - timedelta(days=1), event__dataset="ti_abusech.ip"
    )
    assert alerts_of(rule, [ioc, event("source.ip", VALUES["ip"], at=RUN)]) == []


def test_rapid7_vendor_documents_are_not_events(threat_rules):
    """The Rapid7 rule's index (logs-*) holds its own indicators, which its query
    (vulnerability.id:*) takes: the negated exists filter on rapid7.tc.vulnerability.id
    keeps them out of the events."""
    rule = threat_rules["Rapid7 Threat Command CVEs Correlation"]
    entry = params_of(rule).mapping[0][0]
    ioc = indicator(rule, entry, VALUES["vulnerability.id"], written=RUN - timedelta(days=1))
    shifted = copy.deepcopy(ioc)
    shifted.doc["event"]["ingested"] = iso(RUN)
    assert alerts_of(rule, [ioc, shifted]) == []
    got = alerts_of(rule, [ioc, event("vulnerability.id", VALUES["vulnerability.id"], at=RUN)])
    assert got[0]["threat"]["enrichments"][0]["indicator"] == {"id": VALUES["vulnerability.id"]}


def test_overlapping_runs_alert_once_and_max_signals_caps_a_run(threat_rules):
    rule = copy.copy(threat_rules["Threat Intel URL Indicator Match"])
    entry = params_of(rule).mapping[0][0]
    url = VALUES["url.full"]
    ioc = indicator(rule, entry, url, written=RUN - timedelta(days=1))
    # from now-65m, every 1h: an event 62 minutes before the second run is in both runs.
    events = [event("url.full", url, at=RUN + timedelta(minutes=m), n=m) for m in (0, 60 - 2)]
    events.append(event("url.full", url, at=RUN + timedelta(minutes=120), n=120))
    r = Replay([rule])
    for e in [ioc, *events]:
        r.feed(e)
    got = list(r.alerts())
    assert sorted(a["kibana.alert.ancestors"][0]["id"] for a in got) == ["ev-0", "ev-120", "ev-58"]
    assert len({a["kibana.alert.uuid"] for a in got}) == 3
    assert r.stats[rule.rule_id]["runs"] >= 3
    # max_signals: the newest events of the run first (sortOrder desc).
    rule.max_signals = 1
    burst = [event("url.full", url, at=RUN + timedelta(seconds=s), n=s) for s in range(5)]
    # One run over the whole burst (enabled after it, as --replay-start does).
    start = int((RUN + timedelta(seconds=30)).timestamp() * 1000)
    got = list(replay([rule], [ioc, *burst], start_ms=start))
    assert [a["kibana.alert.ancestors"][0]["id"] for a in got] == ["ev-4"]


def test_alerts_are_the_same_on_every_replay(threat_rules):
    rule = threat_rules["Threat Intel Hash Indicator Match"]
    iocs = [
        indicator(rule, g[0], value_for(g[0].value), written=RUN - timedelta(days=n), n=n)
        for n, g in enumerate(params_of(rule).mapping[:3], 1)
    ]
    events = [
        event("file.hash.sha256", VALUES["sha256"], at=RUN + timedelta(minutes=m), n=m) for m in range(3)
    ]
    first = alerts_of(rule, [*iocs, *events])
    again = alerts_of(rule, [*reversed(iocs), *events])
    assert len(first) == 3
    assert [a["kibana.alert.uuid"] for a in first] == [a["kibana.alert.uuid"] for a in again]
    # An alert's @timestamp is its run's: the first at the first event, the next an hour on
    # (the newest event first).
    runs = [(a["@timestamp"], a["kibana.alert.ancestors"][0]["id"]) for a in first]
    second = iso(RUN + timedelta(hours=1, seconds=1))
    assert runs == [(iso(RUN + timedelta(seconds=1)), "ev-0"), (second, "ev-2"), (second, "ev-1")]


def test_hostile_indicator_documents_do_not_stop_the_run(threat_rules):
    rule = threat_rules["Threat Intel IP Address Indicator Match"]
    entry = params_of(rule).mapping[0][0]
    odd = [
        indicator(rule, entry, {"nested": "object"}, written=RUN - timedelta(days=1), n=1),
        indicator(rule, entry, [None, "", 0], written=RUN - timedelta(days=1), n=2),
        indicator(rule, entry, "x" * 100_000, written=RUN - timedelta(days=1), n=3),
    ]
    odd[0].doc["@timestamp"] = "not a date"
    good = indicator(rule, entry, VALUES["ip"], written=RUN - timedelta(days=1), n=4)
    got = alerts_of(rule, [*odd, good, event("source.ip", VALUES["ip"], at=RUN)])
    assert [e["matched"]["id"] for e in got[0]["threat"]["enrichments"]] == ["ioc-4"]


def test_an_indicator_path_that_is_not_an_object_is_left_out_and_reported(threat_rules):
    """buildEnrichments throws "Expected indicator field to be an object" and Kibana's run
    fails; Vigil leaves that document out (one bad indicator blinds no run) and says so."""
    rule = threat_rules["Threat Intel IP Address Indicator Match"]
    entry = params_of(rule).mapping[0][0]
    bad = indicator(rule, entry, VALUES["ip"], written=RUN - timedelta(days=1), n=1)
    bad.doc["threat"]["indicator"] = ["<script>", VALUES["ip"]]
    bad.doc["threat.indicator.ip"] = VALUES["ip"]
    bad.origin = "feed.ndjson:7"
    good = indicator(rule, entry, VALUES["ip"], written=RUN - timedelta(days=1), n=2)
    r = Replay([rule])
    for e in [bad, good, event("source.ip", VALUES["ip"], at=RUN)]:
        r.feed(e)
    got = list(r.alerts())
    assert [e["matched"]["id"] for e in got[0]["threat"]["enrichments"]] == ["ioc-2"]
    assert r.errors == [
        (
            "feed.ndjson:7",
            f"indicator 'ioc-1' left out of rule {rule.name!r}: threat.indicator is not an object",
        )
    ]


def and_group_rule(threat_rules):
    """Elastic's URL rule with its mapping made one AND group (a copy): an indicator must
    hold both the event's url.full and its destination.ip."""
    rule = copy.copy(threat_rules["Threat Intel URL Indicator Match"])
    rule.raw = {
        **rule.raw,
        "threat_mapping": [
            {
                "entries": [
                    {"field": "url.full", "type": "mapping", "value": "threat.indicator.url.full"},
                    {"field": "destination.ip", "type": "mapping", "value": "threat.indicator.ip"},
                ]
            }
        ],
    }
    return rule


def test_and_group_entries_must_match_one_indicator(threat_rules):
    """validate_complete_threat_matches.ts: partial matches in two indicators are no match."""
    rule = and_group_rule(threat_rules)
    url_entry, ip_entry = params_of(rule).mapping[0]
    url, ip = VALUES["url.full"], VALUES["ip"]
    both = indicator(rule, url_entry, url, written=RUN - timedelta(days=1), n=1, threat__indicator__ip=ip)
    url_only = indicator(
        rule, url_entry, url, written=RUN - timedelta(days=1), n=2, threat__indicator__ip="192.0.2.1"
    )
    ip_only = indicator(
        rule,
        url_entry,
        "http://other.example/",
        written=RUN - timedelta(days=1),
        n=3,
        threat__indicator__ip=ip,
    )
    ev = event("url.full", url, at=RUN)
    _put(ev.doc, "destination.ip", ip)
    got = alerts_of(rule, [both, url_only, ip_only, ev])
    assert [(e["matched"]["id"], e["matched"]["field"]) for e in got[0]["threat"]["enrichments"]] == [
        ("ioc-1", "url.full"),
        ("ioc-1", "destination.ip"),
    ]
    assert alerts_of(rule, [url_only, ip_only, ev]) == []


def test_and_group_values_are_single_on_the_side_the_query_is_built_from(threat_rules):
    """build_threat_mapping_filter.ts: an AND group is match queries built from single values
    (createInnerAndClauses: value.length === 1); the matched queries always come from the
    events' values (getSignalIdToMatchedQueriesMap), and when the events are not fewer than
    the indicators, the events are first searched with the indicators' (createThreatSignal)."""
    rule = and_group_rule(threat_rules)
    url_entry = params_of(rule).mapping[0][0]
    url, ip = VALUES["url.full"], VALUES["ip"]

    def ioc(n, ips):
        return indicator(
            rule, url_entry, url, written=RUN - timedelta(days=1), n=n, threat__indicator__ip=ips
        )

    listed_event = event("url.full", url, at=RUN)
    _put(listed_event.doc, "destination.ip", [ip, "198.51.100.1"])
    single_event = event("url.full", url, at=RUN)
    _put(single_event.doc, "destination.ip", ip)
    decoys = [ioc(n, "192.0.2.9") for n in (5, 6)]
    # One event, three indicators: the events' values build the query, so a listed
    # destination.ip matches nothing, and a listed indicator value is any of its values.
    assert alerts_of(rule, [ioc(1, ip), *decoys, listed_event]) == []
    assert len(alerts_of(rule, [ioc(1, [ip, "192.0.2.1"]), *decoys, single_event])) == 1
    # One event, one indicator: the indicator's value must be single too.
    assert len(alerts_of(rule, [ioc(1, ip), single_event])) == 1
    assert alerts_of(rule, [ioc(1, ip), listed_event]) == []
    assert alerts_of(rule, [ioc(1, [ip, "192.0.2.1"]), single_event]) == []


def test_an_event_keeps_the_first_200_matches(threat_rules):
    """MAX_NUMBER_OF_SIGNAL_MATCHES (enrich_signal_threat_matches.ts): 200 matched queries."""
    rule = threat_rules["Threat Intel IP Address Indicator Match"]
    entry = params_of(rule).mapping[0][0]
    iocs = [indicator(rule, entry, VALUES["ip"], written=RUN - timedelta(days=1), n=n) for n in range(250)]
    got = alerts_of(rule, [*iocs, event("source.ip", VALUES["ip"], at=RUN)])
    assert [e["matched"]["id"] for e in got[0]["threat"]["enrichments"]] == [f"ioc-{n}" for n in range(200)]


def test_exceptions_apply_to_indicators_too(threat_rules, tmp_path):
    """get_threat_list.ts passes the rule's exception filter to the indicator search
    ("Exceptions shouldn't apply to threat list??"), as it does to the events."""
    import orjson

    from vigil.engine import Engine
    from vigil.rules.exceptions import load_exceptions

    header = {"list_id": "ti-ok", "namespace_type": "single", "type": "detection", "name": "ok"}
    items = [
        {"field": "threat.feed.name", "type": "match", "value": "Trusted", "operator": "included"},
        {"field": "host.name", "type": "match", "value": "scanner-01", "operator": "included"},
    ]
    lines = [header] + [
        {"item_id": f"i{n}", "list_id": "ti-ok", "namespace_type": "single", "type": "simple", "entries": [e]}
        for n, e in enumerate(items)
    ]
    path = tmp_path / "exceptions.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    lists = load_exceptions(path)
    assert lists.problems == []
    rule = copy.copy(threat_rules["Threat Intel IP Address Indicator Match"])
    rule.exceptions_list = [{"id": "x", "list_id": "ti-ok", "namespace_type": "single", "type": "detection"}]
    engine = Engine([rule], exceptions=lists)
    entry = params_of(rule).mapping[0][0]
    trusted = indicator(rule, entry, VALUES["ip"], written=RUN - timedelta(days=1), n=1)
    trusted.doc["threat"]["feed"]["name"] = "Trusted"
    other = indicator(rule, entry, VALUES["ip"], written=RUN - timedelta(days=1), n=2)
    ev = event("source.ip", VALUES["ip"], at=RUN)
    got = list(replay([rule], [trusted, other, ev], engine=engine))
    assert [e["matched"]["id"] for e in got[0]["threat"]["enrichments"]] == ["ioc-2"]
    assert list(replay([rule], [trusted, ev], engine=engine)) == []
    ev.doc["host"]["name"] = "scanner-01"
    assert list(replay([rule], [trusted, other, ev], engine=engine)) == []
