"""Endgame ECS and legacy events."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from vigil.engine import Engine
from vigil.errors import VigilError
from vigil.events.endgame import filetime_to_epoch_ms, normalize
from vigil.events.model import Event
from vigil.rules.loaders import bundled_rules

DATA = Path(__file__).parent / "data"


def _docs(name: str) -> list[dict]:
    return [orjson.loads(x) for x in (DATA / name).read_text().splitlines() if x]


def _alerts(pairs: list[tuple[dict, str]]) -> list[dict]:
    engine = Engine(bundled_rules().rules)
    return list(engine.scan(Event(doc, index) for doc, index in pairs))


def test_legacy_linux_file_creation_maps_to_ecs() -> None:
    raw = _docs("endgame-legacy.ndjson")[0]
    doc, index = normalize(raw)
    assert index == "endgame-3.0.0"
    assert doc["event"] == {
        "kind": "event",
        "category": "file",
        "action": "file_create_event",
        "type": ["creation"],
        "sequence": 1,
    }
    assert doc["file"] == {
        "path": "/lib/dracut/modules.d/99evil/module-setup.sh",
        "name": "module-setup.sh",
        "extension": "sh",
    }
    assert doc["process"] == {"executable": "/usr/bin/vi", "name": "vi", "pid": 777}
    assert doc["host"]["os"]["type"] == "linux"
    # 133772544000000000 FILETIME ticks = 2024-11-28T08:00:00Z = 1732780800000 ms
    assert doc["@timestamp"] == 1732780800000
    # Legacy fields stay, Endgame identifiers are also under endgame.*
    assert doc["file_path"] == raw["file_path"] and doc["pid"] == 777
    assert doc["endgame"] == {
        "event_subtype_full": "file_create_event",
        "serial_event_id": 1,
        "unique_pid": 777,
    }


def test_windows_legacy_path() -> None:
    doc, _ = normalize({"event_type": "file", "timestamp": 0, "file_path": "C:\\Windows\\a.dll", "pid": 4})
    assert doc["file"]["name"] == "a.dll"
    assert doc["file"]["extension"] == "dll"
    assert doc["host"]["os"]["type"] == "windows"


def test_filetime_as_the_eql_data_loader_converts_it() -> None:
    assert filetime_to_epoch_ms(116444736000000000) == 0
    assert filetime_to_epoch_ms(131509374295457140) == 1506463829545
    assert filetime_to_epoch_ms("131509374295457140") is None


def test_every_spec_document_gets_ecs_fields(shared) -> None:
    raw = json.loads((shared / "conformance/elasticsearch-eql/test_data.json").read_text())
    counted = 0
    for item in raw:
        doc, index = normalize(item)
        assert index == "endgame-3.0.0"
        assert doc["event"]["category"] == item["event_type"]
        assert doc["event"]["action"] == item["event_subtype_full"]
        assert doc["@timestamp"] == item["timestamp"] // 10_000 - 11_644_473_600_000
        assert doc["process"]["pid"] == item["pid"]
        assert doc["process"]["name"] == item["process_name"]
        if "file_path" in item:
            assert doc["file"]["path"] == item["file_path"]
            assert doc["file"]["name"] == item["file_name"]
            assert doc["host"]["os"]["type"] == "windows"
            counted += 1
        for key, value in item.items():
            assert doc[key] == value  # the legacy field is kept
    assert counted == 23


def test_ecs_endgame_passes_as_is() -> None:
    raw = _docs("endgame-ecs.ndjson")[0]
    assert normalize(raw) == (raw, "endgame-3.53.9")
    assert isinstance(raw["@timestamp"], int) and isinstance(raw["event"]["category"], str)


def test_not_endgame_is_a_vigil_error() -> None:
    with pytest.raises(VigilError, match="Endgame"):
        normalize({"foo": 1})


def test_seed_rule_alerts_on_legacy_and_ecs_dracut_modules() -> None:
    legacy = normalize(_docs("endgame-legacy.ndjson")[0])
    ecs = normalize(_docs("endgame-ecs.ndjson")[0])
    alerts = _alerts([legacy, ecs])
    assert len(alerts) == 2
    assert {a["kibana.alert.ancestors"][0]["index"] for a in alerts} == {"endgame-3.0.0", "endgame-3.53.9"}


def test_seed_rule_ignores_package_manager_and_windows() -> None:
    dpkg = dict(_docs("endgame-legacy.ndjson")[0], process_path="/usr/bin/dpkg", process_name="dpkg")
    win = {
        "event_type": "file",
        "event_subtype_full": "file_create_event",
        "timestamp": 133772544000000000,
        "file_path": "C:\\lib\\dracut\\modules.d\\x.sh",
        "process_path": "C:\\x.exe",
        "pid": 1,
    }
    assert _alerts([normalize(dpkg), normalize(win)]) == []
