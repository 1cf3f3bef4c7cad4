"""Addresses as an ip field holds them: 16 bytes, IPv4 inside IPv6.

Lucene's InetAddressPoint.encode writes an IPv4 address as ::ffff:a.b.c.d, and
Elasticsearch's IpFieldMapper indexes that, so ``10.1.2.3`` and ``::ffff:10.1.2.3`` are
one value for equality, ``in``, ranges and CIDR blocks, on the document's side and on
the query's. CIDR blocks are read as InetAddresses.parseCidr reads them.
"""

from __future__ import annotations

import pytest

from vigil import eql, kql
from vigil.eql import semantics as S
from vigil.eql.errors import EqlError
from vigil.eql.literals import field_anchors, requirement
from vigil.eql.schema import Schema
from vigil.rules.exceptions import Entry

MAPPED = {"source": {"ip": "::ffff:10.1.2.3"}, "destination": {"ip": "::ffff:192.168.7.9"}}
PLAIN = {"source": {"ip": "10.1.2.3"}, "destination": {"ip": "192.168.7.9"}}
PUBLIC = {"source": {"ip": "::ffff:8.8.8.8"}, "destination": {"ip": "8.8.4.4"}}


def test_a_mapped_address_is_its_ipv4_address():
    assert S.ip_key("::ffff:10.1.2.3") == S.ip_key("10.1.2.3") == S.ip_key("::FFFF:a01:203")
    assert S.ip_key("::10.1.2.3") != S.ip_key("10.1.2.3")  # IPv4-compatible is another address
    assert S.ip_key("10.01.2.3") is None and S.ip_key("host") is None
    # InetAddressPoint.decode gives a mapped address back as IPv4 (DocValueFormat.IP).
    assert str(S.IpValue("::ffff:10.1.2.3")) == "10.1.2.3"
    assert str(S.IpValue("2001:DB8:0::1")) == "2001:db8::1"


@pytest.mark.parametrize(
    ("text", "bounds"),
    [
        ("10.1.2.3", ("10.1.2.3", "10.1.2.3")),
        ("::ffff:10.1.2.3", ("10.1.2.3", "10.1.2.3")),
        ("10.1.2.3/8", ("10.0.0.0", "10.255.255.255")),
        ("192.168.0.0/24", ("192.168.0.0", "192.168.0.255")),
        ("0.0.0.0/0", ("0.0.0.0", "255.255.255.255")),
        ("::fffe:0:0/95", ("::fffe:0:0", "::ffff:ffff:ffff")),  # InetAddressesTests.testParseCidr
        ("::/0", ("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
        ("10.0.0.0/+8", ("10.0.0.0", "10.255.255.255")),  # Integer.parseInt takes a sign
    ],
)
def test_cidr_blocks_as_parse_cidr_reads_them(text, bounds):
    assert S.ip_bounds(text) == tuple(S.ip_key(b) for b in bounds)


@pytest.mark.parametrize(
    "text",
    [
        "::ffff:0:0/96",  # "CIDR notation is not allowed with IPv6-mapped IPv4 address"
        "::ffff:10.0.0.0/104",
        "192.168.1.42/33",  # "Illegal prefix length"
        "::1/129",
        "10.0.0.0/-1",
        "10.0.0.0/255.0.0.0",  # a netmask is no integer
        "10.0.0.0/",
        "10.0.0.0/8/8",
        "",
        "10.0.0.0 /8",
    ],
)
def test_what_parse_cidr_refuses(text):
    assert S.ip_bounds(text) is None
    assert not S.is_cidr(text)


# --- EQL: rules compile without a mapping, `vigil query` with ECS types: both agree --


@pytest.mark.parametrize("schema", [None, Schema.ecs()], ids=["untyped", "ecs"])
@pytest.mark.parametrize(
    ("condition", "plain", "mapped", "public"),
    [
        ('source.ip == "10.1.2.3"', True, True, False),
        ('source.ip == "::ffff:10.1.2.3"', True, True, False),
        ('source.ip != "10.1.2.3"', False, False, True),
        ('source.ip in ("1.1.1.1", "10.1.2.3")', True, True, False),
        ('source.ip not in ("::ffff:10.1.2.3")', False, False, True),
        ('source.ip : "10.1.2.3"', True, True, False),
        ('source.ip >= "10.0.0.0" and source.ip <= "10.255.255.255"', True, True, False),
        ('source.ip > "::ffff:10.1.2.2"', True, True, False),
        ('source.ip == "10.0.0.0/8"', True, True, False),
        ('cidrMatch(source.ip, "10.0.0.0/8")', True, True, False),
        ('cidrMatch(source.ip, "10.1.2.3")', True, True, False),
        ('cidrMatch(source.ip, "::ffff:10.1.2.3")', True, True, False),
        ('cidrMatch(source.ip, "::/0")', True, True, True),
        (
            'not cidrMatch(destination.ip, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")',
            False,
            False,
            True,
        ),
        ('cidrMatch(source.ip, "10.0.0.0/8") == false', False, False, True),
        ('concat(source.ip, "") == "10.1.2.3"', True, True, False),
    ],
)
def test_eql_on_ip_fields(schema, condition, plain, mapped, public):
    q = eql.compile(f"any where {condition}", schema=schema)
    assert (q.matches(PLAIN), q.matches(MAPPED), q.matches(PUBLIC)) == (plain, mapped, public)


def test_sequence_keys_on_an_ip_field_join_both_forms():
    q = eql.compile('sequence by source.ip [any where event.code == "a"] [any where event.code == "b"]')
    events = [
        {"@timestamp": 1, "event": {"code": "a"}, "source": {"ip": "10.1.2.3"}},
        {"@timestamp": 2, "event": {"code": "b"}, "source": {"ip": "::ffff:10.1.2.3"}},
    ]
    assert len(list(q.run(events))) == 1


def test_cidr_match_refuses_a_mapped_block_as_elasticsearch_does():
    with pytest.raises(EqlError) as info:
        eql.compile('any where cidrMatch(source.ip, "::ffff:10.0.0.0/104")')
    assert "::ffff:10.0.0.0/104" in info.value.message


def test_cidr_match_on_computed_text_compares_on_16_bytes():
    # CIDRUtils.isInRange, the script path: both sides encoded to 16 bytes.
    q = eql.compile('any where cidrMatch(concat("::ffff:", x), "10.0.0.0/8")')
    assert q.matches({"x": "10.9.9.9"}) and not q.matches({"x": "11.9.9.9"})


# --- KQL: a term on an ip field is IpFieldMapper.termQuery (address or CIDR) -------


@pytest.mark.parametrize(
    ("query", "plain", "mapped", "public"),
    [
        ("source.ip: 10.1.2.3", True, True, False),
        ('source.ip: "::ffff:10.1.2.3"', True, True, False),
        ("source.ip: 10.0.0.0/8", True, True, False),
        ("not destination.ip: (10.0.0.0/8 or 172.16.0.0/12 or 192.168.0.0/16)", False, False, True),
        ("source.ip >= 10.0.0.0 and source.ip < 11.0.0.0", True, True, False),
        ('source.ip > "::ffff:10.1.2.2"', True, True, False),
    ],
)
def test_kql_on_ip_fields(query, plain, mapped, public):
    q = kql.compile(query)
    assert (q.matches(PLAIN), q.matches(MAPPED), q.matches(PUBLIC)) == (plain, mapped, public)


def test_kql_mapped_block_is_reported_not_run():
    with pytest.raises(kql.KqlUnsupported):
        kql.compile('source.ip: "::ffff:10.0.0.0/104"')


# --- exceptions: Kibana's match_phrase on an ip field is the same term query --------


def test_exception_entries_on_ip_fields():
    block = Entry("source.ip", "match", "included", "10.0.0.0/8")
    assert block.matches(MAPPED) and block.matches(PLAIN) and not block.matches(PUBLIC)
    one = Entry("source.ip", "match_any", "included", ["1.1.1.1", "::ffff:10.1.2.3"])
    assert one.matches(PLAIN) and one.matches(MAPPED)
    assert not Entry("source.ip", "match", "excluded", "10.1.2.3").matches(MAPPED)


# --- the engine's prefilters never rule out a mapped address ----------------------


def test_no_raw_literal_or_anchor_is_taken_from_an_ip_comparison():
    from vigil.engine.routing import _ecs_typer

    typer = _ecs_typer()
    for text in (
        'network where destination.ip == "10.1.2.3"',
        'network where destination.ip in ("10.1.2.3", "192.168.1.1")',
        'network where destination.ip : "10.1.2.3"',
        'network where cidrMatch(destination.ip, "10.0.0.0/8")',
    ):
        stmt = eql.parse(text)
        assert requirement(stmt, typer).clauses == (), text
        anchors = field_anchors(stmt.query.condition, typer) or ()
        assert all(a.exists or not a.values for a in anchors), text


def test_sql_leaves_ip_value_tests_to_python():
    from vigil.eql import sql

    columns = {"source": sql.SqlType.struct({"ip": sql.STRING})}
    for cond in ('source.ip == "10.1.2.3"', 'source.ip in ("10.1.2.3")', 'source.ip : "10.*"'):
        with pytest.raises(sql.Unsupported):
            sql.event_sql(f"any where {cond}", columns)
    assert "IS NOT NULL" in sql.event_sql("any where source.ip != null", columns)
