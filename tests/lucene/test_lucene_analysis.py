"""The standard analyzer as Elasticsearch runs it: Lucene's StandardTokenizer
(``analysis/standard/StandardTokenizerImpl.jflex``: UAX#29 word-break rules, longest
match, a buffer of ``max_token_length`` 255) and ``LowerCaseFilter``.

Every expected token list below is what Lucene's ``StandardAnalyzer`` (no stop words)
gives for the text; the WordBreakTest-style cases name the UAX#29 rule they exercise.
"""

from __future__ import annotations

import time

import pytest

from vigil.lucene.analysis import analyze, match, match_phrase, tokenize, wildcard

LUCENE_CASES = [
    # PowerShell as a script block holds it: hyphens and `::` break, `:` between letters does not (WB6/7).
    ("Invoke-Mimikatz -DumpCreds", ["invoke", "mimikatz", "dumpcreds"]),
    ("sekurlsa::logonpasswords", ["sekurlsa", "logonpasswords"]),
    ("$env:ComSpec[4,15,25]-Join''", ["env:comspec", "4,15,25", "join"]),
    ("[System.Reflection.Assembly]::Load($bytes)", ["system.reflection.assembly", "load", "bytes"]),
    ("C:\\Windows\\System32\\cmd.exe", ["c", "windows", "system32", "cmd.exe"]),
    ("x=1;y=2", ["x", "1", "y", "2"]),
    # Apostrophes (WB6/7 with Single_Quote and MidNumLet U+2019), and two in a row break.
    ("can't won\u2019t", ["can't", "won\u2019t"]),
    ("a'b a''b a:b a::b", ["a'b", "a", "b", "a:b", "a", "b"]),
    # Digits: WB11/12 join across , ; . ' between digits only; WB9/10 join letters and digits.
    ("3.14 1,000,000 10.0.0.1 a.1 1.a", ["3.14", "1,000,000", "10.0.0.1", "a", "1", "1", "a"]),
    ("file.ps1: line 3", ["file.ps1", "line", "3"]),
    ("end. Next", ["end", "next"]),
    # ExtendNumLet (WB13a/b): underscores join, and alone make no token.
    ("a_b __init__ _x_ ___", ["a_b", "__init__", "_x_"]),
    (
        "e-mail user@example.com http://example.com/a?b=c",
        ["e", "mail", "user", "example.com", "http"] + ["example.com", "a", "b", "c"],
    ),  # fmt: skip
    # Ideographs and hiragana one by one, katakana and hangul runs, Thai whole (Complex_Context).
    ("日本語テキストとひらがな", ["日", "本", "語", "テキスト", "と", "ひ", "ら", "が", "な"]),
    ("한국어 텍스트", ["한국어", "텍스트"]),
    ("ภาษาไทย", ["ภาษาไทย"]),
    # Emoji sequences: modifier, ZWJ, keycap, flags (two regional indicators each), ©.
    ("👍🏽 👨\u200d👩\u200d👧 1\u20e3 🇫🇷🇩🇪 ©", ["👍🏽", "👨\u200d👩\u200d👧", "1\u20e3", "🇫🇷", "🇩🇪", "©"]),
    # WB4: combining marks stay with their letter; fullwidth letters and digits are words.
    ("naïve cafe\u0301", ["naïve", "cafe\u0301"]),
    ("ＡＢＣ１２３", ["ａｂｃ１２３"]),
    # LowerCaseFilter maps each code point alone (Java): İ is i, a final sigma stays σ.
    ("ΑΣ ΣΑΣ İstanbul", ["ασ", "σασ", "istanbul"]),
]


@pytest.mark.parametrize(("text", "tokens"), LUCENE_CASES, ids=[c[0][:30] for c in LUCENE_CASES])
def test_standard_analyzer_gives_lucenes_tokens(text, tokens):
    assert list(analyze(text)) == tokens


def test_ascii_and_general_scans_agree():
    # The ASCII regular expression and the grammar's automaton must cut alike: a
    # non-ASCII character at the end sends the whole text through the automaton.
    texts = ["a.b.c. 1.2.3, x'y __a__ 4,5;6 a:b::c _1_ .5 a.1.b", "The_quick.brown fox's 3.14,15"]
    for t in texts:
        assert tokenize(t + " \u00e9") == tokenize(t) + ["\u00e9"]


def test_a_word_longer_than_the_buffer_is_cut_at_255():
    # StandardTokenizer: a token is at most max_token_length (255) UTF-16 units; the
    # scanner returns what its buffer holds and goes on after it.
    assert tokenize("a" * 300 + " b") == ["a" * 255, "a" * 45, "b"]
    # A supplementary character is two units: 127 of them fill 254 units, the next does not fit.
    assert tokenize("\U00010400" * 130) == ["\U00010400" * 127, "\U00010400" * 3]
    # The cut is the longest match within the buffer: a full stop needs a letter after it.
    assert tokenize("a" * 254 + ".b") == ["a" * 254, "b"]


@pytest.mark.parametrize(
    "hostile",
    ["\u00e9" + "_" * 100_000, "\u200d" * 100_000, "#" + "\u0301" * 100_000, "_" * 100_000, "😀" * 20_000],
    ids=["underscores", "zwj", "marks", "ascii-underscores", "emoji"],
)
def test_hostile_text_is_linear(hostile):
    start = time.perf_counter()
    tokenize(hostile)
    assert time.perf_counter() - start < 2.0


# --- the queries KQL builds on an analysed field ---------------------------------------

SCRIPT = "$a = [Ref].Assembly.GetType('System.Management.Automation.AmsiUtils'); Invoke-Mimikatz -DumpCreds"


def test_match_is_any_token_of_the_value():
    # match (operator OR): `Invoke-Mimikatz` unquoted is invoke OR mimikatz.
    assert match(SCRIPT, "Invoke-Mimikatz")
    assert match(SCRIPT, "invoke-nothing")  # `invoke` is enough
    assert not match(SCRIPT, "Mimikatz2")
    assert not match(SCRIPT, "-- ::")  # no token: zero_terms_query none


def test_match_phrase_is_tokens_in_a_row():
    assert match_phrase(SCRIPT, "Invoke-Mimikatz")
    assert match_phrase(SCRIPT, "INVOKE mimikatz")
    assert not match_phrase(SCRIPT, "Mimikatz-Invoke")
    assert not match_phrase(SCRIPT.replace("Mimikatz", "MimikatzX"), "Invoke-Mimikatz")
    # One token the analyzer keeps whole: a prefix of it is no match.
    assert match_phrase(SCRIPT, "System.Management.Automation.AmsiUtils")
    assert not match_phrase(SCRIPT, "System.Management.Automation")
    assert not match_phrase(SCRIPT, "")


def test_wildcard_matches_one_normalized_token():
    assert wildcard(SCRIPT, ("", "mimikatz", ""))
    assert wildcard(SCRIPT, ("MIMI", ""))  # a prefix query, lower-cased by normalize
    assert wildcard(SCRIPT, ("system.", "utils"))
    # A hyphen is in no token: the pattern is not analysed, so it never matches.
    assert not wildcard(SCRIPT, ("invoke-mimi", ""))
    assert not wildcard(SCRIPT, ("", "amsi"))
