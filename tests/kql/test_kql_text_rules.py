"""Elastic's prebuilt KQL rules that query analysed (``text``) fields, run as Elasticsearch
runs them: the standard analyzer on the field and on the query (vigil.lucene.analysis).

The rules are found by scanning the prebuilt set for a KQL value on a field Vigil
types as analysed (``powershell.file.script_block_text``, ``message``...), not picked
by hand. For each, an event is built from the query itself: one branch of every
``or`` that the rule's own compiled query accepts, each text value written into a
script the way PowerShell logs it (case changed, brackets and semicolons around), and
every other field set from the query's literals. All prebuilt rules then scan all
those events through ``vigil scan``'s path (``scan_paths``, plain and fast), and each
rule must alert on its own event. Its negative twin writes every word of those
values with one more letter (``Invoke-MimikatzX``): the analyzer makes it another
token, so the rule must not alert on it.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime

import orjson
import pytest

from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.kql import KqlUnsupported, parse
from vigil.kql import tree as T
from vigil.kql.translate import field_type
from vigil.lucene.analysis import tokenize

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TEXT_RULES = 44  # 35 on powershell.file.script_block_text, 9 on message
RUNNABLE_TEXT_RULES = 43  # one also takes a range on a double field


@pytest.fixture(scope="module")
def prebuilt(prebuilt_rules):
    return prebuilt_rules


def _atoms(node: T.Node):
    """Every ``Is``/``Range`` leaf of a KQL tree."""
    match node:
        case T.And(terms=ts) | T.Or(terms=ts):
            for t in ts:
                yield from _atoms(t)
        case T.Not(query=q) | T.Nested(query=q):
            yield from _atoms(q)
        case T.Is() | T.Range():
            yield node


def _on_text(rule) -> bool:
    if rule.type != "query" or rule.language != "kuery":
        return False
    tree = parse(rule.query or "")
    return any(
        isinstance(a, T.Is) and a.field is not None and field_type(a.field.text) == "text"
        for a in _atoms(tree)
    )


def _branches(node: T.Node, want: bool = True):
    """Lists of (leaf, wanted truth), any one of which makes ``node`` what is wanted."""
    match node:
        case T.And(terms=ts) if want:
            yield from _product(ts, True)
        case T.Or(terms=ts) if not want:
            yield from _product(ts, False)
        case T.And(terms=ts) | T.Or(terms=ts):
            for t in ts:
                yield from _branches(t, want)
        case T.Not(query=q):
            yield from _branches(q, not want)
        case _:
            yield [(node, want)]


def _product(terms, want: bool):
    for combo in itertools.product(*(list(itertools.islice(_branches(t, want), 40)) for t in terms)):
        yield [a for part in combo for a in part]


def _mixed_case(text: str) -> str:
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(text))


def _glued(text: str) -> str:
    """``text`` with an ``X`` after each of its words: each becomes a longer token."""
    out, pos = [], 0
    for tok in tokenize(text):
        at = text.index(tok, pos)
        out.append(text[pos : at + len(tok)] + "X")
        pos = at + len(tok)
    return "".join(out) + text[pos:]


def _script(values: list[str], twin: bool) -> str:
    lines = ["# Vigil test script", "$ErrorActionPreference = 'SilentlyContinue'"]
    for i, v in enumerate(values):
        v = _glued(v) if twin else v
        lines.append(f"$v{i} = ({_mixed_case(v)}); [void]$v{i}")
    return "\n".join(lines)


def _put(doc: dict, name: str, value) -> None:
    *parents, last = name.split(".")
    for p in parents:
        doc = doc.setdefault(p, {})
    doc[last] = value


def _event(branch, twin: bool) -> dict | None:
    """The document one branch describes, or None when it asks a field for two things."""
    doc: dict = {"@timestamp": "2026-11-01T00:00:00Z"}
    texts: dict[str, list[str]] = {}
    plain: dict[str, str] = {}
    for leaf, want in branch:
        if not want or leaf.field is None:
            continue  # a `not` holds on a field left out
        name = leaf.field.text
        if isinstance(leaf, T.Range):
            return None
        if field_type(name) == "text":
            texts.setdefault(name, []).append(leaf.value.text.replace("*", ""))
            continue
        value = "".join(leaf.value.parts) or "present"
        if plain.setdefault(name, value) != value:
            return None
    for name, value in plain.items():
        _put(doc, name, value)
    for name, values in texts.items():
        _put(doc, name, _script(values, twin))
    return doc


def _shaped(rule) -> tuple[dict, dict]:
    """A (positive, twin) pair of events for the rule, checked by its compiled query."""
    query = rule.compiled()
    for branch in itertools.islice(_branches(parse(rule.query)), 5000):
        doc = _event(branch, twin=False)
        if doc is not None and query.matches(doc):
            return doc, _event(branch, twin=True)
    raise AssertionError(f"no event found for {rule.name}")


def _alerted(rules, docs: list[dict], tmp_path, fast: bool) -> set[tuple[str, str]]:
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    engine = Engine(rules, now=NOW)
    return {(a["kibana.alert.rule.rule_id"], a["vigil_case"]) for a in scan_paths(engine, [path], fast=fast)}


def test_prebuilt_text_rules_fire_as_elasticsearch_matches_them(prebuilt, tmp_path):
    on_text = [r for r in prebuilt if _on_text(r)]
    assert len(on_text) == TEXT_RULES
    text_rules = [r for r in on_text if r.runnable]
    assert len(text_rules) == RUNNABLE_TEXT_RULES
    for r in on_text:
        if not r.runnable:
            with pytest.raises(KqlUnsupported, match="range on the double field"):
                r.compiled()
    docs, twins = [], []
    for r in text_rules:
        doc, twin = _shaped(r)
        assert not r.compiled().matches(twin), (r.name, twin)
        doc["vigil_case"] = f"{r.rule_id}:positive"
        twin["vigil_case"] = f"{r.rule_id}:twin"
        docs.append(doc)
        twins.append(twin)
    runnable = [r for r in prebuilt if r.runnable]
    for fast in (False, True):
        alerted = _alerted(runnable, docs + twins, tmp_path, fast)
        missed = [r.name for r in text_rules if (r.rule_id, f"{r.rule_id}:positive") not in alerted]
        assert not missed, f"rules that did not fire (fast={fast}): {missed}"
        false = [r.name for r in text_rules if (r.rule_id, f"{r.rule_id}:twin") in alerted]
        assert not false, f"rules that fired on a negative twin (fast={fast}): {false}"


def test_twins_differ_only_by_longer_words():
    assert _glued("Invoke-Mimikatz") == "InvokeX-MimikatzX"
    assert _glued("$env:ComSpec[4") == "$env:ComSpecX[4X"
    assert re.fullmatch(r"\$v0 = \(.*\); \[void\]\$v0", _script(["a"], False).splitlines()[-1])
