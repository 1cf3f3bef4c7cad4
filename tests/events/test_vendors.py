"""detect() and normalize() dispatch over the sample files."""

from pathlib import Path

import orjson
import pytest

from vigil.errors import VigilError
from vigil.events.vendors import detect, normalize

DATA = Path(__file__).parent / "data"


def _docs(name: str) -> list[dict]:
    return [orjson.loads(line) for line in (DATA / name).read_text().splitlines() if line]


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("sentinelone-linux-file.ndjson", "sentinelone"),
        ("endgame-legacy.ndjson", "endgame"),
        ("endgame-ecs.ndjson", "endgame"),
    ],
)
def test_detect_samples(name: str, source: str) -> None:
    assert {detect(d) for d in _docs(name)} == {source}


def test_plain_ecs_passes_through() -> None:
    doc = {"event": {"category": ["file"]}, "file": {"path": "/x"}}
    assert detect(doc) == "ecs"
    assert normalize(doc) == (doc, None)


def test_indexes() -> None:
    assert normalize(_docs("sentinelone-linux-file.ndjson")[0])[1] == (
        "logs-sentinel_one_cloud_funnel.event-default"
    )
    assert normalize(_docs("endgame-ecs.ndjson")[0])[1] == "endgame-3.53.9"
    assert normalize(_docs("endgame-legacy.ndjson")[0])[1] == "endgame-3.0.0"


@pytest.mark.parametrize("bad", [[1, 2], "text", 3])
def test_non_objects_are_clear_errors(bad: object) -> None:
    with pytest.raises(VigilError, match="JSON object"):
        normalize(bad)


def test_unknown_source_is_an_error() -> None:
    with pytest.raises(VigilError, match="unknown event source"):
        normalize({}, source="splunk")


def test_forced_sentinelone_on_junk_is_an_error() -> None:
    with pytest.raises(VigilError, match="SentinelOne"):
        normalize({"foo": 1}, source="sentinelone")


@pytest.mark.parametrize(
    ("doc", "source"),
    [
        ({"tgt.file.path": "/x", "event": {}}, "sentinelone"),
        ({"a": 1, "src.process.name": "bash"}, "sentinelone"),
        # The prefix inside a key (or spread over two keys) is no Cloud Funnel key: an
        # intruder's key must not send an ECS event through another normalizer.
        ({"x\nsrc.process.name": "bash", "file": {"path": "/x"}}, "ecs"),
        ({"tgt": 1, ".file.path": 2}, "ecs"),
        ({"src.process": {"name": "bash"}}, "ecs"),
        ({1: "a key that is not text", "tgt.process.pid": 1}, "sentinelone"),
    ],
)
def test_detect_by_key_prefix(doc: dict, source: str) -> None:
    assert detect(doc) == source
