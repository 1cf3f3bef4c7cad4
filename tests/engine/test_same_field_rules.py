"""Elastic's prebuilt EQL rules that compare one field more than once inside one
``and`` (``process.args == "-r" and process.args == "/"``), found by walking their
parsed queries, fire on events whose values are split across an array, as
Elasticsearch matches them: its EQL optimizer (Optimizer.java) runs neither
PropagateEquals nor CombineBinaryComparisons, so each comparison is its own query
and any value may satisfy it. The twins, without the value of one comparison, do
not fire. Where the comparisons are an exclusion (under ``not``), the other way
round. All prebuilt rules are loaded and run as ``vigil scan`` runs them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from split_values import case_of, conjunction_groups, split_cases

from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.eql.parser import parse_expression


@pytest.fixture(scope="module")
def cases(prebuilt_rules):
    # Every rule of the class is served: none is left out as too hard to build.
    return split_cases(prebuilt_rules)


def test_groups_are_found_by_walking_the_query():
    expr = parse_expression(
        'a == "1" and (b == "x" or (process.args == "-r" and c == 1 and process.args == "/"))'
        ' and n >= 200 and n < 600 and m != 1 and m != 2 and k == null and k == "z"'
    )
    found = {".".join(path): len(cmps) for path, cmps in conjunction_groups(expr)}
    # != (must_not) and null checks are no part of a group; nested ands are walked.
    assert found == {"process.args": 2, "n": 2}


def test_prebuilt_rules_with_same_field_conjunctions_fire_on_split_values(prebuilt_rules, cases, tmp_path):
    assert len(cases) >= 30, "the class is Elastic's own, dozens of rules"
    assert sum(not c.fires for c in cases) >= 3, "exclusions of the class are checked too"
    data = tmp_path / "split.ndjson"
    data.write_bytes(b"".join(orjson.dumps(e) + b"\n" for c in cases for e in c.events + c.twins))
    engine = Engine(prebuilt_rules, now=datetime(2027, 1, 1, tzinfo=UTC))
    fired: dict[str, set[str]] = {}
    for alert in scan_paths(engine, [data]):
        tag = case_of(alert)
        if tag is not None:
            fired.setdefault(alert["kibana.alert.rule.rule_id"], set()).add(tag)
    wrong = []
    for n, c in enumerate(cases):
        got = fired.get(c.rule_id, set())
        split, twin = f"vigil-split-{n}" in got, f"vigil-twin-{n}" in got
        if (split, twin) != (c.fires, not c.fires):
            wrong.append(f"{c.name} ({c.field}): split values fired {split}, twin fired {twin}")
    assert not wrong, "\n".join(wrong)
