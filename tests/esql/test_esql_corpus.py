"""Every prebuilt ES|QL rule query is checked and compiled; the ones that cannot run
outside Elastic are known and give their reason."""

from __future__ import annotations

from collections import Counter

from vigil import esql
from vigil.eql.errors import EqlError

# 7 COMPLETION rules call a language model; one RLIKE uses Lucene's intersection
# operator '&' (unsupported by vigil.lucene.regexp).
EXPECTED_NOT_COMPILED = Counter({"COMPLETION": 7, "RLIKE": 1})
COMPILED = 204


def test_prebuilt_esql_rules_compile(prebuilt_rules):
    rules = [r for r in prebuilt_rules if r.type == "esql"]
    failed: Counter = Counter()
    compiled = 0
    for rule in rules:
        try:
            esql.compile(rule.query)
        except EqlError as exc:
            failed[exc.message.split()[0]] += 1
            assert exc.line is not None and exc.column is not None
            continue
        compiled += 1
    assert compiled == COMPILED
    assert failed == EXPECTED_NOT_COMPILED


def test_aggregating_rules_run_over_no_events(prebuilt_rules):
    # Each compiled rule runs over an empty window without error.
    for rule in prebuilt_rules:
        if rule.type != "esql":
            continue
        try:
            program = esql.compile(rule.query)
        except EqlError:
            continue
        program.run([])
