"""``vigil alerts`` against a store file and against a running server."""

from __future__ import annotations

import json

from conftest import MIN, T0, action_rule
from vigil.cli import main
from vigil.store.alerts import AlertStore
from vigil.store.events import iso_millis


def alert(uuid: str, sev: str = "low", host: str = "h1") -> dict:
    return {
        "@timestamp": "2026-01-01T00:00:00.000Z",
        "kibana.alert.uuid": uuid,
        "kibana.alert.rule.rule_id": "r",
        "kibana.alert.rule.name": "R",
        "kibana.alert.severity": sev,
        "kibana.alert.workflow_status": "open",
        "host.name": host,
    }


def lines(out: str) -> list[dict]:
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_store_list_show_set_status(tmp_path, capsys):
    db = tmp_path / "a.db"
    AlertStore(db).add([alert("u1", "high"), alert("u2", host="h2")])
    assert main(["alerts", "list", "--store", str(db), "--format", "ndjson", "--severity", "high"]) == 0
    assert [a["kibana.alert.uuid"] for a in lines(capsys.readouterr().out)] == ["u1"]
    assert main(["alerts", "set-status", "--store", str(db), "u2", "closed"]) == 0
    assert "closed" in capsys.readouterr().out
    assert main(["alerts", "show", "--store", str(db), "u2"]) == 0
    assert lines(capsys.readouterr().out)[0]["kibana.alert.workflow_status"] == "closed"
    assert main(["alerts", "list", "--store", str(db), "--format", "table"]) == 0
    assert "u1" in capsys.readouterr().out
    assert main(["alerts", "show", "--store", str(db), "nope"]) == 1
    # A user mistake is one line and exit 2, not a traceback.
    assert main(["alerts", "list", "--store", str(tmp_path / "missing.db")]) == 2
    assert main(["alerts", "list", "--store", str(db), "--since", "last tuesday"]) == 2
    err = capsys.readouterr().err
    assert "not a time" in err and "Traceback" not in err


def test_server_list_show_set_status(make_server, capsys):
    s = make_server([action_rule("r", "x", name="R", severity="medium")], ["--token", "t0k"])
    s.start()
    auth = {"Authorization": "Bearer t0k"}
    s.call(
        "POST",
        "/events/logs-a",
        b'{"@timestamp":"%s","event":{"action":"x"},"host":{"name":"web"}}\n' % iso_millis(T0).encode(),
        auth,
    )
    s.set_clock(T0 + 5 * MIN)
    base = ["--server", s.url, "--token", "t0k"]
    import time

    deadline = time.monotonic() + 15
    rows: list = []
    while not rows and time.monotonic() < deadline:
        main(["alerts", "list", *base, "--format", "ndjson", "--host", "web"])
        rows = lines(capsys.readouterr().out)
        time.sleep(0.05)
    assert len(rows) == 1 and rows[0]["kibana.alert.severity"] == "medium"
    uuid = rows[0]["kibana.alert.uuid"]
    assert main(["alerts", "set-status", *base, uuid, "acknowledged"]) == 0
    assert main(["alerts", "show", *base, uuid]) == 0
    out = capsys.readouterr().out
    assert lines(out.splitlines()[-1])[0]["kibana.alert.workflow_status"] == "acknowledged"
    assert main(["alerts", "list", *base, "--status", "open", "--format", "ndjson"]) == 0
    assert lines(capsys.readouterr().out) == []
    assert main(["alerts", "show", *base, "missing"]) == 1
    assert main(["alerts", "list", "--server", s.url, "--format", "ndjson"]) == 2  # no token
    assert "401" in capsys.readouterr().err


def test_show_and_set_status_in_both_formats(tmp_path, capsys):
    db = tmp_path / "a.db"
    AlertStore(db).add([alert("u1", "high", host="db-7")])
    assert main(["alerts", "show", "--store", str(db), "u1", "--format", "table"]) == 0
    out = capsys.readouterr().out
    assert "kibana.alert.severity" in out and "db-7" in out and not out.lstrip().startswith("{")
    assert main(["alerts", "set-status", "--store", str(db), "u1", "acknowledged", "--format", "ndjson"]) == 0
    (doc,) = lines(capsys.readouterr().out)
    assert doc["kibana.alert.workflow_status"] == "acknowledged" and doc["kibana.alert.uuid"] == "u1"
    assert main(["alerts", "set-status", "--store", str(db), "nope", "closed"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_server_token_from_a_file_or_the_environment(make_server, tmp_path, capsys, monkeypatch):
    s = make_server([action_rule("r", "x", name="R")], ["--token", "a-token-kept-off-argv"])
    s.start()
    token_file = tmp_path / "token"
    token_file.write_text("a-token-kept-off-argv\n")
    monkeypatch.delenv("VIGIL_TOKEN", raising=False)
    assert (
        main(["alerts", "list", "--server", s.url, "--token-file", str(token_file), "--format", "ndjson"])
        == 0
    )
    assert (
        main(["rules", "list", "--server", s.url, "--token-file", str(token_file), "--format", "ndjson"]) == 0
    )
    assert [r["rule_id"] for r in lines(capsys.readouterr().out)] == ["r"]
    monkeypatch.setenv("VIGIL_TOKEN", "a-token-kept-off-argv")
    assert main(["alerts", "list", "--server", s.url, "--format", "ndjson"]) == 0
    assert main(["alerts", "list", "--server", s.url, "--token-file", str(tmp_path / "missing")]) == 2
    assert "token file" in capsys.readouterr().err
