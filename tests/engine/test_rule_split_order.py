"""--jobs over shares of the rules gives the alerts of one process, in its order, even
when each share alone would let its line pre-filter skip different lines: every share
reads the lines of the whole set (batch.rule_share_engine), so their merge tags agree."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from vigil.engine import Engine, batch
from vigil.engine.batch import scan_paths
from vigil.rules.loaders import bundled_rules, load_rules

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    gen_events = pytest.importorskip("gen_events")
    path = tmp_path_factory.mktemp("split") / "events.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(d) for d in gen_events.generate(4000, seed=5)) + b"\n")
    return path


@pytest.fixture(scope="module")
def few_rules(shared, data):
    """The Linux EQL event rules that raise alerts on the data, and the seed rule: few
    enough that each share of them keeps a line pre-filter of its own."""
    linux = load_rules([shared / "detection-rules" / "rules" / "linux"]).rules
    rules = [r for r in linux if r.type == "eql" and r.runnable and r.compiled().kind == "event"]
    rules += bundled_rules().rules
    engine = Engine(rules, now=NOW)
    firing = {a["kibana.alert.rule.rule_id"] for a in scan_paths(engine, [data], fast=False)}
    return [r for r in rules if r.rule_id in firing]


def _ids(rules, data, **kw) -> list[str]:
    return [a["kibana.alert.uuid"] for a in scan_paths(Engine(rules, now=NOW), [data], **kw)]


def test_rule_shares_with_their_own_literals_merge_in_one_process_order(few_rules, data, monkeypatch):
    monkeypatch.setattr(batch, "RULE_SPLIT_MIN", 2)  # --jobs splits these few rules
    shares = [batch.rule_share_engine(Engine(few_rules, now=NOW), k, 2) for k in range(2)]
    own = [s.router.literals() for s in shares]
    assert all(o is not None and len(o) <= batch.MAX_SCAN_LITERALS for o in own) and own[0] != own[1]
    plain = _ids(few_rules, data, fast=False)
    assert len(plain) > 20 and len(few_rules) >= 4, "alerts of several rules must interleave"
    assert _ids(few_rules, data, jobs=2) == plain
