"""Process events where eBPF cannot load: the kernel's process connector and /proc. Lossy.

The connector reports every fork, exec and exit, but what the process is (program, argv,
working directory, start time) is read from ``/proc`` when the notice arrives: a program that
exits within a millisecond or two is often gone by then, and its event is missed (counted in
``missed``). The events have the same shape and entity ids as the eBPF sensor's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vigil.sensor.ecs import HostInfo
from vigil.sensor.process import ProcessTracker, Task


class ConnectorEvents:
    def __init__(self, host: HostInfo, event_id: Callable[[], str], ignore_pids: frozenset[int]) -> None:
        self.procs = ProcessTracker(host)
        self.event_id = event_id
        self.ignore_pids = ignore_pids
        self.events = 0
        self.missed = 0  # notices whose process was gone before /proc was read

    def already_running(self) -> list[dict]:
        now = time.time_ns()
        docs = [
            self.procs.document("already_running", task, event_id=self.event_id(), now_ns=now)
            for task in self.procs.snapshot()
        ]
        self.events += len(docs)
        return docs

    def handle(self, kind: str, a: int, b: int, extra) -> list[dict]:
        """Events of one connector notice (``extra``: what /proc showed in the reader thread)."""
        procs = self.procs
        if kind == "fork":
            if not isinstance(extra, dict):
                self.missed += 1
                return []
            task = Task(
                b, a, extra["start"], pgid=extra["pgid"], sid=extra["sid"], tty=extra["tty"], source="fork"
            )
            parent = procs.get(a)
            if parent is not None:
                task.executable, task.args, task.cwd, task.env = (
                    parent.executable,
                    parent.args,
                    parent.cwd,
                    parent.env,
                )
                task.uid, task.gid, task.euid, task.egid = parent.uid, parent.gid, parent.euid, parent.egid
                task.cap_eff, task.cap_perm, task.entry = parent.cap_eff, parent.cap_perm, parent.entry
            procs._put(task)
            return self._doc("fork", task)
        if kind == "exec":
            if not isinstance(extra, Task):
                self.missed += 1
                return []
            old = procs.get(a)
            if old is not None and old.start == extra.start and old.executable:
                prev = {"executable": old.executable}
                if old.args:
                    prev |= {"args": list(old.args), "args_count": len(old.args)}
                extra.previous = [prev]
            procs._put(extra)
            procs._evaluate_entry(extra)
            return self._doc("exec", extra)
        task = procs.get(a)
        if task is None:
            return []
        task.end = time.time_ns()
        procs._ended.append((time.monotonic(), task.pid, task.start))
        return self._doc("end", task)

    def _doc(self, action: str, task: Task) -> list[dict]:
        if task.pid in self.ignore_pids:
            return []
        self.events += 1
        return [self.procs.document(action, task, event_id=self.event_id(), now_ns=time.time_ns())]
