"""The live sensor: fanotify file events under watched folders, attributed to processes."""

from __future__ import annotations

import itertools
import os
import select
import time
from collections.abc import Iterable
from dataclasses import dataclass

from vigil.sensor import fanotify as fan
from vigil.sensor.connector import ProcConnector
from vigil.sensor.ecs import HostInfo, file_event, health_event
from vigil.sensor.fallback import ConnectorEvents
from vigil.sensor.process import proc_task, read_stat
from vigil.sensor.procs import Proc, ProcessTable

DEFAULT_PATHS = ("/lib/dracut/modules.d", "/usr/lib/dracut/modules.d")

_FILE_MASK = fan.FAN_CREATE | fan.FAN_DELETE | fan.FAN_CLOSE_WRITE | fan.FAN_ONDIR


@dataclass
class SensorStats:
    events: int = 0
    lost: int = 0  # kernel queue overflows (each one is at least one lost event)
    unattributed: int = 0
    fallback: int = 0  # attributed late from /proc: less reliable
    process: int = 0  # process events (eBPF)
    network: int = 0  # network events (eBPF)
    kernel_lost: int = 0  # eBPF records the ring buffer had no room for
    process_missed: int = 0  # without eBPF: processes gone before /proc was read (events lost)


def existing_ancestor(path: str) -> str:
    """The nearest folder that exists: a missing watched folder is seen from its parent."""
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


class Sensor:
    """Reads file events below ``paths`` (folders may not exist yet) and yields ECS documents.

    ``ignore_paths`` are files Vigil itself writes; Vigil's own pid is ignored too, so its
    output never feeds back into alerts.
    """

    def __init__(
        self,
        paths: Iterable[str] = DEFAULT_PATHS,
        *,
        ignore_paths: Iterable[str] = (),
        coalesce: float = 0.01,
        processes: bool = True,
    ) -> None:
        # Watched prefixes as the kernel names them (symlinks such as /lib -> usr/lib resolved).
        self.prefixes = sorted({_real(p) for p in paths})
        self._under = tuple(p.rstrip("/") + "/" for p in self.prefixes)
        self._exact = frozenset(self.prefixes)
        self.ignore = {_real(p) for p in ignore_paths}
        self.ignore |= {p + suffix for p in list(self.ignore) for suffix in ("-journal", "-wal", "-shm")}
        self.stats = SensorStats()
        # Batches are cut at most once per ``coalesce`` seconds: after a wake-up, what is left
        # of that time since the last batch is waited so one read takes a batch (far fewer
        # wake-ups, and so CPU, for a few milliseconds of latency). When handling the last
        # batch took longer (a busy rule engine), the next one is cut at once (eBPF; with the
        # process connector each wake-up still waits the whole time).
        self.coalesce = coalesce
        self._last_cut = 0.0
        self.host = HostInfo.local()
        self.procs = ProcessTable()
        self._ids = itertools.count(1)
        # Event ids must never repeat, even after a restart that reuses the pid: alert ids
        # (and so the store's de-duplication) are derived from them.
        self._id_prefix = f"{self.host.agent['id'][:8]}-{time.time_ns():x}"
        self._self_pid = os.getpid()
        self.group = fan.Group()
        try:
            mask = _FILE_MASK | fan.FAN_OPEN_EXEC
            mask |= fan.FAN_RENAME if self.group.rename_events else fan.FAN_MOVED_FROM | fan.FAN_MOVED_TO
            self.mounts = sorted({_mount_point(existing_ancestor(p)) for p in self.prefixes})
            seen: set[tuple[int, int]] = set()
            for mnt in self.mounts:
                seen.add(self.group.mark_filesystem(mnt, mask))
            # Programs start from any filesystem: watch exec on the others too, where allowed.
            for mnt in _exec_mounts():
                try:
                    if fan.fsid_of(mnt) not in seen:
                        seen.add(self.group.mark_filesystem(mnt, fan.FAN_OPEN_EXEC))
                except (fan.SensorUnavailable, OSError):
                    pass
            # Process and network events from eBPF; where it cannot load, the connector and
            # /proc (lossy for programs that exit at once) attribute file events.
            self.kernel = None
            self.kernel_error: str | None = None
            if processes:
                from vigil.sensor.ebpf import BPFUnavailable, KernelSensor

                try:
                    self.kernel = KernelSensor(
                        self.host, self._event_id, ignore_pids=frozenset({self._self_pid})
                    )
                except (BPFUnavailable, OSError) as exc:
                    self.kernel_error = str(exc).splitlines()[0]
            self.connector: ProcConnector | None = None
            self.fallback: ConnectorEvents | None = None
            self._pending: list[dict] = []
            if self.kernel is None:
                try:
                    self.connector = ProcConnector()
                    if processes:
                        self.fallback = ConnectorEvents(
                            self.host, self._event_id, frozenset({self._self_pid})
                        )
                    self.connector.start(proc_task, read_stat)
                except OSError:
                    self.connector = None
                    self.fallback = None
            if self.kernel is not None:
                self.procs.known = self._kernel_proc
            self.procs.snapshot()
        except BaseException:
            self.close()
            raise
        self._last_sweep = time.monotonic()

    @property
    def collection(self) -> str:
        """How process events are collected, for people."""
        if self.kernel is not None:
            return f"eBPF ({', '.join(self.kernel.probes.attached)})"
        why = f" ({self.kernel_error})" if self.kernel_error else ""
        if self.connector is None:
            return f"none: no eBPF and no process connector{why}"
        return f"process connector + /proc, lossy for programs that exit at once{why}"

    def already_running(self) -> list[dict]:
        """``already_running`` process events for what runs now (eBPF sensor only)."""
        if self.kernel is None:
            if self.fallback is None:
                return []
            docs = self.fallback.already_running()
            self.stats.process = self.fallback.events
            return docs
        docs = self.kernel.already_running()
        self.stats.process = self.kernel.stats.process
        return docs

    def fileno(self) -> int:
        return self.group.fd

    def poll(self, timeout: float | None = None) -> list[dict]:
        """Events that arrived, waiting up to ``timeout`` seconds (None: forever)."""
        fds = [self.group.fd] if self.kernel is None else [self.group.fd, self.kernel.fileno()]
        behind = self.kernel is not None and self.kernel.pending()
        if behind:
            timeout = 0
        ready, _, _ = select.select(fds, [], [], timeout)
        out: list[dict] = []
        if ready and self.coalesce and not behind:
            # The process connector's thread needs the whole wait to read /proc for a program
            # that has just started, before a file event of it is attributed.
            wait = self.coalesce
            if self.kernel is not None:
                wait += self._last_cut - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self._drain_connector()
        if self._pending:
            out += self._pending
            self._pending = []
        if self.kernel is not None:
            # Process events first: a file event's writer has exec'ed before it wrote.
            out += self._drain_kernel()
        if self.group.fd in ready:
            for raw in self.group.read(1 << 18):
                doc = self._handle(raw)
                if self._pending:  # process events read while attributing this one come first
                    out += self._pending
                    self._pending = []
                if doc is not None:
                    out.append(doc)
        now = time.monotonic()
        if out:
            self._last_cut = now
        if now - self._last_sweep > 10:
            self.procs.sweep()
            self._last_sweep = now
        return out

    def _drain_kernel(self) -> list[dict]:
        assert self.kernel is not None
        docs = self.kernel.poll()
        if self.kernel.exited:
            # The file sensor's table lets ended processes go after a while, as the kernel's.
            for pid in self.kernel.exited:
                self.procs.on_exit(pid)
            self.kernel.exited = []
        ks = self.kernel.stats
        self.stats.process, self.stats.network, self.stats.kernel_lost = ks.process, ks.network, ks.dropped
        return docs

    def _drain_connector(self) -> None:
        if self.connector is None:
            return
        for kind, a, b, extra in self.connector.drain():
            if kind == "fork":
                self.procs.on_fork(a, b)
            elif kind == "exec":
                live = None
                if extra is not None:
                    live = Proc(
                        a,
                        extra.executable,
                        extra.args,
                        extra.ppid,
                        source="proc",
                        uid=extra.uid,
                        gid=extra.gid,
                    )
                self.procs.on_exec_notice(a, live)
            else:
                self.procs.on_exit(a)
            if self.fallback is not None:
                self._pending += self.fallback.handle(kind, a, b, extra)
                self.stats.process = self.fallback.events
        if self.fallback is not None and self.fallback.missed != self.stats.process_missed:
            self.stats.process_missed = self.fallback.missed
            self._pending.append(
                health_event(
                    "process connector: processes exited before /proc was read: their events were lost",
                    host=self.host,
                    event_id=self._event_id(),
                    now_ns=time.time_ns(),
                    lost=self.fallback.missed,
                )
            )

    def _handle(self, raw: fan.RawEvent) -> dict | None:
        mask = raw.mask
        now_ns = time.time_ns()
        if mask & fan.FAN_Q_OVERFLOW:
            self.stats.lost += 1
            self.procs.snapshot()  # exec events were lost too: relearn what runs now
            return health_event(
                "fanotify queue overflow: file events were lost",
                host=self.host,
                event_id=self._event_id(),
                now_ns=now_ns,
                lost=self.stats.lost,
            )
        if mask & fan.FAN_OPEN_EXEC:
            path = self._path(raw, fan.INFO_DFID_NAME)
            if path:
                self.procs.on_open_exec(raw.pid, path)
            if not mask & ~(fan.FAN_OPEN_EXEC | fan.FAN_ONDIR):
                return None
        if mask & fan.FAN_ONDIR:
            # A folder moved: the paths cached for it and below are stale. A deleted folder's
            # handle never resolves again, so deletions need nothing.
            if mask & (fan.FAN_RENAME | fan.FAN_MOVED_FROM | fan.FAN_MOVED_TO):
                self.group.forget_dirs()
            return None  # Defend reports files; folders only invalidate cached paths
        if raw.pid == self._self_pid:
            return None
        old_path = None
        if mask & fan.FAN_RENAME:
            action = "rename"
            path = self._path(raw, fan.INFO_NEW_DFID_NAME)
            old_path = self._path(raw, fan.INFO_OLD_DFID_NAME)
            if not (self._watched(path) or self._watched(old_path)):
                return None
        else:
            if mask & fan.FAN_CREATE:
                action = "creation"
            elif mask & fan.FAN_DELETE:
                action = "deletion"
            elif mask & fan.FAN_MOVED_TO:
                action = "rename"
            elif mask & fan.FAN_MOVED_FROM:
                action = "rename"  # the old name; its new one may be outside the watch
            elif mask & (fan.FAN_CLOSE_WRITE | fan.FAN_MODIFY):
                action = "modification"
            else:
                return None
            path = self._path(raw, fan.INFO_DFID_NAME)
            if not self._watched(path):
                return None
        if path is None or path in self.ignore:
            return None
        known = self.procs.procs.get(raw.pid)
        if known is None or (known.source == "exec" and known.args is None):
            # A fork just before this event, or the exec notice with the arguments, may have
            # come in since the batch started.
            self._drain_connector()
        proc = self.procs.lookup(raw.pid)
        parent_entity = None
        table = (
            self.kernel.procs if self.kernel is not None else self.fallback.procs if self.fallback else None
        )
        task = table.get(raw.pid) if table is not None else None
        if self.kernel is not None and (
            task is None or (proc is not None and proc.executable != task.executable)
        ):
            # The writer's fork or exec records came after the ring buffer was read: read on.
            self._pending += self._drain_kernel()
            task = table.get(raw.pid)
        if task is not None:
            # The process table gives the entity ids (the writer's and its parent's), the same
            # as in its process events. Its program may already be a later one (the exec record
            # is read before this file event): the fanotify table, in the same queue as the
            # file events, says which program wrote, and then its arguments are the previous.
            exe, args = task.executable, task.args
            if proc is not None and proc.source == "exec" and proc.executable and proc.executable != exe:
                prev = next((p for p in task.previous if p.get("executable") == proc.executable), None)
                exe, args = proc.executable, prev.get("args") if prev else proc.args
            source = "exec" if self.kernel is not None else "proc"
            proc = Proc(raw.pid, exe, args, task.ppid, task.start, source, None, task.euid, task.egid)
            parent = table.get(task.ppid)
            parent_entity = parent.entity if parent is not None else None
        elif proc is not None:
            st = read_stat(raw.pid)
            if st is not None:
                proc.start = st["start"]  # boot ticks: the kernel's start time, as eBPF gives it
        if proc is None or not proc.executable:
            self.stats.unattributed += 1
        elif proc.source == "proc":
            self.stats.fallback += 1
        stat = None
        if action != "deletion":
            try:
                stat = os.lstat(path)
            except OSError:
                pass
        self.stats.events += 1
        return file_event(
            action,
            path,
            host=self.host,
            proc=proc,
            pid=raw.pid,
            event_id=self._event_id(),
            now_ns=now_ns,
            old_path=old_path,
            stat=stat,
            parent_entity=parent_entity,
        )

    def _kernel_proc(self, pid: int, path: str) -> Proc | None:
        """The program ``pid`` runs as the eBPF exec record gave it, if it is ``path``."""
        assert self.kernel is not None
        task = self.kernel.procs.get(pid)
        if task is None or task.executable != path:
            return None
        return Proc(pid, task.executable, task.args, task.ppid, source="proc", uid=task.uid, gid=task.gid)

    def _event_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    def _path(self, raw: fan.RawEvent, kind: int) -> str | None:
        for rec in raw.records:
            if rec.kind == kind:
                folder = self.group.dir_path(rec)
                if folder is None or rec.name is None:
                    return None
                if rec.name == ".":
                    return folder
                return folder.rstrip("/") + "/" + rec.name
        return None

    def _watched(self, path: str | None) -> bool:
        if path is None:
            return False
        return path.startswith(self._under) or path in self._exact

    def close(self) -> None:
        if getattr(self, "connector", None) is not None:
            self.connector.close()
        if getattr(self, "kernel", None) is not None:
            self.kernel.close()
        self.group.close()


def _real(path: str) -> str:
    """Resolve symlinks in the part of ``path`` that exists, keep the rest as given."""
    path = os.path.abspath(path)
    head = existing_ancestor(path)
    rest = os.path.relpath(path, head)
    real = os.path.realpath(head)
    return real if rest == "." else os.path.join(real, rest)


def _mount_point(path: str) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


_PSEUDO = {
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "autofs",
    "hugetlbfs",
    "rpc_pipefs",
    "nsfs",
    "efivarfs",
}


def _exec_mounts() -> list[str]:
    out = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fstype = right.split(" ", 1)[0]
                fields = left.split()
                if fstype in _PSEUDO or len(fields) < 5 or "noexec" in fields[5:6][0].split(","):
                    continue
                out.append(fields[4].replace("\\040", " "))
    except (OSError, IndexError):
        pass
    return out
