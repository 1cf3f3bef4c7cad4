"""Who did it: a pid -> process table kept as processes start, fork and exit.

Reading ``/proc/<pid>/exe`` when a file event is read is wrong for a process that
already exited or has exec'ed something else since. So the table is fed in order:
fanotify FAN_OPEN_EXEC events (same queue as the file events, so a write that came
before an exec is read before it) give the new executable; the kernel's process
connector gives forks (a child that never execs runs its parent's program) and exits.
``/proc`` is only the fallback, and entries say which source they came from.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# The dynamic loader is opened for exec by the kernel right after the program itself;
# it is never the program. Scripts open the script, then the interpreter: the last
# non-loader OPEN_EXEC wins, which is what /proc/<pid>/exe shows too.
_LOADER = re.compile(r"/ld-linux[^/]*\.so[.\d]*$|/ld-musl-[^/]*\.so[.\d]*$|/ld\.so[.\d]*$|/ld-[\d.]+\.so$")


@dataclass(slots=True)
class Proc:
    pid: int
    executable: str | None
    args: list[str] | None = None
    ppid: int | None = None
    start: float = field(default_factory=time.time)
    source: str = "exec"  # exec | fork | proc (read from /proc late: less reliable)
    exited: float | None = None
    uid: int | None = None
    gid: int | None = None


def is_loader(path: str, interpreters: set[str] | None = None) -> bool:
    return bool(_LOADER.search(path)) or (interpreters is not None and path in interpreters)


def elf_interpreter(path: str) -> str | None:
    """PT_INTERP of an ELF executable (its dynamic loader), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
                return None
            little = head[5] == 1
            order = "little" if little else "big"
            phoff = int.from_bytes(head[32:40], order)
            phentsize = int.from_bytes(head[54:56], order)
            phnum = int.from_bytes(head[56:58], order)
            fh.seek(phoff)
            table = fh.read(phentsize * min(phnum, 64))
            for i in range(min(phnum, 64)):
                ent = table[i * phentsize : (i + 1) * phentsize]
                if int.from_bytes(ent[0:4], order) == 3:  # PT_INTERP
                    off = int.from_bytes(ent[8:16], order)
                    size = int.from_bytes(ent[32:40], order)
                    fh.seek(off)
                    return os.fsdecode(fh.read(min(size, 4096)).rstrip(b"\0"))
    except OSError:
        return None
    return None


def read_proc(pid: int) -> Proc | None:
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    if exe.endswith(" (deleted)"):
        exe = exe[: -len(" (deleted)")]
    proc = Proc(pid, exe, source="proc")
    proc.args = _cmdline(pid)
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"PPid:"):
                    proc.ppid = int(line.split()[1])
                elif line.startswith(b"Uid:"):
                    proc.uid = int(line.split()[1])
                elif line.startswith(b"Gid:"):
                    proc.gid = int(line.split()[1])
                    break
    except (OSError, ValueError, IndexError):
        pass
    return proc


def _cmdline(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    return [os.fsdecode(a) for a in raw.split(b"\0")[:-1]] or None


class ProcessTable:
    """pid -> Proc, fed in event order; exited entries linger so queued events still resolve."""

    def __init__(self, linger: float = 30.0) -> None:
        self.procs: dict[int, Proc] = {}
        self.linger = linger
        self._interpreters: set[str] = set()
        self._pending_exec: dict[int, Proc] = {}
        # What a program's file says of its loader, by path and identity (dev, inode, change
        # time): read once per program file, not at every run.
        self._interp_of: dict[tuple, str | None] = {}
        # ``known(pid, path)``: the process as another source already has it (the eBPF
        # sensor's exec record), so that /proc is read only when none has.
        self.known: Callable[[int, str], Proc | None] | None = None

    def snapshot(self) -> int:
        """Learn the processes already running (from /proc; marked as such)."""
        n = 0
        for name in os.listdir("/proc"):
            if name.isdigit():
                proc = read_proc(int(name))
                if proc:
                    self.procs[proc.pid] = proc
                    n += 1
        return n

    def on_open_exec(self, pid: int, path: str) -> None:
        if is_loader(path, self._interpreters):
            return
        interp = self._interpreter(path)
        if interp:
            self._interpreters.add(interp)
        old = self.lookup(pid, read=False)  # the identity before this exec (a fork: its parent's)
        proc = Proc(pid, path, ppid=old.ppid if old else None, source="exec")
        if old:
            # Kept across exec unless the program is set-uid; the exec notice, when it is in
            # time, says for sure.
            proc.uid, proc.gid = old.uid, old.gid
        # Arguments: from the connector's exec notice or /proc, only if it shows this program.
        seen = self._pending_exec.pop(pid, None)
        if seen and seen.executable == path:
            proc.args = seen.args
            proc.uid, proc.gid = seen.uid, seen.gid
            proc.ppid = seen.ppid if seen.ppid is not None else proc.ppid
        else:
            live = self.known(pid, path) if self.known is not None else None
            if live is None:
                live = read_proc(pid)
            if live and live.executable == path:
                proc.args = live.args
                proc.uid, proc.gid = live.uid, live.gid
                proc.ppid = live.ppid if live.ppid is not None else proc.ppid
        self.procs[pid] = proc

    def _interpreter(self, path: str) -> str | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (path, st.st_dev, st.st_ino, st.st_ctime_ns)
        try:
            return self._interp_of[key]
        except KeyError:
            pass
        if len(self._interp_of) >= 4096:
            self._interp_of.clear()
        interp = self._interp_of[key] = elf_interpreter(path)
        return interp

    def on_fork(self, parent: int, child: int) -> None:
        # The connector runs ahead of the fanotify queue: the parent's exec may not be read
        # yet. So the child's program is looked up through its parent when it is needed.
        self.procs[child] = Proc(child, None, ppid=parent, source="fork")

    def on_exec_notice(self, pid: int, live: Proc | None = None) -> None:
        """The connector saw an exec: keep what /proc showed right then (its arguments)."""
        if live is None:
            live = read_proc(pid)
        if live:
            known = self.procs.get(pid)
            if known is not None and known.source == "exec" and known.executable == live.executable:
                # The exec was read first (the notice came late): complete it for later events.
                if known.args is None:
                    known.args = live.args
                known.uid, known.gid = live.uid, live.gid
                return
            self._pending_exec[pid] = live
            if len(self._pending_exec) > 4096:
                self._pending_exec.pop(next(iter(self._pending_exec)))

    def on_exit(self, pid: int) -> None:
        proc = self.procs.get(pid)
        if proc:
            proc.exited = time.monotonic()

    def lookup(self, pid: int, *, read: bool = True) -> Proc | None:
        """The program ``pid`` runs; ``read``: ask /proc about a pid never seen."""
        proc = self.procs.get(pid)
        if proc is None:
            if not read:
                return None
            proc = read_proc(pid)
            if proc:
                self.procs[pid] = proc
            return proc
        if proc.source != "fork":
            return proc
        # A child that never exec'ed runs the program of its nearest exec'ing ancestor.
        anc, depth = proc, 0
        while anc is not None and anc.source == "fork" and anc.ppid is not None and depth < 64:
            anc = self.procs.get(anc.ppid)
            depth += 1
        if anc is None or anc.source == "fork":
            return Proc(pid, None, ppid=proc.ppid, start=proc.start, source="fork")
        return Proc(
            pid, anc.executable, anc.args, proc.ppid, proc.start, "fork", proc.exited, anc.uid, anc.gid
        )

    def sweep(self) -> None:
        cutoff = time.monotonic() - self.linger
        dead = [pid for pid, p in self.procs.items() if p.exited is not None and p.exited < cutoff]
        for pid in dead:
            del self.procs[pid]
