"""The raw-line literal pre-filter never rules out a line its query could match."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vigil import eql
from vigil.eql.literals import Requirement, requirement

SEED_QUERY = """
file where host.os.type == "linux" and event.type == "creation" and process.executable != null and
file.path like~ ("/lib/dracut/modules.d/*", "/usr/lib/dracut/modules.d/*") and not (
  process.executable in ("/usr/bin/dpkg", "/dev/fd/*") or file.extension in ("swp", "swpx")
)
"""


def req(text: str, typer=None) -> Requirement:
    return requirement(eql.parse(text), typer)


def line(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


DRACUT = {
    "event": {"category": ["file"], "type": ["creation"]},
    "host": {"os": {"type": "linux"}},
    "file": {"path": "/usr/lib/dracut/modules.d/99x/setup.sh", "extension": "sh"},
    "process": {"executable": "/usr/bin/curl"},
}


def test_seed_query_requires_the_module_folder():
    r = req(SEED_QUERY)
    assert r.clauses, "the seed query names literals every match carries"
    assert r.admits(line(DRACUT))
    other = dict(DRACUT, file={"path": "/etc/passwd", "extension": ""})
    assert not r.admits(line(other))


def test_case_insensitive_operator_admits_any_case():
    doc = dict(DRACUT, file={"path": "/USR/LIB/DRACUT/MODULES.D/99x/a.sh"})
    assert req(SEED_QUERY).admits(line(doc))


def test_json_escapes_are_always_admitted():
    r = req(SEED_QUERY)
    escaped = line(DRACUT).replace(b"/", b"\\/")
    assert r.admits(escaped)
    unicode_escaped = line(DRACUT).replace(b"dracut", b"\\u0064racut")
    assert r.admits(unicode_escaped)


def test_non_ascii_lines_are_admitted():
    # The Kelvin sign folds to "k" under Unicode case rules; such a line cannot be ruled out.
    r = req('any where process.name : "kworker"')
    assert r.admits(line({"process": {"name": "\u212aworker"}}).decode().encode("utf-8"))
    assert not r.admits(line({"process": {"name": "bash"}}))


def test_negations_give_no_requirement():
    for q in (
        'any where not process.name == "bash"',
        'any where process.name != "bash"',
        'any where process.name not in ("bash", "zsh")',
    ):
        assert req(q).clauses == ()


def test_or_needs_a_literal_on_every_branch():
    assert req('any where process.name == "bash" or process.pid == 4').clauses == ()
    r = req('any where process.name == "bash" or file.name == "hosts"')
    assert r.clauses == (frozenset({b"bash", b"hosts"}),)


def test_typed_fields_are_not_used():
    # A date may be written as epoch millis: its ISO text need not appear in the line.
    typer = {"@timestamp": "date", "source.ip": "ip", "process.pid": "long"}.get
    assert req('any where @timestamp == "2020-01-01T00:00:00Z"', typer).clauses == ()
    assert req('any where source.ip == "10.0.0.1"', typer).clauses == ()
    assert req('any where user.id == "1000"').clauses == (), "numbers-as-text are never used"


def test_backslashes_are_looked_for_escaped():
    r = req(r'any where process.executable : "C:\\Windows\\System32\\cmd.exe"')
    assert r.admits(line({"process": {"executable": "C:\\Windows\\System32\\cmd.exe"}}))
    assert not r.admits(line({"process": {"executable": "C:\\Windows\\notepad.exe"}}))


def test_sequences_admit_events_of_any_stage():
    r = req('sequence by host.id [process where process.name == "bash"] [file where file.name == "hosts"]')
    assert r.admits(line({"process": {"name": "bash"}}))
    assert r.admits(line({"file": {"name": "hosts"}}))
    assert not r.admits(line({"file": {"name": "passwd"}}))


def _mutations(raw: bytes):
    """The same document written in ways a pre-filter could trip over."""
    yield raw
    yield raw.replace(b"/", b"\\/")
    yield re.sub(rb"([a-z])", lambda m: b"\\u%04x" % m.group(1)[0], raw, count=3)


def test_prebuilt_rules_never_lose_a_match(shared):
    """For every prebuilt EQL rule and generated events, a match is always admitted."""
    import sys
    import tomllib

    query_mod = pytest.importorskip("vigil.eql.query")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    gen = pytest.importorskip("gen_events")
    events = list(gen.generate(3000, seed=11))
    rules = []
    for path in sorted((shared / "detection-rules").glob("rules*/**/*.toml")):
        rule = tomllib.loads(path.read_text()).get("rule", {})
        if rule.get("type") == "eql":
            q = query_mod.compile_query(rule["query"])
            rules.append((q, requirement(q.statement)))
    assert len(rules) == 1081
    matches = 0
    for doc in events:
        raws = list(_mutations(line(doc)))
        for q, r in rules:
            if q.matches(doc):
                matches += 1
                assert all(r.admits(raw) for raw in raws), q.statement.text
    print(f"{len(rules)} rules, {matches} matches, all admitted")
    assert matches > 0
