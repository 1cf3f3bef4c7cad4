"""Process events shaped as Elastic Defend writes them on Linux, from the eBPF records.

Index ``logs-endpoint.events.process-default``; actions ``fork``, ``exec``, ``end``,
``uid_change``, ``gid_change``, ``session_id_change`` and ``already_running`` (a ``/proc`` walk at
start). Field lists: elastic/endpoint-package ``custom_documentation/src/endpoint/data_stream/
process/linux/linux_process_{fork_exec_exit,uid_change,gid_change,session_id_change,
already_running}.yaml``.

``process.entity_id`` comes from kernel facts only: the agent id (derived from the host id),
the pid and the process's start time in boot clock ticks (``/proc/<pid>/stat`` field 22, the
kernel's ``task->start_boottime``), so it is the same in every event about the process, across
Vigil restarts, and in a child's ``process.parent.entity_id``.

Entry leaders follow Elastic's published algorithm (elastic/beats
``x-pack/auditbeat/processors/sessionmd/processdb/db.go``, ``evaluateEntryLeader``).
"""

from __future__ import annotations

import os
import re
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

from vigil.sensor.ecs import HostInfo, entity_id, envelope, group_name, text, timestamp, user_name
from vigil.sensor.programs import sensor as prog

DATASET = "endpoint.events.process"
INDEX = f"logs-{DATASET}-default"
TICKS_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")

EVENT_TYPES = {
    "fork": ["start"],
    "exec": ["start"],
    "end": ["end"],
    "uid_change": ["change"],
    "gid_change": ["change"],
    "session_id_change": ["change"],
    "already_running": ["info"],
}

CAPABILITIES = (
    "CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_KILL CAP_SETGID "
    "CAP_SETUID CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_NET_ADMIN "
    "CAP_NET_RAW CAP_IPC_LOCK CAP_IPC_OWNER CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_CHROOT CAP_SYS_PTRACE "
    "CAP_SYS_PACCT CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE CAP_SYS_RESOURCE CAP_SYS_TIME "
    "CAP_SYS_TTY_CONFIG CAP_MKNOD CAP_LEASE CAP_AUDIT_WRITE CAP_AUDIT_CONTROL CAP_SETFCAP "
    "CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_AUDIT_READ "
    "CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE"
).split()

# process.env_vars: the variables the prebuilt rules' set-up asks Defend to collect
# (``linux.advanced.capture_env_vars``), names compared upper-cased.
ENV_VARS = frozenset(
    b"LD_PRELOAD LD_LIBRARY_PATH GLIBC_TUNABLES HTTP_PROXY HTTPS_PROXY ALL_PROXY "
    b"HISTSIZE HISTFILESIZE HISTCONTROL HISTFILE RUNNER_TRACKING_ID".split()
)

# One of them at the start of an item of the environment block (NUL-separated), with its value.
_ENV_ITEM = re.compile(rb"(?<![^\0])((?:" + b"|".join(sorted(ENV_VARS)) + rb")=[^\0]*)", re.IGNORECASE)

# Beats' processdb: container runtimes and the helpers that never start an entry session.
_CONTAINER_RUNTIMES = ("containerd-shim", "runc", "conmon")
_FILTERED = ("runc", "containerd-shim", "calico-node", "check-status", "conmon")


def capability_names(mask: int) -> list[str]:
    return list(_capability_names(mask))


@lru_cache(maxsize=64)
def _capability_list(mask: int) -> list[str]:
    """One list per mask, shared by the documents (never changed)."""
    return list(_capability_names(mask))


@lru_cache(maxsize=64)
def _capability_names(mask: int) -> tuple[str, ...]:
    return tuple(name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1)


def tty_kind(major: int, minor: int) -> str | None:
    """Beats' tty.GetTTYType: pts (136-143), console (4, minor < 64), tty (4, 64-255)."""
    if 136 <= major <= 143:
        return "pts"
    if major == 4:
        return "console" if minor <= 63 else "tty" if minor <= 255 else None
    return None


@dataclass(slots=True)
class Task:
    pid: int
    ppid: int
    start: int  # boot ticks
    executable: str | None = None
    args: list[str] | None = None
    cwd: str | None = None
    uid: int = 0
    gid: int = 0
    euid: int = 0
    egid: int = 0
    cap_eff: int = 0
    cap_perm: int = 0
    pgid: int = 0
    sid: int = 0
    tty: tuple[int, int] = (0, 0)
    source: str = "exec"  # exec | fork | proc (read from /proc at start)
    previous: list[dict] = field(default_factory=list)
    env: list[str] | None = None
    end: int | None = None  # wall ns
    exit_code: int | None = None
    entry: int | None = None  # pid of the entry leader
    entity: str = ""
    # What the documents show of this process, built at its first event and kept while the
    # facts they show stay the same (``changed`` drops them): shared by every event about it,
    # never changed once built.
    views: dict | None = field(default=None, repr=False, compare=False)
    ancestry: list[str] | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str | None:
        return self.executable.rpartition("/")[2] if self.executable else None

    def changed(self) -> None:
        """Its users, capabilities, tty, session, group or parent changed: build views anew."""
        self.views = None
        self.ancestry = None


@dataclass(slots=True)
class Record:
    kind: int
    tgid: int
    pid: int
    ppid: int
    start: int
    pstart: int
    time: int
    creds: tuple
    cap_perm: int
    cap_eff: int
    pgid: int
    sid: int
    tty: tuple[int, int]
    nr: int
    ret: int
    raw: bytes

    @property
    def argv(self) -> list[str]:
        n = struct.unpack_from("<I", self.raw, prog.O_ARGLEN)[0]
        data = self.raw[prog.HEADER : prog.HEADER + n]
        return [_decode(a) for a in data.split(b"\0")[: -1 if data.endswith(b"\0") else None]]

    def _path(self, start: int, n: int) -> str:
        parts = self.raw[start : start + n].split(b"\0")[:-1]
        return "/" + "/".join(_decode(p) for p in reversed(parts))

    @property
    def env(self) -> list[str]:
        """The environment variables whose names Defend is configured to collect for the rules."""
        n = struct.unpack_from("<I", self.raw, prog.O_ARGLEN)[0]
        m = struct.unpack_from("<I", self.raw, prog.O_ENVLEN)[0]
        block = self.raw[prog.HEADER + n : prog.HEADER + n + m]
        return [_decode(item) for item in _ENV_ITEM.findall(block)]

    def _paths_at(self) -> tuple[int, int, int]:
        arglen, exelen, cwdlen = struct.unpack_from("<III", self.raw, prog.O_ARGLEN)
        envlen = struct.unpack_from("<I", self.raw, prog.O_ENVLEN)[0]
        return prog.HEADER + arglen + envlen, exelen, cwdlen

    @property
    def executable(self) -> str:
        start, exelen, _ = self._paths_at()
        return self._path(start, exelen)

    @property
    def cwd(self) -> str:
        start, exelen, cwdlen = self._paths_at()
        return self._path(start + exelen, cwdlen)


_HEAD = struct.Struct("<IIII QQQ 8I QQ II III I q")


def decode(raw: bytes) -> Record | None:
    if len(raw) < prog.HEADER:
        return None
    f = _HEAD.unpack_from(raw, 0)
    kind, tgid, pid, ppid, start, pstart, t = f[:7]
    creds = f[7:15]
    cap_perm, cap_eff, pgid, sid, tty_index, tty_major, tty_minor, nr, ret = f[15:24]
    tty = (tty_major, tty_minor + tty_index) if tty_major else (0, 0)
    return Record(
        kind, tgid, pid, ppid, start // TICKS_NS, pstart // TICKS_NS, t, creds,
        cap_perm, cap_eff, pgid, sid, tty, nr, ret, raw,
    )  # fmt: skip


def _decode(raw: bytes) -> str:
    """Kernel bytes as valid UTF-8 (an intruder picks them): a byte that is not is ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace")


def boot_wall_ns() -> int:
    """Wall-clock time of boot, to turn boot clock times into timestamps."""
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


# ---------------------------------------------------------------------------------------
# /proc, for what runs at start.


def read_stat(pid: int) -> dict | None:
    """ppid, pgid, sid, tty and start (boot ticks) of ``pid`` from ``/proc/<pid>/stat``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    rest = data.rpartition(b")")[2].split()
    try:
        tty_nr = int(rest[4])
        return {
            "ppid": int(rest[1]),
            "pgid": int(rest[2]),
            "sid": int(rest[3]),
            "tty": ((tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00))
            if tty_nr
            else (0, 0),
            "start": int(rest[19]),
        }
    except (IndexError, ValueError):
        return None


def proc_task(pid: int) -> Task | None:
    st = read_stat(pid)
    if st is None:
        return None
    task = Task(pid, st["ppid"], st["start"], pgid=st["pgid"], sid=st["sid"], tty=st["tty"], source="proc")
    try:
        exe = text(os.readlink(f"/proc/{pid}/exe"))
        task.executable = exe[: -len(" (deleted)")] if exe.endswith(" (deleted)") else exe
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            task.args = [_decode(a) for a in fh.read().split(b"\0")[:-1]] or None
    except OSError:
        pass
    try:
        task.cwd = text(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                key, _, value = line.partition(b":")
                parts = value.split()
                if key == b"Uid":
                    task.uid, task.euid = int(parts[0]), int(parts[1])
                elif key == b"Gid":
                    task.gid, task.egid = int(parts[0]), int(parts[1])
                elif key == b"CapPrm":
                    task.cap_perm = int(parts[0], 16)
                elif key == b"CapEff":
                    task.cap_eff = int(parts[0], 16)
    except (OSError, ValueError, IndexError):
        pass
    return task


# ---------------------------------------------------------------------------------------
# The process table and the documents.


class ProcessTracker:
    """pid -> Task, fed in kernel order by the eBPF records; turns each record into events."""

    def __init__(self, host: HostInfo, *, linger: float = 30.0) -> None:
        self.host = host
        self.agent_id = host.agent["id"]
        self.tasks: dict[int, Task] = {}
        self.entry_types: dict[int, str] = {}  # entry leader pid -> entry_meta.type
        self._ended: deque[tuple[float, int, int]] = deque()  # (monotonic, pid, start)
        self.linger = linger
        self.boot_ns = boot_wall_ns()

    # ----- the table

    def _entity(self, pid: int, start: int) -> str:
        return entity_id(self.agent_id, pid, start)

    def _put(self, task: Task) -> Task:
        task.entity = self._entity(task.pid, task.start)
        self.tasks[task.pid] = task
        return task

    def get(self, pid: int) -> Task | None:
        return self.tasks.get(pid)

    def snapshot(self) -> list[Task]:
        """Learn what runs now from /proc, parents before children (for entry leaders)."""
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                task = proc_task(int(name))
                if task is not None:
                    found.append(task)
        found.sort(key=lambda t: (t.start, t.pid))
        for task in found:
            self._put(task)
        for task in found:
            self._evaluate_entry(task)
        return found

    def _evaluate_entry(self, p: Task) -> None:
        """Beats' evaluateEntryLeader: sets ``p.entry`` (and the leader's type when it is one)."""
        p.entry = None
        if p.pid == 1 or p.pid == 2 or p.ppid == 2:
            return
        if p.pid == p.sid:
            kind = tty_kind(*p.tty)
            base = p.name or ""
            made = None
            if kind == "tty":
                made = "terminal"
            elif kind == "console" and base == "login":
                made = "console"
            elif p.ppid == 1:
                made = "init"
            elif not base.startswith(_FILTERED):
                parent = self.tasks.get(p.ppid)
                pbase = (parent.name or "") if parent else ""
                if kind == "pts" and pbase == "ssm-session-worker":
                    made = "ssm"
                elif pbase == "sshd" and base != "sshd":
                    made = "sshd"
                elif pbase.startswith(_CONTAINER_RUNTIMES):
                    made = "container"
            if made:
                self.entry_types[p.pid] = made
                p.entry = p.pid
                return
        for rel in (p.ppid, p.sid, p.pgid):
            other = self.tasks.get(rel)
            if other is not None and other.entry is not None and other is not p:
                p.entry = other.entry
                return
        if p.pid == p.sid:
            self.entry_types[p.pid] = "unknown"
            p.entry = p.pid

    def sweep(self) -> None:
        cutoff = time.monotonic() - self.linger
        while self._ended and self._ended[0][0] < cutoff:
            _, pid, start = self._ended.popleft()
            task = self.tasks.get(pid)
            if task is not None and task.start == start and task.end is not None:
                del self.tasks[pid]
                self.entry_types.pop(pid, None)

    # ----- records to events

    def handle(self, rec: Record) -> list[tuple[str, Task, Record]]:
        """Update the table; the (action, task, record) process events the record makes."""
        kind = rec.kind
        if kind == prog.FORK:
            parent = self.tasks.get(rec.ppid)
            task = Task(rec.tgid, rec.ppid, rec.start, source="fork")
            if parent is not None:
                task.executable, task.args, task.cwd = parent.executable, parent.args, parent.cwd
                task.entry, task.env = parent.entry, parent.env
            self._fill(task, rec)
            self._put(task)
            return [("fork", task, rec)]
        if kind == prog.EXEC:
            old = self.tasks.get(rec.tgid)
            task = Task(rec.tgid, rec.ppid, rec.start, source="exec")
            task.executable, task.args, task.cwd = rec.executable, rec.argv, rec.cwd
            task.env = rec.env
            if old is not None and old.start == rec.start and old.executable:
                prev = {"executable": old.executable}
                if old.args:
                    prev |= {"args": list(old.args), "args_count": len(old.args)}
                task.previous = [prev]
            self._fill(task, rec)
            self._put(task)
            self._evaluate_entry(task)
            return [("exec", task, rec)]
        task = self.current(rec)
        if kind == prog.EXIT:
            task.end = self.boot_ns + rec.time
            code = rec.ret & 0xFFFF
            task.exit_code = code >> 8 if not code & 0x7F else 128 + (code & 0x7F)
            self._ended.append((time.monotonic(), task.pid, task.start))
            return [("end", task, rec)]
        if kind == prog.SETSID:
            task.sid, task.pgid = rec.sid, rec.pgid
            task.changed()
            self._evaluate_entry(task)
            return [("session_id_change", task, rec)]
        if kind == prog.CREDS:
            uid = rec.creds[0], rec.creds[4]
            gid = rec.creds[1], rec.creds[5]
            out = []
            if uid != (task.uid, task.euid):
                out.append("uid_change")
            if gid != (task.gid, task.egid):
                out.append("gid_change")
            self._fill(task, rec)
            return [(action, task, rec) for action in out]
        return []

    def current(self, rec: Record) -> Task:
        """The task a record is about; learnt now (from the record and /proc) if never seen."""
        task = self.tasks.get(rec.tgid)
        if task is None or task.start != rec.start:
            task = proc_task(rec.tgid) or Task(rec.tgid, rec.ppid, rec.start, source="proc")
            if task.start != rec.start:
                task = Task(rec.tgid, rec.ppid, rec.start, source="proc")
            self._fill(task, rec)
            self._put(task)
            self._evaluate_entry(task)
        return task

    @staticmethod
    def _fill(task: Task, rec: Record) -> None:
        task.changed()
        c = rec.creds
        task.uid, task.gid, task.euid, task.egid = c[0], c[1], c[4], c[5]
        task.cap_perm, task.cap_eff = rec.cap_perm, rec.cap_eff
        task.pgid, task.sid, task.tty = rec.pgid, rec.sid, rec.tty
        task.ppid = rec.ppid

    # ----- ECS
    #
    # A process's own fields, its short form (on a child's parent and as a leader) and its
    # users are built once per process and shared by the events about it: the documents of a
    # busy host are mostly the same few processes described again.

    def _start_iso(self, task: Task) -> str:
        return timestamp(self.boot_ns + task.start * TICKS_NS)

    def _views(self, task: Task) -> dict:
        views = task.views
        if views is None:
            views = task.views = {}
        return views

    def _form(self, task: Task, full: bool) -> dict:
        """process.* of ``task``, kept (the full form also keeps the event's user and group)."""
        views = self._views(task)
        key = "full" if full else "short"
        form = views.get(key)
        if form is None:
            form = views[key] = self._describe(task, full=full)
            if full:
                views["user"] = form["user"] | {"Ext": {"real": form["real_user"]}}
                views["group"] = form["group"] | {"Ext": {"real": form["real_group"]}}
        return form

    def _short(self, task: Task) -> dict:
        return self._form(task, False)

    def _full(self, task: Task) -> dict:
        return self._form(task, True)

    def _leader(self, leader: Task, same: bool) -> dict:
        """The short form of a group or session leader, with ``same_as_process``."""
        views = self._views(leader)
        key = "leader_same" if same else "leader"
        view = views.get(key)
        if view is None:
            view = views[key] = self._short(leader) | {"same_as_process": same}
        return view

    def _entry_leader(self, leader: Task, same: bool) -> dict:
        views = self._views(leader)
        kind = self.entry_types.get(leader.pid, "unknown")
        lp = self.tasks.get(leader.ppid)
        key = ("entry", same, kind, lp.entity if lp is not None else None)
        view = views.get(key)
        if view is None:
            view = self._short(leader) | {"same_as_process": same}
            view["entry_meta"] = {"type": kind}
            if lp is not None:
                view["parent"] = {"pid": lp.pid, "entity_id": lp.entity, "start": self._start_iso(lp)}
            views[key] = view
        return view

    def _ancestry(self, task: Task, parent: Task | None) -> list[str]:
        """Entity ids of the parent, its parent... (at most 20), as known at the first event."""
        ancestry = task.ancestry
        if ancestry is None:
            ancestry, seen, cur = [], {task.pid}, parent
            while cur is not None and cur.pid not in seen and len(ancestry) < 20:
                ancestry.append(cur.entity)
                seen.add(cur.pid)
                cur = self.tasks.get(cur.ppid)
            task.ancestry = ancestry
        return ancestry

    def describe(self, task: Task, *, full: bool = True) -> dict:
        """process.* of ``task`` (``full``: args, cwd, users; else the short form Defend puts
        on the parent and leaders)."""
        return dict(self._full(task) if full else self._short(task))

    def _describe(self, task: Task, *, full: bool) -> dict:
        out: dict = {"pid": task.pid, "entity_id": task.entity, "start": self._start_iso(task)}
        if task.executable:
            out["executable"] = task.executable
            out["name"] = task.name
        if task.args:
            out["args"] = list(task.args)
            out["args_count"] = len(task.args)
            out["command_line"] = " ".join(task.args)
        if task.cwd:
            out["working_directory"] = task.cwd
        kind = tty_kind(*task.tty)
        out["interactive"] = kind is not None
        if task.tty != (0, 0):
            out["tty"] = {"char_device": {"major": task.tty[0], "minor": task.tty[1]}}
        out["user"] = _id_name(task.euid, user_name)
        out["group"] = _id_name(task.egid, group_name)
        out["real_user"] = _id_name(task.uid, user_name)
        out["real_group"] = _id_name(task.gid, group_name)
        if full and task.env:
            out["env_vars"] = list(task.env)
        if full:
            out["thread"] = {
                "capabilities": {
                    "effective": _capability_list(task.cap_eff),
                    "permitted": _capability_list(task.cap_perm),
                }
            }
        return out

    def process_fields(self, task: Task) -> dict:
        process = dict(self._full(task))
        tasks = self.tasks
        parent = tasks.get(task.ppid)
        if parent is not None and parent.pid != task.pid:
            process["parent"] = self._short(parent)
        else:
            process["parent"] = {"pid": task.ppid}
        leader = tasks.get(task.pgid)
        if leader is not None:
            process["group_leader"] = self._leader(leader, leader is task)
        leader = tasks.get(task.sid)
        if leader is not None:
            process["session_leader"] = self._leader(leader, leader is task)
        if task.entry is not None:
            leader = tasks.get(task.entry)
            if leader is not None:
                process["entry_leader"] = self._entry_leader(leader, leader is task)
        process["Ext"] = {"ancestry": self._ancestry(task, parent)}
        return process

    def network_fields(self, task: Task) -> tuple[dict, dict, dict]:
        """The short process form of network events (no args), its ``user`` and ``group``."""
        full = self._full(task)
        process: dict = {"pid": task.pid, "entity_id": task.entity}
        if "executable" in full:
            process["executable"] = full["executable"]
            process["name"] = full["name"]
        if "command_line" in full:
            process["command_line"] = full["command_line"]
        tasks = self.tasks
        parent = tasks.get(task.ppid)
        if parent is not None and parent.pid != task.pid:
            process["parent"] = {"entity_id": parent.entity, "pid": parent.pid}
        else:
            process["parent"] = {"pid": task.ppid}
        leader = tasks.get(task.pgid)
        if leader is not None:
            process["group_leader"] = {"entity_id": leader.entity}
        leader = tasks.get(task.sid)
        if leader is not None:
            process["session_leader"] = {"entity_id": leader.entity}
        if task.entry is not None:
            leader = tasks.get(task.entry)
            if leader is not None:
                process["entry_leader"] = {"entity_id": leader.entity}
        process["Ext"] = {"ancestry": self._ancestry(task, parent)}
        process["thread"] = full["thread"]
        return process, full["user"], full["group"]

    def document(self, action: str, task: Task, *, event_id: str, now_ns: int) -> dict:
        ts = timestamp(now_ns)
        process = self.process_fields(task)
        if action == "exec" and task.previous:
            process["previous"] = list(task.previous)
        if action == "end":
            if task.end is not None:
                process["end"] = timestamp(task.end)
            if task.exit_code is not None:
                process["exit_code"] = task.exit_code
        doc = envelope(
            self.host, DATASET, "process", action, EVENT_TYPES[action], event_id=event_id, ts=ts,
            message="Endpoint process event",
        )  # fmt: skip
        doc["process"] = process
        views = task.views
        doc["user"] = views["user"]
        doc["group"] = views["group"]
        if action == "end":
            # An ended process lingers in the table as a parent and leader (its short form);
            # its own full form is rarely needed again (a late disconnect builds it anew).
            task.views = {"short": views["short"]} if "short" in views else None
        return doc


@lru_cache(maxsize=1024)
def _id_name(ident: int, namer) -> dict:
    out: dict = {"id": str(ident)}
    name = namer(ident)
    if name is not None:
        out["name"] = name
    return out
