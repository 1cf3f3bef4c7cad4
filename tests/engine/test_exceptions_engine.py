"""Kibana exception lists applied by the Engine to the seed rule's alerts.

Kibana turns each exception item into an Elasticsearch filter (kbn-securitysolution
list utils, build_exception_filter.ts): match -> term, match_any -> terms,
wildcard -> wildcard query (no case_insensitive flag), exists -> exists, nested ->
nested query, "excluded" -> must_not; an item holds when all its entries hold. Term,
terms and wildcard queries on keyword fields are case-sensitive.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from vigil.engine import Engine
from vigil.events.model import Event
from vigil.rules import bundled_rules
from vigil.rules.exceptions import load_exceptions

NOW = datetime(2024, 1, 1, tzinfo=UTC)
INDEX = "logs-endpoint.events.file-default"
MODULE = "/usr/lib/dracut/modules.d/99evil/module-setup.sh"
LIST = {"list_id": "dracut-ok", "namespace_type": "single", "type": "detection", "name": "Dracut ok"}


def _event(exe="/usr/bin/curl", host="web-1", **extra) -> Event:
    doc = {
        "@timestamp": "2024-01-01T00:00:00Z",
        "event": {"category": ["file"], "type": ["creation"], "action": "creation"},
        "host": {"os": {"type": "linux"}, "name": host},
        "file": {"path": MODULE, "name": "module-setup.sh", "extension": "sh"},
        "process": {"executable": exe, "name": exe.rsplit("/", 1)[-1]},
        "user": {"name": "root"},
    }
    doc.update(extra)
    return Event(doc, INDEX)


def _lists(tmp_path, *entry_sets, list_id="dracut-ok"):
    lines = [dict(LIST, list_id=list_id)]
    for i, entries in enumerate(entry_sets):
        lines.append(
            {
                "item_id": f"item-{i}",
                "list_id": list_id,
                "namespace_type": "single",
                "type": "simple",
                "entries": entries,
            }
        )
    lines.append({"exported_exception_list_count": 1, "exported_exception_list_item_count": len(entry_sets)})
    path = tmp_path / "exceptions.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    lists = load_exceptions(path)
    assert lists.problems == []
    return lists


def _rule(list_id="dracut-ok"):
    rule = bundled_rules().rules[0]
    rule.exceptions_list = [{"id": "x", "list_id": list_id, "namespace_type": "single", "type": "detection"}]
    return rule


def _alerts(lists, event, *, rule=None, exceptions_all=False):
    engine = Engine([rule or _rule()], exceptions=lists, exceptions_all=exceptions_all, now=NOW)
    alerts = list(engine.scan([event]))
    return alerts, engine.stats[(rule or _rule()).rule_id]


def _suppressed(lists, event, **kw) -> bool:
    alerts, stats = _alerts(lists, event, **kw)
    assert stats["matches"] == 1  # the query matched either way
    assert stats["suppressed"] == (0 if alerts else 1)
    return not alerts


def _entry(field, kind, value=None, operator="included"):
    entry = {"field": field, "type": kind, "operator": operator}
    if value is not None:
        entry["value"] = value
    return entry


def test_match_is_case_sensitive(tmp_path):
    lists = _lists(tmp_path, [_entry("process.executable", "match", "/usr/bin/curl")])
    assert _suppressed(lists, _event())
    assert not _suppressed(lists, _event(exe="/usr/bin/CURL"))
    assert not _suppressed(lists, _event(exe="/usr/bin/wget"))


def test_match_on_a_number_field_compares_as_text(tmp_path):
    lists = _lists(tmp_path, [_entry("user.id", "match", "0")])
    assert _suppressed(lists, _event(user={"name": "root", "id": 0}))
    assert not _suppressed(lists, _event(user={"name": "bob", "id": 1000}))


def test_match_any(tmp_path):
    lists = _lists(tmp_path, [_entry("host.name", "match_any", ["build-1", "build-2"])])
    assert _suppressed(lists, _event(host="build-2"))
    assert not _suppressed(lists, _event(host="Build-2"))
    assert not _suppressed(lists, _event(host="web-1"))


def test_wildcard_is_case_sensitive_and_matches_the_whole_value(tmp_path):
    lists = _lists(tmp_path, [_entry("process.executable", "wildcard", "/opt/*/bin/?url")])
    assert _suppressed(lists, _event(exe="/opt/tools/bin/curl"))
    assert not _suppressed(lists, _event(exe="/OPT/tools/bin/curl"))
    assert not _suppressed(lists, _event(exe="/opt/tools/bin/curl2"))


def test_exists(tmp_path):
    lists = _lists(tmp_path, [_entry("process.parent.name", "exists")])
    assert _suppressed(
        lists, _event(process={"executable": "/bin/x", "name": "x", "parent": {"name": "init"}})
    )
    assert not _suppressed(lists, _event())


def test_excluded_operator_negates_the_entry(tmp_path):
    # suppress everything not on host web-1 (a missing host.name is "not web-1" too)
    lists = _lists(tmp_path, [_entry("host.name", "match", "web-1", operator="excluded")])
    assert not _suppressed(lists, _event(host="web-1"))
    assert _suppressed(lists, _event(host="db-1"))
    event = _event()
    del event.doc["host"]["name"]
    assert _suppressed(lists, event)


def test_all_entries_of_an_item_must_hold_any_item_suppresses(tmp_path):
    lists = _lists(
        tmp_path,
        [_entry("host.name", "match", "web-1"), _entry("process.name", "match", "curl")],
        [_entry("host.name", "match", "db-1")],
    )
    assert _suppressed(lists, _event())
    assert not _suppressed(lists, _event(exe="/usr/bin/wget"))  # web-1 but not curl
    assert _suppressed(lists, _event(exe="/usr/bin/wget", host="db-1"))  # second item


def test_nested_entries_hold_on_one_object(tmp_path):
    nested = {
        "field": "process.Ext.code_signature",
        "type": "nested",
        "entries": [_entry("subject_name", "match", "Elastic"), _entry("trusted", "match", "true")],
    }
    lists = _lists(tmp_path, [nested])
    signed = [{"subject_name": "Other", "trusted": True}, {"subject_name": "Elastic", "trusted": True}]
    split = [{"subject_name": "Elastic", "trusted": False}, {"subject_name": "Other", "trusted": True}]

    def with_signatures(sigs):
        return _event(process={"executable": "/bin/x", "name": "x", "Ext": {"code_signature": sigs}})

    assert _suppressed(lists, with_signatures(signed))
    assert not _suppressed(lists, with_signatures(split))  # both hold, but not on the same object
    assert not _suppressed(lists, _event())


def test_lists_apply_only_to_rules_naming_them_unless_exceptions_all(tmp_path):
    lists = _lists(tmp_path, [_entry("host.name", "match", "web-1")], list_id="other-list")
    assert not _suppressed(lists, _event())  # the seed rule names dracut-ok, not other-list
    assert _suppressed(lists, _event(), exceptions_all=True)


def test_exceptions_from_a_kibana_export_with_a_bad_line(tmp_path):
    path = tmp_path / "export.ndjson"
    item = {
        "item_id": "i1",
        "list_id": "dracut-ok",
        "namespace_type": "single",
        "entries": [_entry("process.name", "match", "curl")],
    }
    path.write_bytes(orjson.dumps(LIST) + b"\n{broken\n" + orjson.dumps(item) + b"\n")
    lists = load_exceptions(path)
    assert lists.skipped == 1 and lists.problems[0].line == 2
    assert _suppressed(lists, _event())


@pytest.mark.parametrize("exe", ["/usr/bin/curl", "/bin/sh"])
def test_suppressed_events_are_counted_and_others_still_alert(tmp_path, exe):
    lists = _lists(tmp_path, [_entry("process.name", "match", "curl")])
    engine = Engine([_rule()], exceptions=lists, now=NOW)
    alerts = list(engine.scan([_event(exe=exe), _event(exe="/usr/bin/vi")]))
    stats = engine.stats[_rule().rule_id]
    assert stats["matches"] == 2
    assert len(alerts) == 2 - stats["suppressed"]
    assert stats["suppressed"] == (1 if exe.endswith("curl") else 0)


def _seq_rule():
    from vigil.rules.model import Rule

    return Rule(
        rule_id="seq-1",
        name="Download then module",
        type="eql",
        language="eql",
        query='sequence by host.name [process where process.name == "curl"] [file where true]',
    )


def _proc(ts: str, host="web-1") -> Event:
    doc = {
        "@timestamp": ts,
        "event": {"category": ["process"], "type": ["start"]},
        "host": {"name": host},
        "process": {"name": "curl", "executable": "/usr/bin/curl"},
    }
    return Event(doc, INDEX)


@pytest.mark.parametrize("mode", ["scan", "process", "batch"])
def test_excepted_event_never_joins_a_sequence_as_kibana_filters_it_from_the_search(tmp_path, mode):
    """Kibana adds the exceptions to the EQL search's filter: an excepted file event is not
    in the data at all, so the next file event completes the sequence instead."""
    lists = _lists(
        tmp_path,
        [{"field": "file.name", "type": "match", "operator": "included", "value": "ok.sh"}],
    )
    first = _event()
    first.doc["@timestamp"] = "2024-01-01T00:00:01Z"
    first.doc["file"] = {"path": "/tmp/ok.sh", "name": "ok.sh"}
    second = _event()
    second.doc["@timestamp"] = "2024-01-01T00:00:02Z"
    events = [_proc("2024-01-01T00:00:00Z"), first, second]
    engine = Engine([_seq_rule()], exceptions=lists, exceptions_all=True, now=NOW)
    if mode == "scan":
        alerts = list(engine.scan(events))
    elif mode == "batch":
        alerts = list(engine.batch((e, None) for e in events))
    else:
        alerts = [a for e in events for a in engine.process(e)] + engine.finish()
    blocks = [a for a in alerts if "kibana.alert.group.index" in a]
    assert [b["file"]["name"] for b in blocks if "file" in b] == ["module-setup.sh"]
    assert len(alerts) == 3  # the shell and its two building blocks
    assert engine.stats["seq-1"]["suppressed"] == 1
