"""The seed rule "Dracut Module Creation", one behaviour at a time.

The exclusion lists are read from the rule's own query, so these tests follow the
rule when it changes. Events are shaped like Elastic Defend's (the creation event on
line 2 of ../shared/conformance/elastic-defend/events.ndjson). Operators behave as
Elasticsearch EQL's: ``==`` and ``in`` are case-sensitive and take ``*`` literally;
``like~`` and ``:`` are case-insensitive wildcards matching the whole value; a
condition on a multi-valued field holds when any value satisfies it.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime

import orjson
import pytest

from vigil import eql
from vigil.engine import Engine
from vigil.eql import ast
from vigil.events.model import Event
from vigil.rules import bundled_rules

NOW = datetime(2024, 10, 16, 12, 0, tzinfo=UTC)
INDEX = "logs-endpoint.events.file-default"
RULE = bundled_rules().rules[0]
MODULE = "/usr/lib/dracut/modules.d/99evil/module-setup.sh"


def _walk(node):
    yield node
    for value in (getattr(node, f.name) for f in dataclasses.fields(node)):
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, ast.Node):
                yield from _walk(item)


def _values(kind, field: str, op: str | None = None) -> list[str]:
    for node in _walk(eql.parse(RULE.query)):
        if (
            isinstance(node, kind)
            and isinstance(node.value, ast.Field)
            and ".".join(node.value.path) == field
        ):
            if kind is ast.In:
                return [lit.value for lit in node.items]
            if node.op == op:
                return [lit.value for lit in node.patterns]
    raise AssertionError(f"the rule no longer has {kind.__name__} on {field}")


EXECUTABLES = _values(ast.In, "process.executable")
EXE_PATTERNS = _values(ast.Pattern, "process.executable", "like~")
EXTENSIONS = _values(ast.In, "file.extension")
FOLDERS = _values(ast.Pattern, "file.path", "like~")


@pytest.fixture(scope="module")
def defend_creation(shared) -> dict:
    """The one Elastic Defend file creation of the conformance export, as a template."""
    lines = (shared / "conformance" / "elastic-defend" / "events.ndjson").read_bytes().splitlines()
    sources = [orjson.loads(line)["_source"] for line in lines]
    [first, *_] = [s for s in sources if s["event"]["action"] == "creation"]
    return first


def _event(template: dict, path: str = MODULE, exe: str | None = "/usr/bin/curl", **changes) -> Event:
    doc = copy.deepcopy(template)
    name = path.rsplit("/", 1)[-1]
    doc["file"] = {"path": path, "name": name}
    if "." in name:
        doc["file"]["extension"] = name.rsplit(".", 1)[-1]
    if exe is None:
        doc["process"].pop("executable", None)
    else:
        doc["process"]["executable"] = exe
        doc["process"]["name"] = exe.rsplit("/", 1)[-1]
    for dotted, value in changes.items():
        target = doc
        *parents, leaf = dotted.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return Event(doc, INDEX, None, "test")


def _alerts(event: Event) -> list[dict]:
    """Alerts of the seed rule, batch and streaming, which must agree."""
    batch = list(Engine([RULE], now=NOW).scan([event]))
    engine = Engine([RULE], now=NOW)
    live = engine.process(event) + engine.finish()
    assert [a["kibana.alert.uuid"] for a in batch] == [a["kibana.alert.uuid"] for a in live]
    return batch


def _alerted(event: Event) -> bool:
    return len(_alerts(event)) == 1


def test_lists_read_from_the_rule():
    assert "/usr/bin/dpkg" in EXECUTABLES and len(EXECUTABLES) > 40
    assert "/nix/store/*" in EXE_PATTERNS
    assert EXTENSIONS == ["swp", "swpx", "swx", "dpkg-remove"]
    assert FOLDERS == ["/lib/dracut/modules.d/*", "/usr/lib/dracut/modules.d/*"]


def test_the_defend_template_itself_raises_no_alert(defend_creation):
    # journald creating a file under /run: not a Dracut module
    assert not _alerted(Event(defend_creation, INDEX))


def test_unknown_program_creating_a_module_alerts(defend_creation):
    [alert] = _alerts(_event(defend_creation))
    assert alert["kibana.alert.rule.name"] == "Dracut Module Creation"
    assert alert["file"]["path"] == MODULE
    assert alert["kibana.alert.reason"] == (
        "file event with process curl, file module-setup.sh, by root on endpoint-complete-deb-gd-1 "
        "created low alert Dracut Module Creation."
    )


@pytest.mark.parametrize("folder", FOLDERS)
def test_both_module_folders(defend_creation, folder):
    assert _alerted(_event(defend_creation, folder.replace("*", "90crypt/module-setup.sh")))


@pytest.mark.parametrize(
    "path",
    [
        "/etc/dracut.conf.d/evil.conf",
        "/usr/local/lib/dracut/modules.d/99x/module-setup.sh",  # like~ matches the whole value
        "/lib/dracut/modules.d",  # the folder itself, without its slash
        "/lib/dracut/dracut-functions.sh",
    ],
)
def test_other_paths_do_not_alert(defend_creation, path):
    assert not _alerted(_event(defend_creation, path))


def test_module_folder_itself_with_slash_alerts(defend_creation):
    # "*" matches the empty string
    assert _alerted(_event(defend_creation, "/lib/dracut/modules.d/"))


@pytest.mark.parametrize("path", ["/LIB/DRACUT/MODULES.D/99x/m.sh", "/Usr/Lib/Dracut/Modules.d/99x/m.sh"])
def test_folder_match_ignores_case(defend_creation, path):
    assert _alerted(_event(defend_creation, path))


def test_wildcard_matches_across_newlines(defend_creation):
    assert _alerted(_event(defend_creation, "/lib/dracut/modules.d/99x/a\nb.sh"))


@pytest.mark.parametrize("exe", sorted(set(EXECUTABLES)))
def test_each_listed_executable_is_excluded(defend_creation, exe):
    assert not _alerted(_event(defend_creation, exe=exe))


@pytest.mark.parametrize("exe", sorted({e for e in EXECUTABLES if "*" not in e and e.upper() != e}))
def test_listed_executables_compare_case_sensitively(defend_creation, exe):
    # `in` is case-sensitive: an upper-case variant is not in the list, and none of the
    # like~ patterns covers these, so the creation alerts
    upper = exe.upper()
    if any(eql.compile(f'any where "{upper}" like~ "{p}"').matches({}) for p in EXE_PATTERNS):
        pytest.skip("covered by a case-insensitive pattern")
    assert _alerted(_event(defend_creation, exe=upper))


@pytest.mark.parametrize("pattern", EXE_PATTERNS)
def test_each_executable_pattern_is_excluded_in_any_case(defend_creation, pattern):
    exe = pattern.replace("*", "abc/tool")
    assert not _alerted(_event(defend_creation, exe=exe))
    assert not _alerted(_event(defend_creation, exe=exe.upper()))


def test_star_inside_in_is_a_plain_character(defend_creation):
    # "/dev/fd/*" is in the `in` list too; there it only matches itself, which the
    # like~ pattern also excludes. "/tmp/vmis.*": the dot is literal in a like~ pattern.
    assert "/dev/fd/*" in EXECUTABLES
    assert not _alerted(_event(defend_creation, exe="/dev/fd/*"))
    assert not _alerted(_event(defend_creation, exe="/tmp/vmis.1234/installer"))
    assert _alerted(_event(defend_creation, exe="/tmp/vmisX1234/installer"))


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_each_excluded_extension(defend_creation, ext):
    assert not _alerted(_event(defend_creation, f"/lib/dracut/modules.d/99x/.module-setup.sh.{ext}"))
    # `in` is case-sensitive: the upper-case extension is not excluded
    assert _alerted(_event(defend_creation, f"/lib/dracut/modules.d/99x/.module-setup.sh.{ext.upper()}"))


def test_sed_clause_needs_both_halves(defend_creation):
    sed_temp = "/lib/dracut/modules.d/99x/sedAb12Cd"
    assert not _alerted(_event(defend_creation, sed_temp, exe="/usr/bin/sed"))
    assert not _alerted(_event(defend_creation, "/lib/dracut/modules.d/99x/SEDab12cd", exe="/usr/bin/sed"))
    assert _alerted(_event(defend_creation, MODULE, exe="/usr/bin/sed"))  # sed, but not sed's temp file
    assert _alerted(_event(defend_creation, sed_temp, exe="/usr/bin/perl"))  # temp name, not sed
    # process.name == "sed" is case-sensitive
    assert _alerted(_event(defend_creation, sed_temp, exe="/usr/bin/SED"))


def test_missing_or_null_executable_does_not_alert(defend_creation):
    assert not _alerted(_event(defend_creation, exe=None))
    event = _event(defend_creation)
    event.doc["process"]["executable"] = None
    assert not _alerted(event)


@pytest.mark.parametrize(
    ("types", "alerts"),
    [
        (["creation"], True),
        ("creation", True),
        (["change", "creation"], True),
        (["change"], False),
        (["deletion"], False),
        (["Creation"], False),  # == is case-sensitive
        ([], False),
    ],
)
def test_event_type_creation_only(defend_creation, types, alerts):
    assert _alerted(_event(defend_creation, event__type=types)) is alerts


def test_missing_event_type_does_not_alert(defend_creation):
    event = _event(defend_creation)
    del event.doc["event"]["type"]
    assert not _alerted(event)


@pytest.mark.parametrize("action", ["creation", "rename", "overwrite", "open", None])
def test_event_action_does_not_matter(defend_creation, action):
    event = _event(defend_creation)
    if action is None:
        del event.doc["event"]["action"]
    else:
        event.doc["event"]["action"] = action
    assert _alerted(event)


@pytest.mark.parametrize(
    ("category", "alerts"), [(["file"], True), (["process", "file"], True), (["process"], False)]
)
def test_event_category(defend_creation, category, alerts):
    assert _alerted(_event(defend_creation, event__category=category)) is alerts


@pytest.mark.parametrize(("os_type", "alerts"), [("linux", True), ("Linux", False), ("windows", False)])
def test_linux_hosts_only(defend_creation, os_type, alerts):
    assert _alerted(_event(defend_creation, host__os__type=os_type)) is alerts


def test_arrays_any_value_decides(defend_creation):
    # one of the paths is a module: alerts
    event = _event(defend_creation)
    event.doc["file"]["path"] = ["/tmp/x", MODULE]
    assert _alerted(event)
    # one of the executables is excluded: `not (... in ...)` is false
    event = _event(defend_creation)
    event.doc["process"]["executable"] = ["/usr/bin/curl", "/usr/bin/dpkg"]
    assert not _alerted(event)


def test_flat_dotted_fields_read_the_same(defend_creation):
    nested = _event(defend_creation)
    flat = {
        "@timestamp": nested.doc["@timestamp"],
        "event.category": ["file"],
        "event.type": ["creation"],
        "host.os.type": "linux",
        "file.path": MODULE,
        "file.name": "module-setup.sh",
        "process.executable": "/usr/bin/curl",
        "process.name": "curl",
    }
    assert _alerted(Event(flat, INDEX))


def test_an_alert_per_event_and_none_twice(defend_creation):
    events = [_event(defend_creation, f"/lib/dracut/modules.d/9{i}x/module-setup.sh") for i in range(3)]
    engine = Engine([RULE], now=NOW)
    alerts = list(engine.scan(events + events))
    assert len(alerts) == 3
    assert engine.stats[RULE.rule_id]["alerts"] >= 3
