"""The rule cache (vigil.rules.cache): a second load gives the same rules, verdicts and
matches from disk, never from a stale or foreign file."""

from __future__ import annotations

import os
import pickle

from vigil.rules.cache import RuleCache
from vigil.rules.loaders import load_rules

RULE = """
[metadata]
creation_date = "2026/01/01"

[rule]
author = ["Vigil"]
description = "d"
name = "Cached"
risk_score = 21
rule_id = "cached-1"
severity = "low"
type = "eql"
language = "eql"
index = ["logs-*"]
query = '''
file where file.path : "/usr/lib/dracut/modules.d/*" and process.name != "dracut"
'''
"""

BROKEN = RULE.replace("cached-1", "broken-1").replace('file.path : "', 'file.path :: "')

DOC = {
    "event": {"category": "file"},
    "file": {"path": "/usr/lib/dracut/modules.d/99x/x.sh"},
    "process": {"name": "cp"},
}


def _write(folder, name, text):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)


def test_second_load_comes_from_the_cache_with_the_same_verdicts(tmp_path):
    rules = tmp_path / "rules"
    _write(rules, "a.toml", RULE)
    _write(rules, "b.toml", BROKEN)
    cold = RuleCache(tmp_path / "cache")
    first = load_rules([rules], cache=cold).rules
    assert (cold.hits, cold.misses) == (0, 2)
    warm = RuleCache(tmp_path / "cache")
    second = load_rules([rules], cache=warm).rules
    assert (warm.hits, warm.misses) == (2, 0)
    assert [r.rule_id for r in second] == [r.rule_id for r in first]
    assert [r.why_not_runnable for r in second] == [r.why_not_runnable for r in first]
    assert second[0].runnable and not second[1].runnable
    assert "syntax" in second[1].why_not_runnable
    query = second[0].compiled()
    assert query.matches(DOC)
    assert not query.matches({**DOC, "process": {"name": "dracut"}})


def test_an_edited_rule_is_checked_again(tmp_path):
    rules = tmp_path / "rules"
    _write(rules, "a.toml", RULE)
    load_rules([rules], cache=RuleCache(tmp_path / "cache"))
    _write(rules, "a.toml", RULE.replace('"dracut"', '"cp"'))
    warm = RuleCache(tmp_path / "cache")
    rule = load_rules([rules], cache=warm).rules[0]
    assert warm.misses == 1
    assert not rule.compiled().matches(DOC)


def test_match_long_values_set_after_loading_recompiles(tmp_path):
    rules = tmp_path / "rules"
    _write(rules, "a.toml", RULE)
    load_rules([rules], cache=RuleCache(tmp_path / "cache"))
    rule = load_rules([rules], cache=RuleCache(tmp_path / "cache")).rules[0]
    long_path = "/usr/lib/dracut/modules.d/" + "a" * 1100  # past file.path's ignore_above (1024)
    assert not rule.compiled().matches({**DOC, "file": {"path": long_path}})
    rule.match_long_values = True
    assert rule.compiled().matches({**DOC, "file": {"path": long_path}})


def test_a_cache_others_can_write_is_never_read(tmp_path):
    rules = tmp_path / "rules"
    _write(rules, "a.toml", RULE)
    folder = tmp_path / "cache"
    load_rules([rules], cache=RuleCache(folder))
    (pack,) = folder.glob("rules-*.pickle")
    os.chmod(pack, 0o666)
    foreign = RuleCache(folder)
    load_rules([rules], cache=foreign)
    assert foreign.hits == 0


def test_a_broken_cache_is_a_miss(tmp_path):
    rules = tmp_path / "rules"
    _write(rules, "a.toml", RULE)
    folder = tmp_path / "cache"
    load_rules([rules], cache=RuleCache(folder))
    (pack,) = folder.glob("rules-*.pickle")
    pack.write_bytes(pickle.dumps({"x": b"not a pickle"})[:20])
    again = RuleCache(folder)
    assert load_rules([rules], cache=again).rules[0].runnable
    assert again.hits == 0


def test_turned_off_by_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_CACHE_DIR", "off")
    assert RuleCache.default().folder is None
    rules = tmp_path / "rules"
    _write(rules, "a.toml", RULE)
    assert load_rules([rules]).rules[0].runnable


def test_the_cache_holds_each_querys_superset_filters(tmp_path):
    # The engine's filters are made at check time and read back with the query, equal
    # to those made afresh from the statement.
    from vigil.engine.vector import FieldTest, event_filter, query_filters

    rules = tmp_path / "rules"
    _write(rules, "a.toml", RULE)
    load_rules([rules], cache=RuleCache(tmp_path / "cache"))
    (rule,) = load_rules([rules], cache=RuleCache(tmp_path / "cache")).rules
    query = rule.compiled()
    kept = query.derived["superset"]
    assert kept == (event_filter(query.statement.query),)
    assert query_filters(query) is kept
    assert FieldTest("file.path", "prefix", ("/usr/lib/dracut/modules.d/",)) in kept[0].terms
