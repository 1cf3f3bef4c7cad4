"""One folder holding Elastic Defend, SentinelOne raw and Endgame events, read and scanned together."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import orjson

from vigil.engine import Engine
from vigil.events.readers import ReadStats, read_inputs
from vigil.rules.loaders import bundled_rules

DATA = Path(__file__).parent / "data"
S1_INDEX = "logs-sentinel_one_cloud_funnel.event-default"


def _defend(shared: Path) -> tuple[list[dict], dict]:
    """Real Defend search hits, and the source of one turned into a Dracut module creation."""
    lines = (shared / "conformance/elastic-defend/events.ndjson").read_text().splitlines()
    hits = [orjson.loads(x) for x in lines if x.strip()]
    src = copy.deepcopy(hits[0]["_source"])
    src["event"]["type"] = ["creation"]
    src["event"]["action"] = "creation"
    src["file"] = {
        "path": "/usr/lib/dracut/modules.d/95x/module-setup.sh",
        "name": "module-setup.sh",
        "extension": "sh",
    }
    src["process"]["executable"] = "/tmp/.hidden/dropper"
    src["process"]["name"] = "dropper"
    src.setdefault("host", {}).setdefault("os", {})["type"] = "linux"
    src["event"]["id"] = "defend-evil-1"
    return hits, src


def _folder(tmp_path: Path, shared: Path) -> Path:
    folder = tmp_path / "mixed"
    (folder / "defend").mkdir(parents=True)
    hits, evil = _defend(shared)
    (folder / "defend" / "hits.ndjson").write_bytes(b"\n".join(orjson.dumps(h) for h in hits))
    # A plain document: its index comes from data_stream.type-dataset-namespace.
    (folder / "defend" / "doc.json").write_bytes(orjson.dumps(evil))
    shutil.copy(DATA / "sentinelone-linux-file.ndjson", folder / "s1.ndjson")
    shutil.copy(DATA / "endgame-legacy.ndjson", folder / "endgame-legacy.ndjson")
    shutil.copy(DATA / "endgame-ecs.ndjson", folder / "endgame-ecs.ndjson")
    (folder / "broken.ndjson").write_text('{"src.process.name": "x"}\nnot json\n')
    return folder


def test_mixed_folder_alerts_carry_each_source_index(tmp_path: Path, shared: Path) -> None:
    stats = ReadStats()
    events = list(read_inputs([_folder(tmp_path, shared)], stats=stats))
    indexes = {e.index for e in events}
    assert S1_INDEX in indexes and "endgame-3.0.0" in indexes and "endgame-3.53.9" in indexes
    assert any(i and i.startswith(".ds-logs-endpoint.events.file-default") for i in indexes)
    # A Cloud Funnel line with no event name or type, and a line that is not JSON: skipped and counted.
    assert stats.skipped == 2
    alerts = list(Engine(bundled_rules().rules).scan(events))
    by_index = {a["kibana.alert.ancestors"][0]["index"]: a for a in alerts}
    assert len(alerts) == 4, sorted(by_index)
    assert set(by_index) == {
        "logs-endpoint.events.file-default",
        S1_INDEX,
        "endgame-3.0.0",
        "endgame-3.53.9",
    }
    assert by_index[S1_INDEX]["file"]["path"] == "/usr/lib/dracut/modules.d/99evil/module-setup.sh"
    assert by_index[S1_INDEX]["process"]["executable"] == "/usr/bin/cp"
    assert by_index["endgame-3.0.0"]["process"]["executable"] == "/usr/bin/vi"
    defend = by_index["logs-endpoint.events.file-default"]
    assert defend["process"]["executable"] == "/tmp/.hidden/dropper"
    assert defend["kibana.alert.rule.name"] == "Dracut Module Creation"


def test_forced_source_applies_to_every_event(tmp_path: Path) -> None:
    path = tmp_path / "eg.ndjson"
    shutil.copy(DATA / "endgame-legacy.ndjson", path)
    stats = ReadStats()
    assert list(read_inputs([path], source="sentinelone", stats=stats)) == []
    assert stats.skipped == 1 and "SentinelOne" in stats.problems[0].message
    (event,) = read_inputs([path], source="endgame")
    assert event.index == "endgame-3.0.0"
