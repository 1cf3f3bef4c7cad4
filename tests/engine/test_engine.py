from datetime import UTC, datetime

from vigil.engine import Engine
from vigil.events.model import Event
from vigil.rules import bundled_rules

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _file_event(path, exe, **extra):
    doc = {
        "@timestamp": "2024-01-01T00:00:00Z",
        "event": {"category": ["file"], "type": ["creation"], "action": "creation"},
        "host": {"os": {"type": "linux"}, "name": "web-1"},
        "file": {"path": path, "name": path.rsplit("/", 1)[-1], "extension": path.rsplit(".", 1)[-1]},
        "process": {"executable": exe, "name": exe.rsplit("/", 1)[-1]},
        "user": {"name": "root"},
    }
    doc.update(extra)
    return Event(doc, "logs-endpoint.events.file-default", None, "t:1")


MODULE = "/usr/lib/dracut/modules.d/99evil/module-setup.sh"


def test_seed_rule_alerts_on_curl_not_dpkg():
    engine = Engine(bundled_rules().rules, now=NOW)
    alerts = list(engine.scan([_file_event(MODULE, "/usr/bin/curl"), _file_event(MODULE, "/usr/bin/dpkg")]))
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["event"]["kind"] == "signal"
    assert alert["kibana.alert.rule.name"] == "Dracut Module Creation"
    assert alert["kibana.alert.workflow_status"] == "open"
    assert alert["kibana.alert.reason"].startswith(
        "file event with process curl, file module-setup.sh, by root on web-1"
    )


def test_alert_ids_stable_across_scans_and_streaming():
    events = [_file_event(MODULE, "/bin/sh")]
    first = [a["kibana.alert.uuid"] for a in Engine(bundled_rules().rules).scan(events)]
    engine = Engine(bundled_rules().rules)
    second = [a["kibana.alert.uuid"] for a in engine.process(events[0])] + engine.finish()
    assert first == second and len(first) == 1


def test_routing_by_index_skips_other_indices():
    event = _file_event(MODULE, "/bin/sh")
    event.index = "winlogbeat-2024"
    assert list(Engine(bundled_rules().rules).scan([event])) == []
