"""The process table without a kernel: entry leaders as Elastic computes them, record decoding,
which prebuilt rules `vigil watch` runs, and routing by category that changes no alert."""

from __future__ import annotations

import copy
import ipaddress
import socket
import struct

import pytest

from vigil.cli.watch import ByCategory, for_this_host
from vigil.engine import Engine
from vigil.events.model import Event
from vigil.sensor.ecs import HostInfo
from vigil.sensor.network import endpoints
from vigil.sensor.process import ProcessTracker, Task, capability_names, decode, tty_kind
from vigil.sensor.programs import sensor as prog


def _tracker(*tasks: Task) -> ProcessTracker:
    t = ProcessTracker(HostInfo.local())
    for task in tasks:
        t._put(task)
        t._evaluate_entry(task)
    return t


def _task(pid, ppid, exe, *, sid=None, pgid=None, tty=(0, 0)) -> Task:
    return Task(pid, ppid, 100 + pid, executable=exe, sid=sid or pid, pgid=pgid or pid, tty=tty)


# Cases after elastic/beats x-pack/auditbeat/processors/sessionmd/processdb/db.go
# (evaluateEntryLeader) and its tests.


def test_init_and_kernel_threads_have_no_entry_leader():
    t = _tracker(_task(1, 0, "/sbin/init"), _task(2, 0, ""), _task(50, 2, "kworker"))
    assert [t.get(p).entry for p in (1, 2, 50)] == [None, None, None]


def test_service_started_by_init_is_an_init_entry_leader():
    t = _tracker(_task(1, 0, "/sbin/init"), _task(300, 1, "/usr/sbin/sshd"))
    assert t.get(300).entry == 300 and t.entry_types[300] == "init"


def test_ssh_login_shell_is_an_sshd_entry_leader_and_its_children_inherit_it():
    t = _tracker(
        _task(1, 0, "/sbin/init"),
        _task(300, 1, "/usr/sbin/sshd"),
        _task(400, 300, "/usr/sbin/sshd", sid=300),  # the per-connection sshd, not a leader
        _task(500, 400, "/usr/bin/bash", tty=(136, 1)),
        _task(600, 500, "/usr/bin/id", sid=500),
    )
    assert t.get(500).entry == 500 and t.entry_types[500] == "sshd"
    assert t.get(600).entry == 500
    doc = t.document("exec", t.get(600), event_id="x", now_ns=0)
    leader = doc["process"]["entry_leader"]
    assert leader["entry_meta"]["type"] == "sshd" and leader["pid"] == 500
    assert leader["same_as_process"] is False
    assert leader["entity_id"] == t.get(500).entity
    assert doc["process"]["session_leader"]["pid"] == 500
    assert doc["process"]["parent"]["entity_id"] == t.get(500).entity
    assert doc["process"]["Ext"]["ancestry"][:2] == [t.get(500).entity, t.get(400).entity]


def test_container_runtime_child_is_a_container_entry_leader():
    t = _tracker(
        _task(1, 0, "/sbin/init"),
        _task(700, 1, "/usr/bin/containerd-shim-runc-v2", sid=1),
        _task(800, 700, "/bin/sh"),
    )
    assert t.entry_types[800] == "container"


def test_serial_tty_session_is_a_terminal_entry_leader_and_a_lone_session_is_unknown():
    t = _tracker(
        _task(1, 0, "/sbin/init"),
        _task(900, 950, "/bin/bash", tty=(4, 64)),
        _task(990, 980, "/usr/bin/python3"),
    )
    assert t.entry_types[900] == "terminal"
    assert t.entry_types[990] == "unknown"


def test_tty_kinds_and_capabilities():
    assert tty_kind(136, 3) == "pts" and tty_kind(4, 1) == "console" and tty_kind(4, 70) == "tty"
    assert tty_kind(5, 1) is None
    assert capability_names(1 << 21 | 1) == ["CAP_CHOWN", "CAP_SYS_ADMIN"]


def _record(kind: int, argv: list[bytes], exe: list[bytes], cwd: list[bytes]) -> bytes:
    head = bytearray(prog.HEADER)
    struct.pack_into("<IIII", head, 0, kind, 42, 42, 7)
    struct.pack_into("<QQQ", head, prog.O_START, 123 * 10_000_000, 5 * 10_000_000, 1)
    struct.pack_into("<8I", head, prog.O_CREDS, 1000, 1000, 1000, 1000, 0, 0, 0, 0)
    args = b"".join(a + b"\0" for a in argv)
    path = b"".join(p + b"\0" for p in reversed(exe))
    where = b"".join(p + b"\0" for p in reversed(cwd))
    struct.pack_into("<III", head, prog.O_ARGLEN, len(args), len(path), len(where))
    return bytes(head) + args + path + where


def test_an_exec_record_decodes_leaf_first_paths_and_argv():
    rec = decode(_record(prog.EXEC, [b"ls", b"-la", b"x y"], [b"usr", b"bin", b"ls"], [b"tmp"]))
    assert rec.argv == ["ls", "-la", "x y"]
    assert rec.executable == "/usr/bin/ls" and rec.cwd == "/tmp"
    assert rec.start == 123 and rec.creds[0] == 1000 and rec.creds[4] == 0
    root = decode(_record(prog.EXEC, [b"a"], [b"a"], []))
    assert root.cwd == "/"
    assert decode(b"short") is None


def test_exec_keeps_the_previous_program_and_the_entity_id():
    t = ProcessTracker(HostInfo.local())
    [(action, first, _)] = t.handle(decode(_record(prog.EXEC, [b"sh"], [b"bin", b"sh"], [])))
    [(_, second, _)] = t.handle(decode(_record(prog.EXEC, [b"ls"], [b"bin", b"ls"], [])))
    assert action == "exec" and first.entity == second.entity
    assert second.previous == [{"executable": "/bin/sh", "args": ["sh"], "args_count": 1}]
    doc = t.document("exec", second, event_id="e", now_ns=0)
    assert doc["user"]["id"] == "0" and doc["user"]["Ext"]["real"]["id"] == "1000"
    assert doc["process"]["real_user"]["id"] == "1000" and doc["process"]["user"]["id"] == "0"


def _creds_record(euid: int, sid: int = 42) -> bytes:
    raw = bytearray(_record(prog.CREDS, [], [], []))
    struct.pack_into("<8I", raw, prog.O_CREDS, 1000, 1000, 1000, 1000, euid, 1000, euid, 1000)
    struct.pack_into("<II", raw, prog.O_PGID, sid, sid)
    return bytes(raw)


def test_documents_follow_a_change_of_user_and_session_after_being_built_once():
    # Views of a process are kept between its events: a uid change or setsid must show.
    t = ProcessTracker(HostInfo.local())
    [(_, task, _)] = t.handle(decode(_record(prog.EXEC, [b"su"], [b"bin", b"su"], [])))
    before = t.document("exec", task, event_id="a", now_ns=0)
    assert before["process"]["user"]["id"] == "0"
    events = t.handle(decode(_creds_record(euid=1000)))
    assert [action for action, _, _ in events] == ["uid_change", "gid_change"]
    after = t.document("uid_change", events[0][1], event_id="b", now_ns=0)
    assert after["process"]["user"]["id"] == "1000" and after["user"]["id"] == "1000"
    assert before["process"]["user"]["id"] == "0"  # an event already made is never changed
    raw = bytearray(_record(prog.SETSID, [], [], []))
    struct.pack_into("<8I", raw, prog.O_CREDS, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000)
    struct.pack_into("<II", raw, prog.O_PGID, 42, 42)
    [(action, task, _)] = t.handle(decode(bytes(raw)))
    doc = t.document(action, task, event_id="c", now_ns=0)
    assert doc["process"]["session_leader"]["same_as_process"] is True
    assert doc["process"]["group_leader"]["entity_id"] == task.entity


def test_every_event_of_a_process_carries_the_same_fields_as_a_fresh_description():
    t = _tracker(_task(1, 0, "/sbin/init"), _task(300, 1, "/usr/sbin/sshd"), _task(500, 300, "/bin/bash"))
    bash = t.get(500)
    first = t.document("exec", bash, event_id="a", now_ns=0)
    again = t.document("end", bash, event_id="b", now_ns=0)
    fresh = _tracker(_task(1, 0, "/sbin/init"), _task(300, 1, "/usr/sbin/sshd"), _task(500, 300, "/bin/bash"))
    fresh.boot_ns = t.boot_ns
    expected = fresh.document("end", fresh.get(500), event_id="b", now_ns=0)
    assert again == expected and first["process"]["parent"] == expected["process"]["parent"]
    assert again["process"]["Ext"]["ancestry"] == [t.get(300).entity, t.get(1).entity]


@pytest.mark.parametrize(
    "family, remote, text",
    [
        (socket.AF_INET, bytes([10, 0, 0, 7]), "10.0.0.7"),
        (socket.AF_INET6, bytes(10) + b"\xff\xff" + bytes([192, 168, 1, 2]), "192.168.1.2"),
        (socket.AF_INET6, bytes(15) + b"\x01", "::1"),
        (socket.AF_INET6, bytes(12) + bytes([1, 2, 3, 4]), "::102:304"),
        (socket.AF_INET6, bytes.fromhex("20010db8000000000001000000000001"), "2001:db8::1:0:0:1"),
    ],
)
def test_socket_addresses_are_written_as_python_ipaddress_writes_them(family, remote, text):
    raw = bytearray(_record(prog.CONNECT, [], [], []))
    struct.pack_into("<HH", raw, prog.O_FAMILY, family, 5555)
    struct.pack_into(">H", raw, prog.O_DPORT, 443)
    if family == socket.AF_INET:
        raw[prog.O_DADDR4 : prog.O_DADDR4 + 4] = remote
    else:
        raw[prog.O_DADDR6 : prog.O_DADDR6 + 16] = remote
    local, got, lport, rport, kind = endpoints(decode(bytes(raw)))
    assert got == text == str(ipaddress.ip_address(text))
    assert (lport, rport, kind) == (5555, 443, "ipv4" if "." in text else "ipv6")


def test_watch_runs_the_linux_endpoint_rules(prebuilt_rules):
    kept = [r for r in prebuilt_rules if for_this_host(r)]
    names = {r.name for r in kept}
    assert "Process Capability Enumeration" in names and "Dracut Module Creation" in names
    assert not any("OS: Windows" in r.tags and "OS: Linux" not in r.tags for r in kept)
    assert not any(r.index and all(p.startswith("logs-windows") for p in r.index) for r in kept)
    assert 300 <= len(kept) < len(prebuilt_rules) // 2


def _doc(action: str, category: str, pid: int, entity: str, parent: str, **process) -> dict:
    return {
        "@timestamp": f"2026-01-01T00:00:0{pid % 10}Z",
        "event": {"category": [category], "type": ["start"], "action": action, "kind": "event"},
        "host": {"id": "h1", "os": {"type": "linux"}},
        "process": {"pid": pid, "entity_id": entity, "parent": {"entity_id": parent}, **process},
        "user": {"id": "1000"},
    }


def test_routing_by_category_raises_the_same_alerts(prebuilt_rules):
    rules = [r for r in prebuilt_rules if for_this_host(r)]
    docs = [
        _doc("connection_attempted", "network", 1, "A", "P", name="bash", executable="/usr/bin/bash")
        | {"destination": {"ip": "192.0.2.9", "port": 4444}},
        _doc("exec", "process", 2, "B", "A", name="bash", executable="/usr/bin/bash", args=["bash", "-i"]),
        _doc(
            "exec",
            "process",
            3,
            "C",
            "A",
            name="getcap",
            executable="/usr/sbin/getcap",
            args=["getcap", "-r", "/"],
        )
        | {"user": {"id": "65534"}},
    ]
    for d in docs:
        d["process"]["args_count"] = len(d["process"].get("args", []))

    def run(engine) -> list[str]:
        out = []
        for n, d in enumerate(docs):
            index = f"logs-endpoint.events.{d['event']['category'][0]}-default"
            out += [
                a["kibana.alert.rule.name"]
                for a in engine.process(Event(copy.deepcopy(d), index=index, id=str(n)))
            ]
        return sorted(out + [a["kibana.alert.rule.name"] for a in engine.finish()])

    plain = run(Engine(rules))
    routed = run(ByCategory(Engine(rules)))
    assert routed == plain
    assert {"Potential Reverse Shell", "Process Capability Enumeration"} <= set(routed)
