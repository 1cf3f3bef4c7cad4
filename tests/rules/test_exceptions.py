import json

from vigil.rules import Rule
from vigil.rules.exceptions import load_exceptions


def write(tmp_path, rows):
    path = tmp_path / "exc.ndjson"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows))
    return load_exceptions(path)


def item(entries, list_id="L", ns="single"):
    return {"item_id": "i", "list_id": list_id, "namespace_type": ns, "entries": entries, "name": "x"}


DOC = {
    "process": {"name": "dpkg", "executable": "/usr/bin/dpkg", "args": ["a", "b"]},
    "file": {"path": "/lib/dracut/modules.d/x"},
    "items": [{"k": "a", "v": "1"}, {"k": "b", "v": "2"}],
}


def one(tmp_path, entries):
    return write(tmp_path, [item(entries)]).items[0]


def test_match_is_case_sensitive(tmp_path):
    assert one(
        tmp_path, [{"field": "process.name", "type": "match", "operator": "included", "value": "dpkg"}]
    ).matches(DOC)
    assert not one(tmp_path, [{"field": "process.name", "type": "match", "value": "DPKG"}]).matches(DOC)


def test_excluded_negates(tmp_path):
    e = {"field": "process.name", "type": "match", "operator": "excluded", "value": "rpm"}
    assert one(tmp_path, [e]).matches(DOC)
    e["value"] = "dpkg"
    assert not one(tmp_path, [e]).matches(DOC)


def test_match_any_wildcard_exists(tmp_path):
    assert one(tmp_path, [{"field": "process.args", "type": "match_any", "value": ["z", "b"]}]).matches(DOC)
    assert one(tmp_path, [{"field": "file.path", "type": "wildcard", "value": "/lib/dracut/*"}]).matches(DOC)
    assert not one(tmp_path, [{"field": "file.path", "type": "wildcard", "value": "/LIB/*"}]).matches(DOC)
    assert one(tmp_path, [{"field": "process.name", "type": "exists"}]).matches(DOC)
    assert one(tmp_path, [{"field": "user.name", "type": "exists", "operator": "excluded"}]).matches(DOC)


def test_all_entries_must_match(tmp_path):
    entries = [
        {"field": "process.name", "type": "match", "value": "dpkg"},
        {"field": "file.path", "type": "match", "value": "/other"},
    ]
    assert not one(tmp_path, entries).matches(DOC)


def test_nested_needs_one_object_matching_all(tmp_path):
    def nested(k, v):
        subs = [{"field": "k", "type": "match", "value": k}, {"field": "v", "type": "match", "value": v}]
        return [{"field": "items", "type": "nested", "entries": subs}]

    assert one(tmp_path, nested("a", "1")).matches(DOC)
    assert not one(tmp_path, nested("a", "2")).matches(DOC)


def test_for_rule_and_malformed_lines(tmp_path):
    rows = [
        {"list_id": "L", "namespace_type": "single", "name": "list"},
        item([{"field": "process.name", "type": "match", "value": "dpkg"}]),
        item([{"field": "process.name", "type": "match", "value": "dpkg"}], list_id="M", ns="agnostic"),
        "{not json",
        item([{"field": "x", "type": "bogus"}]),
        {"exported_exception_list_count": 1, "exported_exception_list_item_count": 2},
    ]
    lists = write(tmp_path, rows)
    assert [p.line for p in lists.problems] == [4, 5] and lists.skipped == 2
    rule = Rule(
        rule_id="r", name="r", exceptions_list=[{"list_id": "M", "namespace_type": "agnostic", "id": "1"}]
    )
    assert [i.list_id for i in lists.for_rule(rule)] == ["M"]
    assert len(lists.for_rule(rule, all_rules=True)) == 2
