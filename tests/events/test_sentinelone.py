"""SentinelOne Cloud Funnel normalization."""

import json
import re
from pathlib import Path

import orjson
import pytest

from vigil.events.sentinelone import normalize

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


CONF = "conformance/sentinel_one_cloud_funnel/pipeline/event"
# Compared against the integration's expected output; other fields are not yet mapped.
COMPARED = (
    "@timestamp",
    "event.id",
    "event.kind",
    "event.action",
    "event.category",
    "host.name",
    "host.hostname",
    "host.id",
    "host.type",
    "host.os.platform",
    "process.entity_id",
    "process.hash.md5",
    "process.hash.sha1",
    "process.hash.sha256",
    "user.domain",
    "user.name",
    "file.path",
    "file.name",
    "process.pid",
    "process.name",
)


def _flat(doc: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_file_pairs_match_expected_fields(shared) -> None:
    folder = shared / CONF
    raws = [json.loads(x) for x in (folder / "test-file.log").read_text().splitlines() if x]
    expected = json.loads((folder / "test-file.log-expected.json").read_text())["expected"]
    compared = matched = 0
    for raw, want in zip(raws, expected, strict=True):
        got, want = _flat(normalize(raw)), _flat(want)
        for key in COMPARED:
            if key in want:
                compared += 1
                matched += got.get(key) == want[key]
                assert got.get(key) == want[key], key
    print(f"sentinelone file events: {matched}/{compared} fields matched")
    assert compared > 0


def _samples() -> list[dict]:
    text = (DATA / "sentinelone-linux-file.ndjson").read_text()
    return [orjson.loads(x) for x in text.splitlines() if x]


def test_linux_file_creation_fields() -> None:
    doc = normalize(_samples()[0])
    assert doc["host"]["os"]["type"] == "linux"
    assert doc["event"]["type"] == ["creation"]
    assert doc["file"]["name"] == "module-setup.sh"
    assert doc["file"]["extension"] == "sh"
    assert doc["process"]["executable"] == "/usr/bin/cp"
    assert doc["@timestamp"] == "2024-11-28T08:00:00.000Z"


def test_seed_rule_alerts_on_dracut_module_but_not_dpkg(shared) -> None:
    query = compiled_seed(shared)
    evil, dpkg = (normalize(d) for d in _samples())
    assert query.matches(evil)
    assert not query.matches(dpkg)
