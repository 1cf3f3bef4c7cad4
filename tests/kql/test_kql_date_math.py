"""KQL date math (``@timestamp >= "now-30d/d"``) and field-name wildcards (``file.hash.*:*``).

Semantics from Elastic's source:

- kbn-es-query ``kuery/functions/range.ts``: a KQL range is a ``range`` query with the
  text as its bound; the detection engine (``get_query_filter.ts``) sets
  ``dateFormatTZ: 'Zulu'`` (UTC);
- Elasticsearch ``JavaDateMathParser`` and ``DateFieldMapper.DateFieldType.rangeQuery``:
  ``gt``/``lte`` bounds are read rounding up to the unit's last millisecond, ``gte``/``lt``
  rounding down; the examples are those of Elasticsearch's "Date math" and range
  query reference pages (now = 2001-01-01 12:00:00; ``2014-11-18||/M``);
- kbn-es-query ``kuery/functions/is.ts`` and ``exists.ts``: ``f*: *`` is an ``exists``
  query on the pattern, which Elasticsearch expands to the mapped fields it matches
  (``ExistsQueryBuilder``, ``SearchExecutionContext.getMatchingFieldNames``).
"""

from __future__ import annotations

import pytest

from vigil import kql
from vigil.eql.dates import to_millis
from vigil.kql import datemath

NOW = to_millis("2001-01-01T12:00:00Z")


def iso(ms: int) -> str:
    from vigil.eql.dates import iso_from_millis

    return iso_from_millis(ms)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Elasticsearch's "Date math" reference, now = 2001-01-01 12:00:00.
        ("now+1h", "2001-01-01T13:00:00.000Z"),
        ("now-1h", "2001-01-01T11:00:00.000Z"),
        ("now-1h/d", "2001-01-01T00:00:00.000Z"),
        ("now", "2001-01-01T12:00:00.000Z"),
        # No number is one unit (JavaDateMathParser: num = 1).
        ("now-d", "2000-12-31T12:00:00.000Z"),
        ("now-30d/d", "2000-12-02T00:00:00.000Z"),
        ("now+1M-2d/h", "2001-01-30T12:00:00.000Z"),
        # 2001-01-01 is a Monday: rounding to the week keeps the day.
        ("now+2d/w", "2001-01-01T00:00:00.000Z"),
        ("now/y", "2001-01-01T00:00:00.000Z"),
        ("now-90m/H", "2001-01-01T10:00:00.000Z"),
        ("now-1s/m", "2001-01-01T11:59:00.000Z"),
    ],
)
def test_date_math_rounding_down(text, expected):
    assert iso(datemath.resolve(text, NOW, round_up=False)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now-1h/d", "2001-01-01T23:59:59.999Z"),
        ("now/M", "2001-01-31T23:59:59.999Z"),
        ("now/w", "2001-01-07T23:59:59.999Z"),
        ("now/y", "2001-12-31T23:59:59.999Z"),
        ("now/s", "2001-01-01T12:00:00.999Z"),
        # Rounding up moves nothing without a `/`.
        ("now-1h", "2001-01-01T11:00:00.000Z"),
    ],
)
def test_date_math_rounding_up_ends_on_the_last_millisecond(text, expected):
    assert iso(datemath.resolve(text, NOW, round_up=True)) == expected


def test_months_and_years_are_calendar_arithmetic():
    # ZonedDateTime.plusMonths clamps the day to the month's end.
    march_31 = to_millis("2024-03-31T08:00:00Z")
    assert iso(datemath.resolve("now-1M", march_31, round_up=False)) == "2024-02-29T08:00:00.000Z"
    assert iso(datemath.resolve("now-1y-1M", march_31, round_up=False)) == "2023-02-28T08:00:00.000Z"


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        # The range query reference: `2014-11-18||/M` per bound; here with now in that day.
        (">", "2014-11-30T23:59:59.999Z"),
        (">=", "2014-11-01T00:00:00.000Z"),
        ("<", "2014-11-01T00:00:00.000Z"),
        ("<=", "2014-11-30T23:59:59.999Z"),
    ],
)
def test_range_bounds_round_as_elasticsearch_reads_them(op, expected):
    now = to_millis("2014-11-18T15:00:00Z")
    assert iso(datemath.bound(op, "now/M", now)) == expected


@pytest.mark.parametrize(
    "text",
    ["now/2d", "now+", "now-1x", "now*1d", "now-99999999999d", "now-3000y"],
)
def test_date_math_elasticsearch_refuses(text):
    with pytest.raises(datemath.DateMathError):
        datemath.resolve(text, NOW, round_up=False)


def test_date_math_range_in_kql_needs_the_time_of_a_run():
    # An event query has no run time when it is compiled: the rule is reported, never guessed.
    with pytest.raises(kql.KqlUnsupported, match="date field @timestamp"):
        kql.compile('@timestamp >= "now-30d/d"')
    with pytest.raises(kql.KqlUnsupported, match="now/2d"):
        kql.compile('@timestamp >= "now/2d"', now_ms=NOW)


def test_threat_query_window_of_elastic_rules():
    """The threat query of Elastic's indicator match rules at a run on 2024-05-20 10:30 UTC:
    indicators from 2024-04-20 00:00 on (30 days back, rounded down to the day)."""
    run = to_millis("2024-05-20T10:30:00Z")
    q = kql.compile(
        '@timestamp >= "now-30d/d" and event.module:(threatintel or ti_*) and '
        'threat.indicator.ip:* and not labels.is_ioc_transform_source:"true"',
        now_ms=run,
    )
    doc = {
        "@timestamp": "2024-04-20T00:00:00.000Z",
        "event": {"module": "ti_abusech"},
        "threat": {"indicator": {"ip": "203.0.113.9"}},
    }
    assert q.matches(doc)
    assert not q.matches({**doc, "@timestamp": "2024-04-19T23:59:59.999Z"})
    # Epoch milliseconds are a date too (strict_date_optional_time||epoch_millis).
    assert q.matches({**doc, "@timestamp": to_millis("2024-05-01T00:00:00Z")})
    assert not q.matches({**doc, "labels": {"is_ioc_transform_source": "true"}})
    assert not q.matches({k: v for k, v in doc.items() if k != "@timestamp"})
    # A later run moves the window.
    later = kql.compile('@timestamp >= "now-30d/d"', now_ms=to_millis("2024-05-21T00:00:00Z"))
    assert not later.matches(doc)


@pytest.mark.parametrize(
    ("query", "inside", "outside"),
    [
        # A partial date names a span, rounded per bound as Elasticsearch does.
        ('@timestamp <= "2024-05-01"', "2024-05-01T23:59:59.999Z", "2024-05-02T00:00:00.000Z"),
        ('@timestamp > "2024-05-01"', "2024-05-02T00:00:00.000Z", "2024-05-01T23:59:59.999Z"),
        ('@timestamp < "2024-05-01T10:00:00.000Z"', "2024-05-01T09:59:59.999Z", "2024-05-01T10:00:00.000Z"),
        ('@timestamp >= "now-1h"', "2001-01-01T11:00:00.000Z", "2001-01-01T10:59:59.999Z"),
    ],
)
def test_date_ranges_with_a_run_time(query, inside, outside):
    q = kql.compile(query, now_ms=NOW)
    assert q.matches({"@timestamp": inside})
    assert not q.matches({"@timestamp": outside})


@pytest.mark.parametrize(
    "doc",
    [
        {"file": {"hash": {"md5": "d41d8cd98f00b204e9800998ecf8427e"}}},
        {"file": {"hash": {"sha256": "e3b0c44298fc1c149afbf4c8996fb924"}}},
        {"file.hash.sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"dll": {"hash": {"tlsh": "T1"}}},
        {"process": {"hash": {"sha512": ["x", "y"]}}},
    ],
)
def test_field_name_wildcard_is_exists_on_every_field_it_names(doc):
    # The event query of Elastic's "Threat Intel Hash Indicator Match".
    q = kql.compile("file.hash.*:* or process.hash.*:* or dll.hash.*:*")
    assert q.matches(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"file": {"hash": {"md5": None}}},
        {"file": {"hash": {}}},
        {"file": {"path": "/tmp/x", "name": "x"}},
        {"hash": {"md5": "x"}},
        {"process": {"hashes": {"md5": "x"}}},
    ],
)
def test_field_name_wildcard_without_a_value_does_not_match(doc):
    q = kql.compile("file.hash.*:* or process.hash.*:* or dll.hash.*:*")
    assert not q.matches(doc)
    # and `not` is its complement, as must_not of exists is
    assert kql.compile("not file.hash.*:* and not process.hash.*:* and not dll.hash.*:*").matches(doc)


def test_field_name_wildcard_matches_across_dots_and_falls_back_to_the_object():
    # Regex.simpleMatch: `*` matches dots too, so `file.*` names file.hash.md5.
    assert kql.compile("file.*:*").matches({"file": {"hash": {"md5": "x"}}})
    assert kql.compile("threat.indicator.*.sha256:*").matches(
        {"threat": {"indicator": {"file": {"hash": {"sha256": "x"}}}}}
    )
    assert not kql.compile("threat.indicator.*.sha256:*").matches(
        {"threat": {"indicator": {"file": {"hash": {"md5": "x"}}}}}
    )
    # No field is named `registry.da*a`, but `registry.data` is an object: ExistsQueryBuilder
    # tries `pattern.*` next.
    q = kql.compile("registry.da*a:*")
    assert q.matches({"registry": {"data": {"strings": ["x"]}}})
    assert not q.matches({"registry": {"path": "HKLM"}})


def test_field_name_wildcards_vigil_cannot_run_are_reported():
    # A pattern that names no known field: Elasticsearch's answer depends on the index mapping.
    with pytest.raises(kql.KqlUnsupported, match="names no known field"):
        kql.compile("threatintel.indicator.file.hash.*:*")
    # A value other than `*` is a match query on a field named `file.hash.*`.
    with pytest.raises(kql.KqlUnsupported, match="wildcard in the field name"):
        kql.compile("file.hash.*: d41d8cd98f00b204e9800998ecf8427e")


def test_every_prebuilt_threat_query_compiles_at_a_run_time(prebuilt_rules):
    rules = [r for r in prebuilt_rules if r.type == "threat_match"]
    assert len(rules) == 9
    compiled = 0
    for rule in rules:
        text = rule.raw["threat_query"]
        try:
            kql.compile(text, now_ms=NOW)
        except kql.KqlUnsupported as exc:
            # Only the Filebeat 7.x rule's legacy threatintel.* fields are unknown.
            assert "threatintel.indicator" in str(exc)
            continue
        compiled += 1
        with pytest.raises(kql.KqlUnsupported):
            kql.compile(text)  # no run, no date math
    assert compiled == 8
