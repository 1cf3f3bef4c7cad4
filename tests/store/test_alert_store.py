"""The alert store keeps each alert once and filters like Kibana's alerts table."""

from __future__ import annotations

import pytest

from vigil.errors import VigilError
from vigil.store.alerts import AlertStore


def alert(uuid: str, *, rule="r1", sev="low", host="h1", ts="2026-01-01T00:00:00.000Z", nested=False) -> dict:
    if nested:
        return {
            "@timestamp": ts,
            "host": {"name": host},
            "kibana": {
                "alert": {
                    "uuid": uuid,
                    "severity": sev,
                    "workflow_status": "open",
                    "rule": {"rule_id": rule, "name": rule.upper()},
                }
            },
        }
    return {
        "@timestamp": ts,
        "host.name": host,
        "kibana.alert.uuid": uuid,
        "kibana.alert.severity": sev,
        "kibana.alert.risk_score": 21,
        "kibana.alert.rule.rule_id": rule,
        "kibana.alert.rule.name": rule.upper(),
        "kibana.alert.workflow_status": "open",
        "kibana.alert.original_time": ts,
    }


def test_uuid_kept_once(tmp_path):
    store = AlertStore(tmp_path / "s.db")
    assert store.add([alert("a"), alert("b")]) == 2
    assert store.add([alert("a"), alert("c"), alert("c")]) == 1
    assert store.count() == 3


def test_filters_and_order(tmp_path):
    store = AlertStore(tmp_path / "s.db")
    store.add(
        [
            alert("a", rule="r1", sev="high", host="x", ts="2026-01-01T00:00:00Z"),
            alert("b", rule="r2", sev="low", host="y", ts="2026-01-02T00:00:00Z"),
            alert("c", rule="r1", sev="low", host="y", ts="2026-01-03T00:00:00Z", nested=True),
        ]
    )
    ids = lambda rows: [r.get("kibana.alert.uuid") or r["kibana"]["alert"]["uuid"] for r in rows]  # noqa: E731
    assert ids(store.list()) == ["c", "b", "a"]
    assert ids(store.list(rule="r1")) == ["c", "a"]
    assert ids(store.list(rule="R2")) == ["b"]
    assert ids(store.list(severity="HIGH")) == ["a"]
    assert ids(store.list(host="y")) == ["c", "b"]
    assert ids(store.list(since="2026-01-02T00:00:00Z")) == ["c", "b"]
    assert ids(store.list(until="2026-01-01T12:00:00Z")) == ["a"]
    assert ids(store.list(limit=1)) == ["c"]
    with pytest.raises(VigilError):
        store.list(since="yesterday-ish")


def test_set_status_updates_json(tmp_path):
    path = tmp_path / "s.db"
    store = AlertStore(path)
    store.add([alert("a"), alert("n", nested=True)])
    doc = store.set_status("a", "acknowledged")
    assert doc["kibana.alert.workflow_status"] == "acknowledged"
    nested = store.set_status("n", "closed")
    assert nested["kibana"]["alert"]["workflow_status"] == "closed"
    store.close()
    again = AlertStore(path)  # persisted across opens
    assert again.get("a")["kibana.alert.workflow_status"] == "acknowledged"
    assert [a["kibana"]["alert"]["uuid"] for a in again.list(status="closed")] == ["n"]
    with pytest.raises(VigilError):
        again.set_status("a", "resolved")
    with pytest.raises(VigilError):
        again.set_status("missing", "closed")
    assert again.get("missing") is None


def test_alert_without_uuid_is_refused_whole(tmp_path):
    store = AlertStore(tmp_path / "s.db")
    with pytest.raises(VigilError):
        store.add([alert("a"), {"@timestamp": "2026-01-01T00:00:00Z"}])
    assert store.count() == 0


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("this is not SQLite, just text long enough to have a header page" * 20)
    with pytest.raises(VigilError) as info:
        AlertStore(bogus)
    assert info.value.file == str(bogus)


T = 1_780_000_000_000


def test_runs_recorded_together_count_each_alert_once_in_their_order(tmp_path):
    from vigil.store.alerts import alert_rows
    from vigil.store.runs import Finished, Run, RunStore

    db = tmp_path / "v.db"
    alerts, runs = AlertStore(db), RunStore(db)
    alerts.add([alert("u1")])
    first, second = Run("r1", T, 1, T - 60_000, T), Run("r2", T, 1, T - 60_000, T)
    runs.finish_many(
        [
            Finished(
                first,
                started_ms=T,
                covered_to_ms=T,
                alerts=alert_rows([alert("u1"), alert("u2"), alert("u2")]),
            ),
            Finished(
                second,
                started_ms=T,
                covered_to_ms=T,
                memory={"k": [1]},
                alerts=alert_rows([alert("u2"), alert("u3")]),
            ),
        ]
    )
    assert (first.alerts_written, second.alerts_written) == (1, 1)
    assert alerts.count() == 3
    assert [r["alerts_written"] for r in runs.runs()] == [1, 1]
    assert runs.states()["r2"].last_started_ms == T and runs.memories(("k",)) == {("r2", "k"): [1]}
