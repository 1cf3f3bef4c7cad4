"""Threshold and new terms semantics in detail, as Kibana's executors have them
(``rule_types/threshold/`` and ``rule_types/new_terms/`` of Kibana's detection engine),
and the replayed schedule of ``vigil scan``."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from vigil.engine.replay import event_time, replay, schedule
from vigil.engine.threshold import terms_hash, threshold_uuid
from vigil.events.model import Event
from vigil.rules.model import rule_from_dict
from vigil.rules.params import new_terms_params, threshold_params

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MS = int(T0.timestamp() * 1000)


def _threshold_rule(fields, value, cardinality=None, **extra):
    spec = {"field": fields, "value": value}
    if cardinality:
        spec["cardinality"] = [cardinality]
    return rule_from_dict(
        {
            "rule_id": "thr",
            "name": "Threshold",
            "type": "threshold",
            "language": "kuery",
            "query": "event.category:authentication",
            "from": "now-9m",
            "interval": "5m",
            "threshold": spec,
            **extra,
        }
    )


def _new_terms_rule(fields, history="now-7d", **extra):
    return rule_from_dict(
        {
            "rule_id": "nt",
            "name": "New terms",
            "type": "new_terms",
            "language": "kuery",
            "query": "event.category:process",
            "from": "now-9m",
            "new_terms_fields": fields,
            "history_window_start": history,
            "timestamp_override": "event.ingested",
            **extra,
        }
    )


def _event(seconds: float, category="authentication", **fields) -> Event:
    doc = {"@timestamp": (T0 + timedelta(seconds=seconds)).isoformat(), "event": {"category": category}}
    doc.update(fields)
    return Event(doc, "logs-x", None, None)


# --- Kibana's own test vectors and parameter checks ---------------------------------


def test_threshold_uuid_is_kibanas():
    # threshold/utils.test.ts: calculateThresholdSignalUuid
    started = int(datetime(2020, 12, 17, 16, 27, tzinfo=UTC).timestamp() * 1000)
    assert threshold_uuid("abcd", started, ["agent.name"], ()) == "a4832768-a379-583a-b1a2-e2ce2ad9e6e9"
    started = int(datetime(2019, 11, 18, 13, 32, tzinfo=UTC).timestamp() * 1000)
    assert (
        threshold_uuid("abcd", started, ["host.ip"], ("1.2.3.4",)) == "ee8870dc-45ff-5e6c-a2f9-80886651ce03"
    )


def test_terms_hash_sorts_by_field():
    assert terms_hash([("b", 1), ("a", "x")]) == terms_hash([("a", "x"), ("b", 1)])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"new_terms_fields": [], "history_window_start": "now-7d"}, "1 to 3 fields"),
        ({"new_terms_fields": ["a", "b", "c", "d"], "history_window_start": "now-7d"}, "1 to 3 fields"),
        ({"new_terms_fields": ["a", "a"], "history_window_start": "now-7d"}, "repeat"),
        ({"new_terms_fields": ["a"], "history_window_start": "now-5m"}, "earlier than from"),
        ({"new_terms_fields": ["a"]}, "history_window_start"),
    ],
)
def test_new_terms_parameters_checked_as_kibana(raw, message):
    with pytest.raises(ValueError, match=message):
        new_terms_params(raw, "now-9m")
    rule = rule_from_dict(
        {"rule_id": "x", "name": "x", "type": "new_terms", "language": "kuery", "query": "a:1", **raw}
    )
    assert not rule.runnable and message in rule.why_not_runnable


def test_threshold_parameters_checked():
    assert threshold_params({"threshold": {"field": "host.id", "value": 2}}).fields == ("host.id",)
    assert threshold_params({"threshold": {"field": "", "value": 2}}).fields == ()
    with pytest.raises(ValueError, match="threshold.value"):
        threshold_params({"threshold": {"field": ["a"], "value": 0}})


def test_new_terms_parameters_from_the_toml_shape():
    p = new_terms_params(
        {
            "new_terms": {
                "field": "new_terms_fields",
                "value": ["host.id"],
                "history_window_start": [{"field": "history_window_start", "value": "now-10d"}],
            }
        },
        "now-9m",
    )
    assert p.fields == ("host.id",) and p.history_ms == 10 * 86_400_000


# --- the schedule -------------------------------------------------------------------


def test_schedule_runs_every_interval_and_skips_empty_windows():
    rule = _threshold_rule(["user.name"], 1)
    times = [MS, MS + 60_000, MS + 3_600_000]
    runs = list(schedule(rule, times))
    # Runs at T0, T0+5m and T0+10m (whose look-back reaches T0+1m, both ends included),
    # then straight to the first run that reaches T0+1h.
    assert runs == [
        (MS - 540_000, MS),
        (MS - 240_000, MS + 300_000),
        (MS + 60_000, MS + 600_000),
        (MS + 3_600_000 - 540_000, MS + 3_600_000),
    ]


def test_event_time_prefers_the_override_then_timestamp():
    assert (
        event_time(
            {"@timestamp": "2024-05-01T12:00:00Z", "event": {"ingested": "2024-05-01T12:01:00Z"}},
            "event.ingested",
        )
        == MS + 60_000
    )
    assert event_time({"@timestamp": "2024-05-01T12:00:00Z"}, "event.ingested") == MS
    assert event_time({"message": "no time"}, None) is None


# --- threshold ----------------------------------------------------------------------


def test_threshold_array_values_each_their_own_bucket():
    rule = _threshold_rule(["user.name"], 2)
    events = [_event(0, user={"name": ["alice", "bob"]}), _event(1, user={"name": "alice"})]
    alerts = list(replay([rule], events))
    assert [a["user.name"] for a in alerts] == ["alice"]
    assert alerts[0]["kibana.alert.threshold_result"]["count"] == 2


def test_threshold_missing_field_not_counted_and_several_fields():
    rule = _threshold_rule(["user.name", "source.ip"], 2)
    events = [
        _event(0, user={"name": "alice"}, source={"ip": "10.0.0.1"}),
        _event(1, user={"name": "alice"}),
        _event(2, user={"name": "alice"}, source={"ip": "10.0.0.1"}),
    ]
    alerts = list(replay([rule], events))
    assert len(alerts) == 1
    assert alerts[0]["kibana.alert.threshold_result"]["terms"] == [
        {"field": "user.name", "value": "alice"},
        {"field": "source.ip", "value": "10.0.0.1"},
    ]
    assert alerts[0]["kibana.alert.threshold_result"]["from"] == "2024-05-01T12:00:00.000Z"


def test_threshold_without_fields_and_with_cardinality():
    rule = _threshold_rule([], 3, {"field": "user.name", "value": 2})
    same = [_event(i, user={"name": "alice"}) for i in range(3)]
    assert list(replay([rule], same)) == []
    mixed = [*same, _event(3, user={"name": "bob"})]
    (alert,) = list(replay([rule], mixed))
    result = alert["kibana.alert.threshold_result"]
    assert result["terms"] == [] and result["count"] == 4
    assert result["cardinality"] == [{"field": "user.name", "value": 2}]


def test_threshold_signal_history_leaves_counted_events_out():
    rule = _threshold_rule(["user.name"], 3)
    # Enabled at T0+5m: its first run counts the three events of T0+100s. The next run
    # (T0+10m, looking back to T0+1m) holds them and two newer ones: 5 in that window,
    # but the three were counted already, so no second alert...
    start = MS + 300_000
    events = [_event(100 + i, user={"name": "alice"}) for i in range(3)]
    events += [_event(350 + i, user={"name": "alice"}) for i in range(2)]
    assert len(list(replay([rule], events, start_ms=start))) == 1
    # ...until a third newer one reaches the threshold again.
    events.append(_event(352, user={"name": "alice"}))
    alerts = list(replay([rule], events, start_ms=start))
    assert [a["kibana.alert.threshold_result"]["count"] for a in alerts] == [3, 3]


def test_threshold_history_excludes_an_array_event_from_every_bucket():
    # get_threshold_bucket_filters: a must_not of term queries, which any value of an
    # array meets, so an event counted for alice is not counted for bob later either.
    rule = _threshold_rule(["user.name"], 2)
    events = [
        _event(90, user={"name": ["alice", "bob"]}),
        _event(100, user={"name": "alice"}),
        _event(350, user={"name": "bob"}),
    ]
    # Enabled at T0+5m: alice reaches 2 (bob 1); the run at T0+10m still holds the event
    # of T0+90s, left out for every bucket: bob stays at 1.
    alerts = list(replay([rule], events, start_ms=MS + 300_000))
    assert [a["user.name"] for a in alerts] == ["alice"]


def test_threshold_max_signals_per_run():
    rule = _threshold_rule(["user.name"], 1, max_signals=2)
    events = [_event(i, user={"name": f"u{i}"}) for i in range(5)]
    alerts = list(replay([rule], events))
    # The run at T0 sees u0; the next sees all five, u0 already counted, and keeps the
    # first 2 buckets in key order; u3 and u4 are past the cap, and out of later windows.
    assert [a["user.name"] for a in alerts] == ["u0", "u1", "u2"]


def test_threshold_exceptions_apply():
    from vigil.engine import Engine
    from vigil.rules.exceptions import parse_exceptions

    rule = _threshold_rule(["user.name"], 2, exceptions_list=[{"list_id": "l", "namespace_type": "single"}])
    lists = parse_exceptions(
        "\n".join(
            json.dumps(x)
            for x in [
                {"list_id": "l", "type": "detection", "namespace_type": "single", "name": "l"},
                {
                    "list_id": "l",
                    "item_id": "i",
                    "type": "simple",
                    "namespace_type": "single",
                    "name": "i",
                    "entries": [
                        {"field": "source.ip", "type": "match", "operator": "included", "value": "10.0.0.9"}
                    ],
                },
            ]
        ),
        "lists.ndjson",
    )
    engine = Engine([rule], exceptions=lists)
    events = [_event(0, user={"name": "a"}), _event(1, user={"name": "a"}, source={"ip": "10.0.0.9"})]
    assert list(replay([rule], events, engine=engine)) == []


# --- new terms ----------------------------------------------------------------------


def test_new_terms_cartesian_product_and_alert_fields():
    rule = _new_terms_rule(["host.id", "user.name"])
    e = _event(0, category="process", host={"id": ["h1", "h2"]}, user={"name": "root"})
    alerts = list(replay([rule], [e]))
    assert sorted(a["kibana.alert.new_terms"] for a in alerts) == [["h1", "root"], ["h2", "root"]]
    assert all(
        a["kibana.alert.rule.parameters"]["new_terms_fields"] == ["host.id", "user.name"] for a in alerts
    )


def test_new_terms_history_uses_only_matching_events():
    rule = _new_terms_rule(["host.id"])
    # An earlier event of another category does not count as seen: the query applies
    # to the history too.
    events = [
        _event(0, category="network", host={"id": "h1"}),
        _event(3600, category="process", host={"id": "h1"}),
    ]
    alerts = list(replay([rule], events))
    assert [a["kibana.alert.new_terms"] for a in alerts] == [["h1"]]


def test_new_terms_same_alert_once_across_overlapping_runs_and_same_ids_again():
    rule = _new_terms_rule(["host.id"])
    events = [
        _event(100, category="process", host={"id": "h1"}),
        _event(130, category="process", host={"id": "h1"}),
    ]
    first = list(replay([rule], events))
    assert len(first) == 1 and first[0]["kibana.alert.original_time"] == "2024-05-01T12:01:40.000Z"
    assert [a["kibana.alert.uuid"] for a in replay([rule], events)] == [first[0]["kibana.alert.uuid"]]


def test_new_terms_max_signals_per_run():
    rule = _new_terms_rule(["host.id"], max_signals=3)
    events = [_event(i, category="process", host={"id": f"h{i}"}) for i in range(5)]
    alerts = list(replay([rule], events))
    # The first run (at the first event) sees h0 alone; the next sees h0..h4, h0 already
    # written (a duplicate is not created, so not counted) and creates at most 3.
    assert [a["kibana.alert.new_terms"][0] for a in alerts] == ["h0", "h1", "h2", "h3"]


# --- the command --------------------------------------------------------------------


def _scan(tmp_path, rule: dict, events: list[dict], *args, stdin=False):
    (tmp_path / "rule.ndjson").write_text(json.dumps(rule) + "\n")
    data = "".join(json.dumps(e) + "\n" for e in events)
    cmd = [
        sys.executable,
        "-m",
        "vigil.cli",
        "scan",
        "--rules",
        str(tmp_path / "rule.ndjson"),
        "--format",
        "ndjson",
        *args,
    ]
    if stdin:
        out = subprocess.run([*cmd, "-"], input=data, capture_output=True, text=True, check=False)
    else:
        (tmp_path / "events.ndjson").write_text(data)
        out = subprocess.run(
            [*cmd, str(tmp_path / "events.ndjson")], capture_output=True, text=True, check=False
        )
    return out.returncode, [json.loads(line) for line in out.stdout.splitlines()], out.stderr


def test_scan_replays_new_terms_from_files_and_stdin(tmp_path):
    rule = {
        "rule_id": "nt",
        "name": "New terms",
        "type": "new_terms",
        "language": "kuery",
        "query": "event.category:process",
        "new_terms_fields": ["host.id"],
        "history_window_start": "now-7d",
    }
    events = [
        {"@timestamp": "2024-05-01T12:00:00Z", "event": {"category": "process"}, "host": {"id": "h1"}},
        {"@timestamp": "2024-05-01T13:00:00Z", "event": {"category": "process"}, "host": {"id": "h1"}},
        {"@timestamp": "2024-05-01T13:00:00Z", "event": {"category": "process"}, "host": {"id": "h2"}},
    ]
    code, alerts, err = _scan(tmp_path, rule, events)
    assert code == 0, err
    assert [a["kibana.alert.new_terms"] for a in alerts] == [["h1"], ["h2"]]
    code, piped, _ = _scan(tmp_path, rule, events, stdin=True)
    assert [a["kibana.alert.uuid"] for a in piped] == [a["kibana.alert.uuid"] for a in alerts]
    code, later, _ = _scan(tmp_path, rule, events, "--replay-start", "2024-05-01T12:30:00Z")
    assert [a["kibana.alert.new_terms"] for a in later] == [["h2"]]
    code, _, err = _scan(tmp_path, rule, events, "--replay-start", "yesterday")
    assert code == 2 and "--replay-start" in err and "Traceback" not in err


def test_scan_help_says_what_a_replay_is():
    out = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "scan", "--help"], capture_output=True, text=True, check=True
    )
    assert "every term of the first runs is new" in " ".join(out.stdout.split())
    assert "--replay-start" in out.stdout


def test_rules_list_counts_threshold_and_new_terms_and_says_why_ml_cannot_run(shared):
    from vigil.cli.rules import summary_line
    from vigil.rules.loaders import load_rules

    ruleset = load_rules([shared / "detection-rules"])
    rows = [{"type": r.type, "runnable": r.runnable, "why": r.why_not_runnable} for r in ruleset.rules]
    runnable = [r for r in rows if r["runnable"]]
    assert sum(r["type"] == "threshold" for r in runnable) >= 30
    assert sum(r["type"] == "new_terms" for r in runnable) >= 237
    assert len(runnable) >= 1810
    ml = [r for r in rows if r["type"] == "machine_learning"]
    assert ml and all("anomaly detection jobs" in r["why"] for r in ml)
    assert "anomaly detection jobs" in summary_line(rows, 0)
