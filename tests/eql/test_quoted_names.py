"""Field names with characters outside identifiers, back-quoted in EQL or escaped in KQL.

Elasticsearch joins an EQL name's parts with dots (IdentifierBuilder.visitQualifiedName)
and resolves the result against the mapping's full field paths; its document parsing
expands dots in keys into objects (DotExpandingXContentParser.splitAndValidatePath).
So a name is split at every dot whatever quoting wrote it, and ``{"a": {"b.c": 1}}``,
``{"a.b": {"c": 1}}`` and ``{"a.b.c": 1}`` all hold ``a.b.c``.
"""

from __future__ import annotations

import pytest

from vigil import eql, kql
from vigil.eql.sql import STRING, SqlType, event_sql
from vigil.rules.exceptions import Entry

DECISION = "kubernetes.audit.annotations.authorization_k8s_io/decision"
SHAPES = [
    {"kubernetes": {"audit": {"annotations": {"authorization_k8s_io/decision": "allow"}}}},
    {"kubernetes.audit.annotations.authorization_k8s_io/decision": "allow"},
    {"kubernetes.audit": {"annotations.authorization_k8s_io/decision": "allow"}},
    {"kubernetes": [{"audit": {"annotations": {"authorization_k8s_io/decision": ["deny", "allow"]}}}]},
]


@pytest.mark.parametrize("doc", SHAPES)
def test_the_kubernetes_decision_in_every_shape(doc):
    for query in (
        f'any where `{DECISION}` == "allow"',
        'any where kubernetes.audit.annotations.`authorization_k8s_io/decision` == "allow"',
        'any where `kubernetes.audit`.`annotations.authorization_k8s_io/decision` : "ALLOW"',
    ):
        assert eql.compile(query).matches(doc), query
    assert not eql.compile(f'any where `{DECISION}` == "forbid"').matches(doc)
    assert eql.compile(f'any where `{DECISION}` != "forbid"').matches(doc)
    assert kql.compile(f"{DECISION}: allow").matches(doc)
    assert kql.compile(f'"{DECISION}": allow').matches(doc)
    assert Entry(DECISION, "match", "included", "allow").matches(doc)


@pytest.mark.parametrize(
    ("name", "doc"),
    [
        ("a.b.c", {"a": {"b.c": 1}}),
        ("a.b.c", {"a.b": {"c": 1}}),
        ("a.b.c", {"a.b.c": 1}),
        ("x.with-dash.at@sign", {"x": {"with-dash": {"at@sign": 1}}}),
        ("x.with space.k", {"x": {"with space": {"k": 1}}}),
        ("x.a:b.k", {"x.a:b": {"k": 1}}),
    ],
)
def test_any_character_and_any_split_of_the_dots(name, doc):
    assert eql.compile(f"any where `{name}` == 1").matches(doc)
    assert eql.compile(f"any where `{name}` != null").matches(doc)
    assert not eql.compile(f"any where `{name}` == 2").matches(doc)


def test_kql_escaped_characters_in_field_names():
    # Kibana's grammar: a backslash escapes a special character, and an unquoted
    # literal (a field name too) may hold spaces; a quoted one anything.
    assert kql.compile(r"x.a\:b.k: 1").matches({"x": {"a:b": {"k": "1"}}})
    assert kql.compile("x.with space.k: 1").matches({"x.with space": {"k": "1"}})
    assert kql.compile(r"x.a\(1\).k: 1").matches({"x": {"a(1)": {"k": "1"}}})
    assert kql.compile('"x.a b/c.k": 1').matches({"x": {"a b/c": {"k": "1"}}})


def test_sequence_join_keys_on_back_quoted_names():
    q = eql.compile(
        'sequence [process where process.name == "curl"] by orchestrator.resource.name '
        "[any where true] by `kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name`"
    )
    events = [
        {
            "@timestamp": 1,
            "event": {"category": "process"},
            "process": {"name": "curl"},
            "orchestrator": {"resource": {"name": "p1"}},
        },
        {
            "@timestamp": 2,
            "kubernetes": {
                "audit": {"user": {"extra": {"authentication": {"kubernetes": {"io/pod-name": "p1"}}}}}
            },
        },
    ]
    assert len(list(q.run(events))) == 1


def test_the_sql_path_reads_the_nested_column():
    columns = {
        "kubernetes": SqlType.struct(
            {
                "audit": SqlType.struct(
                    {"annotations": SqlType.struct({"authorization_k8s_io/decision": STRING})}
                )
            }
        )
    }
    sql = event_sql(f'any where `{DECISION}` == "allow"', columns)
    assert '"authorization_k8s_io/decision"' in sql and '"annotations"' in sql
