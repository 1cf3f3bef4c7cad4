"""``kibana.alert.instance.id`` is ``objectHash([terms, ruleId, spaceId])`` (Kibana's
``wrap_suppressed_alerts.ts``); these hashes were computed by the ``object-hash`` package
(3.0.0, defaults: SHA-1, hex) that Kibana calls."""

from __future__ import annotations

import pytest

from vigil.engine.object_hash import object_hash
from vigil.engine.suppression import instance_id
from vigil.rules.model import rule_from_dict

KNOWN = [
    (
        [[{"field": "host.name", "value": ["h1"]}], "rule-1", "default"],
        "cb22ca7a9b59155eb5697e5e591299fe1ea0caf3",
    ),
    (
        [
            [{"field": "source.ip", "value": "10.0.0.1"}, {"field": "cloud.account.id", "value": None}],
            "rule-1",
            "default",
        ],
        "28d2a146655f0143a09bd471675827706135c7a5",
    ),
    (
        [
            [
                {"field": "host.name", "value": ["b", "a"]},
                {"field": "n", "value": 12},
                {"field": "f", "value": 1.5},
                {"field": "b", "value": True},
            ],
            "29ef5686-9b93-433e-91b5-683911094698",
            "default",
        ],
        "79f59d8c43886f46213020038f6cd656a42c91a5",
    ),
    ([["x", "é😀"], "r", "default"], "02a669558c8cf4eff893df4a83d6b0e6f3765575"),
]


@pytest.mark.parametrize(("value", "expected"), KNOWN)
def test_object_hash_as_the_package_computes_it(value, expected):
    assert object_hash(value) == expected


def test_instance_id_is_kibanas_object_hash_of_terms_rule_and_space():
    rule = rule_from_dict(
        {
            "rule_id": "rule-1",
            "name": "r",
            "type": "query",
            "language": "kuery",
            "query": "a:1",
            "index": ["x"],
        }
    )
    assert instance_id([{"field": "host.name", "value": ["h1"]}], rule) == KNOWN[0][1]
    # Another order of the same terms is another group, as in Kibana (arrays keep their order).
    swapped = [{"field": "cloud.account.id", "value": None}, {"field": "source.ip", "value": "10.0.0.1"}]
    assert instance_id(swapped, rule) != KNOWN[1][1]
