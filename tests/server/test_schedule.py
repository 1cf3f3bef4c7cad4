"""Rules run on their schedule in a real server, the clock driven by the test (VIGIL_CLOCK_FILE)."""

from __future__ import annotations

from conftest import MIN, T0, action_rule
from vigil.store.events import iso_millis


def ev(action: str, ts_ms: int, host: str = "h1") -> dict:
    return {"@timestamp": iso_millis(ts_ms), "event": {"action": action}, "host": {"name": host}}


def test_late_and_early_events_around_window_edges(make_server):
    rules = [
        # Cut on event.ingested (Kibana's usual timestamp_override): arrival time counts.
        action_rule("ingested", "x", name="I"),
        # Cut on @timestamp: an event shipped late falls before the window.
        action_rule("stamped", "x", name="S", timestamp_override=None),
    ]
    s = make_server(rules)
    s.start()
    s.wait_runs(2)  # first run of each rule at start
    s.send("logs-a", [ev("x", T0 - 60 * MIN)])  # late: happened an hour ago, arrives now
    s.send("logs-a", [ev("x", T0 + 3 * MIN)])  # early clock on the sender: @timestamp ahead
    s.send("logs-b", [ev("x", T0 - 2 * MIN)])  # on time, @timestamp inside [now-6m, now]
    s.send("other", [ev("x", T0)])  # index no rule reads
    runs = s.advance_and_wait(5 * MIN, 4)
    latest = {r["rule_id"]: r for r in runs[:2]}
    assert latest["ingested"]["window_from_ms"] == T0 - 1 * MIN
    assert latest["ingested"]["window_to_ms"] == T0 + 5 * MIN
    assert latest["ingested"]["events_searched"] == 3
    assert latest["ingested"]["alerts_written"] == 3
    # @timestamp window [T0-1m, T0+5m]: the late one and the on-time one (T0-2m) are outside.
    assert latest["stamped"]["events_searched"] == 1
    assert len(s.get("/api/alerts?rule=stamped")["alerts"]) == 1


def test_cap_keeps_earliest_and_says_so(make_server):
    s = make_server([action_rule("r", "x", name="R", max_signals=100)])
    s.start()
    s.wait_runs(1)
    s.set_clock(T0 + 1 * MIN)
    s.send("logs-a", [ev("x", T0 + 149 - i) for i in range(150)])  # shipped newest first
    runs = s.advance_and_wait(4 * MIN, 2)  # run at T0+5m
    assert runs[0]["matches"] == 150 and runs[0]["alerts_written"] == 100 and runs[0]["capped"] is True
    alerts = s.get("/api/alerts?limit=1000")["alerts"]
    assert len(alerts) == 100
    kept = sorted(a["kibana.alert.original_time"] for a in alerts)
    assert kept == [iso_millis(T0 + i) for i in range(100)]  # the 100 earliest events
    # The next run's window no longer holds them (as in Kibana): nothing more, not capped.
    s.set_clock(T0 + 8 * MIN)
    s.send("logs-a", [ev("x", T0 + 8 * MIN)])
    runs = s.advance_and_wait(2 * MIN, 3)  # run at T0+10m
    assert runs[0]["alerts_written"] == 1 and runs[0]["capped"] is False
    assert s.get("/health")["runs"]["capped_runs"] == 1


def test_overlapping_windows_never_double_an_alert(make_server):
    s = make_server([action_rule("r", "x", name="R")])
    s.start()
    s.wait_runs(1)
    s.set_clock(T0 + 4 * MIN + 30_000)  # inside the 1m look-back of the next two runs
    s.send("logs-a", [ev("x", T0 + 4 * MIN), ev("y", T0 + 4 * MIN)])
    runs = s.advance_and_wait(30_000, 2)  # T0+5m: [T0-1m, T0+5m]
    assert runs[0]["events_searched"] == 2 and runs[0]["alerts_written"] == 1
    runs = s.advance_and_wait(5 * MIN, 3)  # T0+10m: [T0+4m, T0+10m] sees it again
    assert runs[0]["window_from_ms"] == T0 + 4 * MIN
    assert runs[0]["events_searched"] == 2 and runs[0]["matches"] == 1 and runs[0]["alerts_written"] == 0
    assert s.get("/health")["alerts"] == 1


def test_gap_after_long_stop_is_caught_up_and_reported(make_server):
    s = make_server([action_rule("r", "x", name="R")])
    s.start()
    s.wait_runs(1)
    s.stop()
    # Down for an hour; an event arrived... nowhere (server down). Restart an hour later.
    s.set_clock(T0 + 60 * MIN)
    s.start()
    runs = s.wait_runs(1 + 5)
    newest = runs[:5]
    assert sum(r["catch_up"] for r in newest) == 4
    gap_runs = [r for r in newest if r["gap_ms"]]
    assert len(gap_runs) == 1
    assert gap_runs[0]["gap_from_ms"] == T0
    assert gap_runs[0]["gap_to_ms"] == T0 + 60 * MIN - 4 * 5 * MIN - 6 * MIN
    health = s.get("/health")
    assert health["runs"]["gaps"] == 1 and health["runs"]["gap_ms"] == 34 * MIN


def test_disable_is_persisted_and_stops_runs(make_server):
    s = make_server([action_rule("r", "x", name="R")])
    s.start()
    s.wait_runs(1)
    status, body, _ = s.call("POST", "/api/rules/r/disable", {})
    assert status == 200 and body["enabled"] is False
    s.stop()
    s.start()
    assert s.get("/api/rules")["rules"][0]["enabled"] is False
    s.set_clock(T0 + 30 * MIN)
    s.send("logs-a", [ev("x", T0)])
    import time

    time.sleep(0.6)
    assert len(s.runs()) == 1
    assert s.call("POST", "/api/rules/nope/enable", {})[0] == 404
    s.call("POST", "/api/rules/r/enable", {})
    s.wait_runs(2)


def test_retention_drops_old_events(make_server):
    s = make_server([action_rule("r", "x", name="R")], ["--retention", "1h"])
    s.start()
    s.wait_runs(1)
    s.send("logs-a", [ev("x", T0)])
    s.set_clock(T0 + 30 * MIN)
    s.send("logs-a", [ev("x", T0 + 30 * MIN)])
    assert s.get("/health")["ingest"]["stored"] == 2
    s.set_clock(T0 + 80 * MIN)  # the first event is now older than 1h
    import time

    deadline = time.monotonic() + 10
    while s.get("/health")["ingest"]["stored"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s.get("/health")["ingest"]["stored"] == 1


def test_window_edges_are_inclusive_and_early_events_wait_for_their_window(make_server):
    # Kibana's range filter is gte from / lte to (build_events_query.ts buildTimeRangeFilter).
    s = make_server([action_rule("stamped", "x", name="S", timestamp_override=None)])
    s.start()
    s.wait_runs(1)
    run_at = T0 + 5 * MIN  # window [T0-1m, T0+5m] on @timestamp
    s.send(
        "logs-a",
        [
            ev("x", T0 - 1 * MIN - 1, host="before-start"),
            ev("x", T0 - 1 * MIN, host="at-start"),
            ev("x", run_at, host="at-end"),
            ev("x", run_at + 1, host="after-end"),  # the sender's clock runs ahead
        ],
    )
    runs = s.advance_and_wait(5 * MIN, 2)
    assert runs[0]["events_searched"] == 2
    hosts = lambda: sorted(a["host"]["name"] for a in s.get("/api/alerts")["alerts"])  # noqa: E731
    assert hosts() == ["at-end", "at-start"]
    # The early one is in the next window [T0+4m, T0+10m]; the one before the first window never is.
    runs = s.advance_and_wait(5 * MIN, 3)
    assert runs[0]["alerts_written"] == 1
    assert hosts() == ["after-end", "at-end", "at-start"]


def test_cap_holds_on_the_next_run_that_sees_the_same_events(make_server):
    # Kibana asks for size = max_signals, oldest first: a later run over the same events
    # gets the same first 100 again (already stored), still reports the cap, and the
    # other events never alert — the same loss Kibana has, recorded rather than hidden.
    s = make_server([action_rule("r", "x", name="R", max_signals=100)])
    s.start()
    s.wait_runs(1)
    s.set_clock(T0 + 4 * MIN + 30_000)  # ingested inside the next run's look-back
    s.send("logs-a", [ev("x", T0 + i) for i in range(150)])
    runs = s.advance_and_wait(30_000, 2)  # T0+5m
    assert (runs[0]["matches"], runs[0]["alerts_written"], runs[0]["capped"]) == (150, 100, True)
    runs = s.advance_and_wait(5 * MIN, 3)  # T0+10m: [T0+4m, T0+10m] holds them again
    assert (runs[0]["matches"], runs[0]["alerts_written"], runs[0]["capped"]) == (150, 0, True)
    kept = sorted(a["kibana.alert.original_time"] for a in s.get("/api/alerts?limit=1000")["alerts"])
    assert kept == [iso_millis(T0 + i) for i in range(100)]
    assert s.get("/health")["runs"]["capped_runs"] == 2
