"""Endgame ECS and legacy events."""

import re
from pathlib import Path

import orjson
import pytest

from vigil.events.endgame import normalize

DATA = Path(__file__).parent / "data"


def seed_query(shared_dir):
    try:
        from vigil.rules import bundled_rules

        return bundled_rules().rules[0].query
    except ImportError:
        text = (shared_dir / "seed" / "dracut-module-creation.md").read_text()
        match = re.search(r"## Rule query.*?```js\n(.*?)```", text, re.S)
        if not match:
            pytest.skip("seed query not found")
        return match.group(1)


def compiled_seed(shared_dir):
    eql = pytest.importorskip("vigil.eql")
    return eql.compile(seed_query(shared_dir))


def _one(name: str) -> dict:
    return orjson.loads((DATA / name).read_text().splitlines()[0])


def test_legacy_maps_to_ecs_and_keeps_originals() -> None:
    raw = _one("endgame-legacy.ndjson")
    doc, index = normalize(raw)
    assert index == "endgame-3.0.0"
    assert doc["event"]["category"] == "file"
    assert doc["event"]["type"] == ["creation"]
    assert doc["file"] == {
        "path": "/lib/dracut/modules.d/99evil/module-setup.sh",
        "name": "module-setup.sh",
        "extension": "sh",
    }
    assert doc["process"] == {"executable": "/usr/bin/vi", "name": "vi", "pid": 777}
    assert doc["host"]["os"]["type"] == "linux"
    assert doc["endgame"] == raw
    # 133772544000000000 FILETIME ticks = 2024-11-28T08:00:00Z
    assert doc["@timestamp"] == "2024-11-28T08:00:00.000Z"


def test_windows_legacy_path() -> None:
    doc, _ = normalize({"event_type": "file", "timestamp": 0, "file_path": "C:\\Windows\\a.dll", "pid": 4})
    assert doc["file"]["name"] == "a.dll"
    assert doc["host"]["os"]["type"] == "windows"


def test_ecs_endgame_passes_as_is() -> None:
    raw = _one("endgame-ecs.ndjson")
    assert normalize(raw) == (raw, "endgame-3.53.9")


def test_seed_rule_alerts_on_legacy_and_ecs(shared) -> None:
    query = compiled_seed(shared)
    assert query.matches(normalize(_one("endgame-legacy.ndjson"))[0])
    assert query.matches(normalize(_one("endgame-ecs.ndjson"))[0])
