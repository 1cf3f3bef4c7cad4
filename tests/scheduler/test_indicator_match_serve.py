"""Elastic's prebuilt indicator match rule on its schedule in ``vigil serve``'s scheduler:
indicators are the stored documents of its threat index (what Elastic Agent's ti_*
integrations send to ``_bulk``), read again from the store after a restart; one alert per
event, with ``threat.enrichments``, never twice over overlapping look-backs."""

from __future__ import annotations

from vigil.scheduler.clock import ManualClock
from vigil.scheduler.runner import Scheduler
from vigil.store.alerts import AlertStore
from vigil.store.events import EventStore, Write, iso_millis
from vigil.store.runs import RunStore

ADDRESS_RULE = "threat_intel_indicator_match_address.toml"
T = 1_780_000_000_000
M = 60_000
DAY = 24 * 60 * M
IP = "203.0.113.9"


def _scheduler(db, rule, clock):
    return Scheduler([rule], EventStore(db), AlertStore(db), RunStore(db), clock=clock)


def _indicator(ip: str, ts: int) -> dict:
    return {
        "@timestamp": iso_millis(ts),
        "event": {
            "kind": "enrichment",
            "category": ["threat"],
            "type": ["indicator"],
            "module": "ti_abusech",
            "dataset": "ti_abusech.ip",
        },
        "threat": {"indicator": {"ip": ip, "type": "ipv4-addr"}, "feed": {"name": "AbuseCH"}},
    }


def _connection(ip: str, ts: int) -> dict:
    return {
        "@timestamp": iso_millis(ts),
        "event": {"category": ["network"]},
        "source": {"ip": "10.0.0.5"},
        "destination": {"ip": ip},
        "host": {"name": "ws-01"},
    }


def test_stored_indicators_match_events_across_runs_and_a_restart(tmp_path, prebuilt_rules):
    rule = next(r for r in prebuilt_rules if (r.source or "").endswith(ADDRESS_RULE))
    assert rule.runnable, rule.why_not_runnable
    db = tmp_path / "v.db"
    clock = ManualClock(T)
    s = _scheduler(db, rule, clock)
    s.events.write(
        [Write("logs-ti_abusech_latest.dest_ip-3", _indicator(IP, T - 2 * DAY), id="ioc-1")], T - 2 * DAY
    )
    s.events.write([Write("logs-endpoint.events.network-default", _connection(IP, T - M), id="ev-1")], T - M)
    s.events.write(
        [Write("logs-endpoint.events.network-default", _connection("198.51.100.1", T - M), id="ev-2")], T - M
    )
    (run,) = s.tick()
    assert run.error is None and run.alerts_written == 1
    (alert,) = s.alerts.between(0, 2**62)
    assert alert["kibana.alert.ancestors"][0]["id"] == "ev-1"
    (enrichment,) = alert["threat"]["enrichments"]
    assert enrichment["matched"]["atomic"] == IP and enrichment["matched"]["id"] == "ioc-1"
    assert enrichment["matched"]["type"] == "indicator_match_rule"
    clock.now = T + 60 * M  # every hour over 65 minutes: the next run still sees ev-1, no second alert
    (run,) = s.tick()
    assert run.error is None and run.alerts_written == 0
    s.close()
    # A restart: the indicators come back from the store.
    s = _scheduler(db, rule, clock)
    s.events.write(
        [Write("logs-endpoint.events.network-default", _connection(IP, T + 119 * M), id="ev-3")], T + 119 * M
    )
    clock.now = T + 120 * M
    (run,) = s.tick()
    assert run.error is None and run.alerts_written == 1
    assert len(s.alerts.between(0, 2**62)) == 2
