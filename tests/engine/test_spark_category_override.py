"""Spark executors rebuild the rules from their files' texts: the prebuilt rules that
override the event category keep the override there, and give the alerts of one
process, whether the executors take shares of the rules or byte ranges of the input.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import orjson
import pytest
from test_category_override import NOW, _cases, _override_rules, _too_few_alerts, _variants, _write

from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.events.readers import ReadStats
from vigil.rules.loaders import load_rules

pytest.importorskip("pyspark")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
gen_events = pytest.importorskip("gen_events")


@pytest.fixture(scope="module")
def sc():
    from vigil.engine.spark import spark_context

    with spark_context("local[2]") as context:
        yield context


def _scan(ruleset, data, runner=None):
    engine = Engine(ruleset.rules, now=NOW)
    stats = ReadStats()
    ids = [a["kibana.alert.uuid"] for a in scan_paths(engine, [data], stats=stats, runner=runner)]
    return ids, stats.events, engine


@pytest.mark.parametrize("split", ["rule-shares", "byte-ranges"])
def test_override_rules_on_spark_give_the_alerts_of_one_process(sc, shared, tmp_path, monkeypatch, split):
    from vigil.engine import batch
    from vigil.engine.spark import EngineRecipe, SparkRunner

    base = shared / "detection-rules"
    overriding = _override_rules(base)
    # The AWS and Okta rules hold every override, and are enough rules for a rule split.
    ruleset = load_rules([base / "rules" / "integrations" / name for name in ("aws", "okta")])
    ids = {r.rule_id for r in ruleset.rules if r.runnable}
    assert {r["rule_id"] for r in overriding} <= ids and len(ids) >= batch.RULE_SPLIT_MIN
    monkeypatch.setattr(batch, "CHUNK", 64 << 10)
    monkeypatch.setattr(batch, "MIN_CHUNK", 16 << 10)
    if split == "byte-ranges":
        monkeypatch.setattr(batch, "RULE_SPLIT_MIN", 10**6)
    rng = random.Random(8)
    positives, negatives = _cases(overriding)
    lines = [orjson.dumps(d) for d in gen_events.generate(600, seed=8)]
    for doc in positives + _variants(positives, negatives):
        lines.insert(rng.randrange(len(lines)), orjson.dumps(doc))
    data = _write(tmp_path / "events.ndjson", lines)
    one, events, engine = _scan(ruleset, data)
    assert not _too_few_alerts(engine, overriding)
    runner = SparkRunner(sc, EngineRecipe.of(ruleset, None, now=NOW))
    on_spark, spark_events, _ = _scan(ruleset, data, runner)
    assert (on_spark, spark_events) == (one, events)
