"""Unquoted values that look like numbers or booleans.

Kibana's grammar (kbn-es-query ``src/kuery/grammar/grammar.peggy``, UnquotedLiteral)
turns only ``null``, ``true`` and ``false`` into constants; every other unquoted
value, ``1.50``, ``007`` and ``1e3`` included, stays the text as written (the 7.x
grammar's number parsing, which dropped leading zeros: elastic/kibana#85548, is
gone), and ``is.ts`` sends it as the value of a ``match`` query. On a keyword field
that is one exact term of that text; a JSON ``true`` reaches a keyword field as the
term ``true``. On a long field Elasticsearch reads the text as a number
(NumberFieldMapper LONG.termQuery: a decimal part matches nothing, else
Numbers.toLong, BigDecimal).
"""

from __future__ import annotations

import pytest

from vigil import kql
from vigil.kql import KqlUnsupported


def matches(query: str, doc: dict) -> bool:
    return kql.compile(query).matches(doc)


@pytest.mark.parametrize("text", ["1.50", "007", "1e3", "-0", "1.0"])
def test_a_number_text_on_a_keyword_field_is_that_exact_text(text):
    assert matches(f"process.pe.file_version: {text}", {"process": {"pe": {"file_version": text}}})
    assert matches(f'process.pe.file_version: "{text}"', {"process": {"pe": {"file_version": text}}})
    # Not its numeric value: 1.50 is no 1.5, 007 no 7, 1e3 no 1000.
    for other in {"1.5", "7", "1000", "0", "1", "1.00"} - {text}:
        assert not matches(f"process.pe.file_version: {text}", {"process": {"pe": {"file_version": other}}})


def test_a_json_number_in_a_keyword_field_is_its_text():
    # Elastic Defend writes user.id as the JSON number 0; the keyword is "0".
    assert matches("user.id: 0", {"user": {"id": 0}})
    assert matches("user.id: 1.5", {"user": {"id": 1.5}})
    assert not matches("user.id: 1.50", {"user": {"id": "1.5"}})


def test_booleans_on_a_keyword_field_are_their_text():
    assert matches("process.pe.file_version: true", {"process": {"pe": {"file_version": "true"}}})
    assert not matches("process.pe.file_version: true", {"process": {"pe": {"file_version": "True"}}})
    assert matches("process.pe.file_version: false", {"process.pe.file_version": False})


@pytest.mark.parametrize(
    ("text", "value", "hit"),
    [
        ("007", 7, True),
        ("1e3", 1000, True),
        ("2.0", 2, True),
        ("+5", 5, True),
        ("1.50", 1, False),  # a decimal part: no long equals it
        ("1.50", 2, False),
    ],
)
def test_a_number_text_on_a_long_field(text, value, hit):
    doc = {"process": {"pid": value}}
    assert matches(f"process.pid: {text}", doc) is hit
    assert matches(f"not process.pid: {text}", doc) is not hit


def test_a_long_out_of_range_is_not_run():
    with pytest.raises(KqlUnsupported):
        kql.to_eql("process.pid: 1e30")
    with pytest.raises(KqlUnsupported):
        kql.to_eql("process.pid: abc")
