"""SentinelOne Cloud Funnel normalization, checked against Elastic's own pipeline tests."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from vigil.engine import Engine
from vigil.errors import VigilError
from vigil.events.model import Event
from vigil.events.sentinelone import INDEX, normalize, parse_date, route, split_command_line
from vigil.rules.loaders import bundled_rules

DATA = Path(__file__).parent / "data"
CONF = "conformance/sentinel_one_cloud_funnel/pipeline/event"
# test-common-config.yml adds these to every input before the pipeline runs.
COMMON_TAGS = ["preserve_original_event", "preserve_duplicate_custom_fields"]
COMMON_REROUTE = ["dns"]

# Fields not compared for equality, each with its reason.
DYNAMIC = {
    # A time of day only ("18:32:29.488"): its date is the day the test ran.
    # test-common-config.yml declares it a dynamic field checked by this regex.
    "sentinel_one_cloud_funnel.event.timestamp": r"^[0-9]{4}(-[0-9]{2}){2}T[0-9]{2}(:[0-9]{2}){2}\.[0-9]{3}",
}
LAGGING = {
    # The expected file predates package 1.8.1 ("Fix missing event.action in
    # network events", PR #12285), so it has no event.action; 1.15.0 sets it.
    ("test-network-action.log", "event.action"),
}


def _flat(doc: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _pairs(folder: Path):
    for log in sorted(folder.glob("test-*.log")):
        lines = [x for x in log.read_text(encoding="utf-8").splitlines() if x.strip()]
        expected = json.loads((folder / f"{log.name}-expected.json").read_text(encoding="utf-8"))["expected"]
        yield log.name, lines, expected


def test_common_config_is_what_the_runner_applies(shared) -> None:
    text = (shared / CONF / "test-common-config.yml").read_text()
    for tag in COMMON_TAGS:
        assert f"- {tag}" in text
    assert "reroute:\n      - dns" in text


def test_every_pipeline_pair_field_by_field(shared) -> None:
    compared = matched = 0
    misses: list[str] = []
    events = 0
    for name, lines, expected in _pairs(shared / CONF):
        # test-command-script.log has a second line with no expected document (see README).
        assert len(lines) >= len(expected) > 0, name
        for line in lines[len(expected) :]:
            assert normalize(line, tags=COMMON_TAGS)["event"]["kind"] == "event"
        for line, want in zip(lines, expected, strict=False):
            events += 1
            doc = normalize(line, tags=COMMON_TAGS, reroute=COMMON_REROUTE)
            route(doc)
            got, want = _flat(doc), _flat(want)
            for key in sorted(set(got) | set(want)):
                if (name, key) in LAGGING:
                    continue
                compared += 1
                if key in DYNAMIC:
                    ok = isinstance(got.get(key), str) and re.match(DYNAMIC[key], got[key]) is not None
                else:
                    ok = key in got and key in want and got[key] == want[key]
                matched += ok
                if not ok:
                    misses.append(f"{name} {key}: got {got.get(key)!r}, want {want.get(key)!r}")
    print(f"\nsentinelone conformance: {events} events, {matched}/{compared} fields matched")
    assert events == 16
    assert compared > 2500
    assert matched / compared >= 0.999, "\n".join(misses[:20])


def test_every_event_type_in_the_pairs_is_covered(shared) -> None:
    """Each raw category of the pairs gets the ECS category Elastic gives it."""
    seen = {}
    for _name, lines, expected in _pairs(shared / CONF):
        for line, want in zip(lines, expected, strict=False):
            raw = orjson.loads(line)
            seen[raw["event.category"]] = (
                normalize(line)["event"].get("category"),
                want["event"].get("category"),
            )
    assert len(seen) == 13
    for category, (got, want) in seen.items():
        assert got == want, category


def _samples() -> list[dict]:
    text = (DATA / "sentinelone-linux-file.ndjson").read_text()
    return [orjson.loads(x) for x in text.splitlines() if x]


def test_linux_file_creation_fields() -> None:
    doc = normalize(_samples()[0])
    assert doc["host"]["os"] == {"type": "linux", "platform": "linux", "name": "Linux"}
    assert doc["event"]["category"] == ["file"]
    assert doc["event"]["type"] == ["creation"]
    assert doc["event"]["action"] == ["creation"]
    assert doc["file"]["name"] == "module-setup.sh"
    assert doc["file"]["directory"] == "/usr/lib/dracut/modules.d/99evil"
    assert doc["file"]["extension"] == "sh"
    assert "drive_letter" not in doc["file"]
    assert doc["file"]["created"] == "2024-11-28T08:00:00.000Z"
    assert doc["process"]["executable"] == "/usr/bin/cp"
    assert doc["process"]["args"] == ["cp", "module-setup.sh", "/usr/lib/dracut/modules.d/99evil/"]
    assert doc["process"]["parent"]["name"] == "bash"
    assert doc["process"]["user"] == {"name": "root", "id": "0"}
    # No backslash in the user: the integration copies it to both fields.
    assert doc["user"] == {"name": "root", "domain": "root"}
    assert doc["@timestamp"] == "2024-11-28T08:00:00.000Z"
    assert doc["related"]["hosts"] == ["web-01", "linux", "server"]
    assert doc["related"]["hash"] == [doc["file"]["hash"]["sha256"]]


def test_linux_file_event_types_and_actions() -> None:
    got = [(d["event"]["type"], d["event"].get("action")) for d in map(normalize, _samples())]
    assert got == [
        (["creation"], ["creation"]),
        (["creation"], ["creation"]),
        (["change"], ["change"]),
        (["deletion"], ["deletion"]),
        (["change"], ["rename"]),
    ]
    renamed = normalize(_samples()[4])
    assert renamed["file"]["extension"] == "bin"  # tgt.file.type "file": derived from the name
    assert renamed["sentinel_one_cloud_funnel"]["event"]["tgt"]["file"]["old"]["path"] == "/tmp/payload.bin"
    deleted = normalize(_samples()[3])
    assert "extension" not in deleted["file"]  # no tgt.file.type "file", no tgt.file.extension


def test_windows_file_rename_splits_at_backslash_and_keeps_drive() -> None:
    raw = {
        "event.category": "file",
        "event.type": "FileRename",
        "meta.event.name": "FILERENAME",
        "endpoint.os": "windows",
        "tgt.file.path": "c:\\Users\\bob\\report.final.docx",
        "tgt.file.type": "file",
        "src.process.user": "CORP\\bob",
    }
    doc = normalize(raw)
    assert doc["file"]["directory"] == "c:\\Users\\bob"
    assert doc["file"]["name"] == "report.final.docx"
    assert doc["file"]["extension"] == "docx"
    assert doc["file"]["drive_letter"] == "C"
    assert doc["user"] == {"domain": "CORP", "name": "bob"}
    assert doc["event"]["action"] == ["rename"]


def test_duplicate_custom_fields_dropped_unless_tagged() -> None:
    raw = _samples()[0]
    plain = normalize(raw)["sentinel_one_cloud_funnel"]["event"]
    kept = normalize(raw, tags=["preserve_duplicate_custom_fields"])["sentinel_one_cloud_funnel"]["event"]
    assert "tgt" not in plain and "id" not in plain
    assert kept["tgt"]["file"]["path"] == raw["tgt.file.path"]
    assert plain["trace_id"] == kept["trace_id"] == "S1LINUX0001"


def test_event_original_applies_the_backslash_rule() -> None:
    line = '{"event.category":"file","event.type":"FileCreation","tgt.file.path":"C:\\\\\\\\x"}'
    doc = normalize(line)
    assert (
        doc["event"]["original"]
        == '{"event.category":"file","event.type":"FileCreation","tgt.file.path":"C:\\\\x"}'
    )
    assert doc["file"]["path"] == "C:\\x"


def test_reroute_sets_the_data_stream() -> None:
    raw = _samples()[0]
    doc = normalize(raw, reroute=["file"])
    assert route(doc) == "logs-sentinel_one_cloud_funnel.file-default"
    assert doc["data_stream"]["dataset"] == "sentinel_one_cloud_funnel.file"
    plain = normalize(raw)
    assert route(plain) == INDEX and "data_stream" not in plain


def test_bad_values_become_pipeline_errors_not_tracebacks() -> None:
    raw = dict(_samples()[0], **{"tgt.file.size": "big", "src.process.startTime": "yesterday"})
    doc = normalize(raw)
    assert doc["event"]["kind"] == "pipeline_error"
    assert len(doc["error"]["message"]) == 2
    assert "preserve_original_event" in doc["tags"]
    assert doc["file"]["path"] == raw["tgt.file.path"]  # the rest is still mapped


@pytest.mark.parametrize("bad", ["not json", "[1, 2]", '{"foo": 1}'])
def test_not_cloud_funnel_is_a_vigil_error(bad: str) -> None:
    with pytest.raises(VigilError, match="SentinelOne"):
        normalize(bad)


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ("a b\tc", ["a", "b", "c"]),
        ('"C:\\Program Files\\x.exe" -f', ["C:\\Program Files\\x.exe", "-f"]),
        ('a\\\\"b c"', ["a\\b c"]),
        ('a\\"b', ['a"b']),
        ('"a""b"', ['a"b']),
        ("C:\\dir\\", ["C:\\dir\\"]),
        ('""  x', ["x"]),
    ],
)
def test_split_command_line_windows_rules(line: str, args: list[str]) -> None:
    assert split_command_line(line) == args


def test_parse_date_forms() -> None:
    assert parse_date(1664811149488) == "2022-10-03T15:32:29.488Z"
    assert parse_date("1664811149488") == "2022-10-03T15:32:29.488Z"
    assert parse_date("2022-10-03T17:32:29.488+02:00") == "2022-10-03T15:32:29.488Z"
    now = datetime(2031, 5, 5, tzinfo=UTC)
    assert parse_date("18:32:29.488", time_of_day=True, now=now) == "2031-01-01T18:32:29.488Z"


def _seed_alerts(docs: list[dict]) -> list[dict]:
    engine = Engine(bundled_rules().rules)
    events = [Event(doc, route(doc), id=doc["event"].get("id")) for doc in docs]
    return list(engine.scan(events))


def test_seed_rule_alerts_on_dracut_module_but_not_dpkg() -> None:
    evil, dpkg = (normalize(d) for d in _samples()[:2])
    alerts = _seed_alerts([evil, dpkg])
    assert [a["kibana.alert.rule.name"] for a in alerts] == ["Dracut Module Creation"]
    assert alerts[0]["kibana.alert.ancestors"][0]["index"] == INDEX
    assert alerts[0]["kibana.alert.ancestors"][0]["id"] == "S1LINUX0001_1"


def test_seed_rule_ignores_other_file_events() -> None:
    assert _seed_alerts([normalize(d) for d in _samples()[1:]]) == []
