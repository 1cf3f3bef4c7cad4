"""Raw-line literals and field anchors of endsWith and stringContains follow their
wildcard meaning: Elasticsearch runs them on a field as Lucene wildcard queries (EQL's
QueryTranslator), so ``stringContains(x, "a=*")`` needs ``a=`` in the value, not ``a=*``,
and ``"Principal=\\\\*"`` needs ``Principal=*``. Prebuilt AWS rules are written so
("AWS S3 Bucket Policy Added to Allow Public Access"); a literal taken as written
made the fast scan drop events the rule matches."""

from __future__ import annotations

import orjson
import pytest

from vigil import eql
from vigil.eql.literals import field_anchors, requirement


@pytest.mark.parametrize(
    ("query", "value", "literal"),
    [
        (
            'any where stringContains(p, "masterUserPassword=*")',
            "masterUserPassword=secret",
            b"masteruserpassword=",
        ),
        ('any where stringContains(p, "Principal=\\\\*")', "Effect=Allow Principal=*", b"principal=*"),
        ('any where stringContains(p, "valuesToAdd=[*]")', "valuesToAdd=[all]", b"valuestoadd=["),
        ('any where endsWith(p, "?.exe")', "C:\\\\a\\\\b.exe", b".exe"),
        ('any where stringContains~(p, "ab?cdef")', "xABzCDEFx", b"cdef"),
        # A prefix query knows no wildcards: the literal is the text.
        ('any where startsWith(p, "run*me")', "run*me now", b"run*me"),
    ],
)
def test_literals_of_wildcard_functions(query, value, literal):
    q = eql.compile(query)
    doc = {"p": value}
    assert q.matches(doc)
    req = requirement(q.statement)
    assert req.clauses == (frozenset({literal}),)
    assert req.admits(orjson.dumps(doc))
    (anchor,) = field_anchors(q.statement.query.condition)
    assert not anchor.exact and any(v in value.lower() for v in anchor.values)


def test_a_pattern_without_a_long_enough_run_gives_no_literal():
    q = eql.compile('any where stringContains(p, "a*b*c")')
    assert requirement(q.statement).clauses == ()
    assert field_anchors(q.statement.query.condition) is None
