"""The sensor's file events have the shape of real Elastic Defend Linux file events."""

from __future__ import annotations

import json
import os
import re
import struct

import pytest

from vigil.eql.fields import lookup
from vigil.sensor import connector, fanotify
from vigil.sensor.ecs import INDEX, HostInfo, file_event, health_event, timestamp
from vigil.sensor.procs import Proc, ProcessTable, elf_interpreter, is_loader


def _defend(shared) -> list[dict]:
    path = shared / "conformance" / "elastic-defend" / "events.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _leaf_types(doc: dict, prefix: str = "") -> dict[str, type]:
    out: dict[str, type] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_leaf_types(value, name + "."))
        else:
            out[name] = type(value)
    return out


def _ours(action: str = "creation", old_path: str | None = None) -> dict:
    host = HostInfo.local()
    proc = Proc(4242, "/usr/bin/cp", args=["cp", "a", "b.sh"], ppid=1, source="exec", uid=0, gid=0)
    return file_event(
        action,
        "/usr/lib/dracut/modules.d/99x/b.sh",
        host=host,
        proc=proc,
        pid=4242,
        event_id="e1",
        now_ns=1_700_000_000_123_456_789,
        old_path=old_path,
        stat=os.stat("/"),
    )


def test_fields_defend_fills_are_there_with_the_same_types(shared):
    ours = _leaf_types(_ours())
    compared = 0
    for hit in _defend(shared):
        for field, kind in _leaf_types(hit["_source"]).items():
            if field in ours and not field.startswith(("agent.", "host.os.Ext", "event.sequence")):
                assert ours[field] is kind, field
                compared += 1
    assert compared > 100
    # The Defend fields the seed rule and triage read are all filled.
    for field in (
        "@timestamp",
        "event.kind",
        "event.category",
        "event.type",
        "event.action",
        "event.dataset",
        "event.module",
        "event.created",
        "event.id",
        "file.path",
        "file.name",
        "file.extension",
        "process.pid",
        "process.entity_id",
        "process.executable",
        "process.name",
        "user.id",
        "user.name",
        "group.id",
        "host.os.type",
        "host.os.kernel",
        "ecs.version",
        "data_stream.dataset",
    ):
        assert field in ours, field


def test_action_and_type_pairs_match_defend(shared):
    seen = {(h["_source"]["event"]["action"], tuple(h["_source"]["event"]["type"])) for h in _defend(shared)}
    for action, types in seen:
        if action in ("creation", "rename", "deletion", "modification", "overwrite"):
            assert tuple(_ours(action)["event"]["type"]) == types


def test_rename_keeps_the_original_path_where_defend_does(shared):
    renames = [h["_source"] for h in _defend(shared) if h["_source"]["event"]["action"] == "rename"]
    assert renames and "original" in renames[0]["file"]["Ext"]
    ev = _ours("rename", old_path="/usr/lib/dracut/modules.d/99x/.b.sh.tmp")
    assert ev["file"]["Ext"]["original"]["path"] == "/usr/lib/dracut/modules.d/99x/.b.sh.tmp"
    assert ev["file"]["Ext"]["original"]["extension"] == "tmp"


def test_timestamp_format_matches_defend(shared):
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,7}Z$")
    assert all(pattern.match(h["_source"]["@timestamp"]) for h in _defend(shared))
    assert timestamp(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.1234567Z"
    assert timestamp(1_700_000_000_200_790_000) == "2023-11-14T22:13:20.20079Z"  # as Defend's .20079Z
    assert timestamp(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert pattern.match(_ours()["@timestamp"])


def test_index_and_rule_fields():
    ev = _ours()
    assert INDEX == "logs-endpoint.events.file-default"
    ds = ev["data_stream"]
    assert f"{ds['type']}-{ds['dataset']}-{ds['namespace']}" == INDEX
    assert lookup(ev, "host.os.type") == ["linux"]
    assert lookup(ev, "file.extension") == ["sh"]
    assert ev["process"]["command_line"] == "cp a b.sh"


@pytest.mark.parametrize(
    ("name", "ext"),
    [
        ("a.sh", "sh"),
        (".b.sh.swp", "swp"),
        ("noext", None),
        (".hidden", None),
        ("x.tar.gz", "gz"),
        ("trailing.", None),
    ],
)
def test_extension_like_defend(name, ext):
    host = HostInfo.local()
    ev = file_event("creation", f"/d/{name}", host=host, proc=None, pid=1, event_id="e", now_ns=0)
    assert ev["file"].get("extension") == ext
    assert ev["file"]["directory"] == "/d"
    assert "executable" not in ev["process"]  # unknown stays absent, never guessed


def test_health_event_counts_losses():
    ev = health_event("lost", host=HostInfo.local(), event_id="h", now_ns=0, lost=3)
    assert ev["event"]["kind"] == "metric"
    assert ev["vigil"]["sensor"]["lost"] == 3


def test_loader_is_never_the_program():
    assert is_loader("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    assert is_loader("/lib/ld-musl-x86_64.so.1")
    assert not is_loader("/usr/bin/cp")
    interp = elf_interpreter("/usr/bin/cp")
    assert interp is None or is_loader(os.path.realpath(interp)) or is_loader(interp)
    assert elf_interpreter("/etc/hostname") is None


def test_process_table_order():
    table = ProcessTable()
    table.on_open_exec(999_999_001, "/usr/bin/dash")
    table.on_open_exec(999_999_001, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    assert table.lookup(999_999_001).executable == "/usr/bin/dash"
    table.on_fork(999_999_001, 999_999_002)
    child = table.lookup(999_999_002)
    assert (child.executable, child.ppid, child.source) == ("/usr/bin/dash", 999_999_001, "fork")
    # The parent's exec read after the fork notice still counts for the child.
    table.on_fork(999_999_002, 999_999_003)
    table.on_open_exec(999_999_002, "/usr/bin/sleep")
    assert table.lookup(999_999_003).executable == "/usr/bin/sleep"
    assert table.lookup(999_999_002).executable == "/usr/bin/sleep"
    assert table.lookup(999_999_001).executable == "/usr/bin/dash"
    table.on_exit(999_999_002)
    table.linger = -1
    table.sweep()
    assert 999_999_002 not in table.procs


def test_fanotify_parse_reads_fid_records():
    handle = struct.pack("=Ii", 8, 1) + b"\x01" * 8
    name = b"module-setup.sh\0"
    body = struct.pack("=ii", 7, 9) + handle + name
    info = struct.pack("=BBH", fanotify.INFO_DFID_NAME, 0, 4 + len(body)) + body
    meta_len = 24
    event = struct.pack("=IBBHQii", meta_len + len(info), 3, 0, meta_len, fanotify.FAN_CREATE, -1, 77) + info
    events = list(fanotify.parse(event + event[:10]))  # a torn tail is left alone
    assert len(events) == 1
    ev = events[0]
    assert (ev.mask, ev.pid) == (fanotify.FAN_CREATE, 77)
    rec = ev.records[0]
    assert (rec.kind, rec.fsid, rec.handle, rec.name) == (
        fanotify.INFO_DFID_NAME,
        (7, 9),
        handle,
        "module-setup.sh",
    )


def test_connector_parse_skips_threads():
    def msg(what: int, payload: bytes) -> bytes:
        body = (
            struct.pack("=IIIIHH", 1, 1, 0, 0, 16 + len(payload), 0)
            + struct.pack("=IIQ", what, 0, 0)
            + payload
        )
        return struct.pack("=IHHII", 16 + len(body), 3, 0, 0, 0) + body

    data = (
        msg(connector.PROC_EVENT_FORK, struct.pack("=iiii", 10, 10, 11, 11))
        + msg(connector.PROC_EVENT_FORK, struct.pack("=iiii", 10, 10, 12, 10))  # a thread
        + msg(connector.PROC_EVENT_EXEC, struct.pack("=ii", 11, 11))
        + msg(connector.PROC_EVENT_EXIT, struct.pack("=iiiiii", 11, 11, 0, 17, 10, 10))
    )
    assert list(connector.parse(data)) == [("fork", 10, 11), ("exec", 11, 0), ("exit", 11, 0)]


def test_mark_fallbacks_for_older_kernels():
    full = fanotify.FAN_CREATE | fanotify.FAN_RENAME | fanotify.FAN_CLOSE_WRITE
    tries = fanotify._fallbacks(full)
    assert tries[0] == full
    assert (
        fanotify.FAN_CREATE | fanotify.FAN_MOVED_FROM | fanotify.FAN_MOVED_TO | fanotify.FAN_CLOSE_WRITE
        in tries
    )
    assert (
        tries[-1]
        == fanotify.FAN_CREATE | fanotify.FAN_MOVED_FROM | fanotify.FAN_MOVED_TO | fanotify.FAN_MODIFY
    )
    assert all(t & fanotify.FAN_CREATE for t in tries)
