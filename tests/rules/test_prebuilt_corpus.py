"""Elastic's prebuilt rules (shared/detection-rules): every rule loads, every EQL rule compiles and runs.

The corpus holds 2,192 rules: 1,081 EQL rules, which Vigil runs, and 1,111 of
other types (query 508, new_terms 245, esql 212, machine_learning 106,
threshold 31, threat_match 9), which are loaded and counted. Of the query rules,
the KQL ones whose every construct Vigil runs exactly run too (see
tests/kql/test_kql_corpus.py); the rest are reported as not runnable, never dropped.
"""

from __future__ import annotations

import importlib.util
import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vigil.engine import Engine
from vigil.events.model import Event
from vigil.rules import load_rules
from vigil.rules.validate import validate

REPO = Path(__file__).resolve().parents[2]

EXPECTED = Counter(
    {
        "eql": 1081,
        "query": 508,
        "new_terms": 245,
        "esql": 212,
        "machine_learning": 106,
        "threshold": 31,
        "threat_match": 9,
    }
)
# KQL custom query rules that run (tests/kql/test_kql_corpus.py gives the reasons for the rest).
KQL_RUNNABLE = 492
NEW_TERMS_RUNNABLE = 241
THRESHOLD_RUNNABLE = 30
# Indicator match rules that run: not the deprecated Filebeat 7.x one, whose threat query
# names threatintel.indicator.file.hash.*, fields Vigil's mapping does not hold.
THREAT_MATCH_RUNNABLE = 8
# ES|QL rules that run (tests/esql/test_esql_corpus.py): not the 7 that call a language model
# (COMPLETION), nor one RLIKE with Lucene's '&'.
ESQL_RUNNABLE = 204
DRACUT_ID = "dc765fb2-0c99-4e57-8c11-dafdf1992b66"


def _gen_events():
    spec = importlib.util.spec_from_file_location("gen_events", REPO / "bench" / "gen_events.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(shared):
    root = shared / "detection-rules"
    return load_rules([root / "rules", root / "rules_building_block"])


@pytest.fixture(scope="module")
def events():
    """A few hundred generated endpoint events, plus Dracut module drops (rare in the generator's mix)."""
    gen = _gen_events()
    docs = list(gen.generate(400, seed=11))
    rng = random.Random(5)
    ts = datetime(2026, 11, 1, 1, tzinfo=UTC)
    docs += [gen._dracut_event(rng, ts, n) for n in range(12)]
    return docs


def test_every_rule_loads_and_is_counted_by_type(corpus):
    assert corpus.problems == []
    assert corpus.counts_by_type() == EXPECTED
    assert len(corpus.rules) == sum(EXPECTED.values()) == 2192
    # Not-EQL rules are kept, never dropped; of them KQL query, new terms and threshold rules run.
    runnable = Counter((r.type, r.language) for r in corpus.rules if r.type != "eql" and r.runnable)
    assert runnable == Counter(
        {
            ("query", "kuery"): KQL_RUNNABLE,
            ("new_terms", "kuery"): NEW_TERMS_RUNNABLE,
            ("threshold", "kuery"): THRESHOLD_RUNNABLE,
            ("threat_match", "kuery"): THREAT_MATCH_RUNNABLE,
            ("esql", "esql"): ESQL_RUNNABLE,
        }
    )
    building_blocks = [r for r in corpus.rules if r.building_block_type]
    assert building_blocks and all(r.building_block_type == "default" for r in building_blocks)


def test_every_eql_rule_compiles_and_runs_over_generated_events(corpus, events):
    eql_rules = [r for r in corpus.rules if r.type == "eql"]
    failures, matched = [], Counter()
    for rule in eql_rules:
        try:
            query = rule.compiled()
            matched[rule.rule_id] = sum(1 for _ in query.run(events))
        except Exception as exc:  # noqa: BLE001 - collect every failing rule, then report them all
            failures.append(f"{rule.source}: {type(exc).__name__}: {exc}")
    assert failures == []
    assert len(matched) == EXPECTED["eql"]
    firing = sum(1 for n in matched.values() if n)
    print(f"{len(eql_rules)} EQL rules ran over {len(events)} events; {firing} matched at least once")
    # Version 6 of Dracut Module Creation flags the drops by unexpected programs only
    # (not dpkg or install, not Python, not editor swap files).
    unexpected = [
        e
        for e in events
        if "dracut" in e.get("file", {}).get("path", "")
        and e["file"]["extension"] != "swp"
        and e["process"]["executable"] not in ("/usr/bin/dpkg", "/usr/bin/install")
        and not e["process"]["name"].startswith("python")  # v6: "Too many FPs from Python automation"
    ]
    assert unexpected and matched[DRACUT_ID] == len(unexpected)
    assert 0 < firing < len(eql_rules)


def test_engine_routes_generated_events_to_the_corpus(corpus, events):
    def index(doc):
        ds = doc["data_stream"]
        return f"{ds['type']}-{ds['dataset']}-{ds['namespace']}"

    engine = Engine(corpus.rules)
    assert len(engine.rules) == EXPECTED["eql"] + KQL_RUNNABLE
    # Replayed on their schedule.
    assert len(engine.scheduled) == (
        NEW_TERMS_RUNNABLE + THRESHOLD_RUNNABLE + THREAT_MATCH_RUNNABLE + ESQL_RUNNABLE
    )
    alerts = list(engine.scan(Event(doc, index=index(doc)) for doc in events))
    by_rule = Counter(a["kibana.alert.rule.rule_id"] for a in alerts if "kibana.alert.rule.rule_id" in a)
    assert by_rule[DRACUT_ID] > 0
    assert sum(s["events"] for s in engine.stats.values()) > 0


def test_corpus_validates_clean(shared):
    root = shared / "detection-rules"
    report = validate([root / "rules", root / "rules_building_block"])
    assert [p.render() for p in report.problems] == []
    assert len(report.rules) == 2192
