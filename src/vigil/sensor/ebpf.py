"""The eBPF process and network sensor: kernel records in, Defend-shaped events out.

Loss is never silent: the programs count, in the kernel, every record the ring buffer had no
room for; each new drop becomes a ``vigil.sensor.health`` event with the running count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from vigil.sensor.bpf import BPFUnavailable, Probes
from vigil.sensor.ecs import HostInfo, health_event
from vigil.sensor.network import NetworkTracker
from vigil.sensor.process import ProcessTracker, decode
from vigil.sensor.programs import sensor as prog

_SOCKET_KINDS = {prog.CONNECT, prog.ACCEPT, prog.CLOSE, prog.CONNECTED, prog.DNS}
# Records written in the acting process (the others come from the network stack, in whatever
# task runs: a close, a handshake's end, attributed through the socket instead).
_IN_PROCESS = {prog.CONNECT, prog.ACCEPT, prog.DNS}

__all__ = ["BPFUnavailable", "KernelSensor", "KernelStats"]


@dataclass
class KernelStats:
    process: int = 0
    network: int = 0
    records: int = 0
    dropped: int = 0  # records the kernel could not put in the ring buffer (lost)
    dns_unread: int = 0  # DNS datagrams of a sendmmsg past those the kernel reads (not seen)


class KernelSensor:
    """Process and network events from eBPF; ``event_id`` makes ids shared with the file sensor."""

    def __init__(
        self,
        host: HostInfo,
        event_id: Callable[[], str],
        *,
        ring_size: int = 32 << 20,
        ignore_pids: frozenset[int] = frozenset(),
        probes=None,
    ) -> None:
        self.host = host
        self.event_id = event_id
        self.ignore_pids = ignore_pids
        # ``probes``: anything with ``ring.read``/``ring.pending`` and ``counts`` (a benchmark
        # replays recorded records through it); the programs are loaded when none is given.
        self.probes = probes if probes is not None else Probes(ring_size)
        self.procs = ProcessTracker(host)
        self.net = NetworkTracker(self.procs)
        self.stats = KernelStats()
        self._last_sweep = time.monotonic()
        self.exited: list[int] = []  # pids whose end was read since the caller last took them

    def fileno(self) -> int:
        return self.probes.fileno()

    def already_running(self) -> list[dict]:
        """``already_running`` events for what runs now (read from /proc once, at start)."""
        now = time.time_ns()
        docs = [
            self.procs.document("already_running", task, event_id=self.event_id(), now_ns=now)
            for task in self.procs.snapshot()
        ]
        self.stats.process += len(docs)
        return docs

    def poll(self, limit: int = 4096) -> list[dict]:
        """Events from the records in the ring buffer (at most ``limit`` records per call).

        Everything waiting is one batch, up to ``limit``: a quiet host gives small batches
        (an alert a few milliseconds after the act), a busy one larger batches, which the
        rule engine runs for less per event, so it catches up instead of falling behind."""
        out: list[dict] = []
        now = time.time_ns()
        records = self.probes.ring.read(limit)
        self.stats.records += len(records)
        boot = self.procs.boot_ns
        net = self.net
        for raw in records:
            rec = decode(raw)
            if rec is None:
                continue
            # @timestamp is when the kernel saw it, not when it was read: a sequence's maxspan
            # holds even while the engine is behind.
            at = boot + rec.time if rec.time else now
            if rec.kind in _SOCKET_KINDS:
                if rec.kind in _IN_PROCESS and rec.tgid in self.ignore_pids:
                    continue
                docs = net.handle(rec, event_id=self.event_id, now_ns=at)
                self.stats.network += len(docs)
                out += docs
                continue
            if net.waiting_pids and (rec.tgid in net.waiting_pids or rec.ppid in net.waiting_pids):
                # A connect of this process (or of a parent that forks) waits for its port:
                # it goes first, as it happened first.
                docs = net.release_pid(rec.tgid, rec.ppid)
                self.stats.network += len(docs)
                out += docs
            for action, task, _rec in self.procs.handle(rec):
                if action == "end":
                    self.exited.append(task.pid)
                if task.pid in self.ignore_pids:
                    continue
                out.append(self.procs.document(action, task, event_id=self.event_id(), now_ns=at))
                self.stats.process += 1
        if net.waiting:
            # No port within HOLD_NS (a blocking connect to a host that does not answer).
            docs = net.release_older(time.clock_gettime_ns(time.CLOCK_BOOTTIME))
            self.stats.network += len(docs)
            out += docs
        if net.dns_unread != self.stats.dns_unread:
            self.stats.dns_unread = net.dns_unread
            out.append(
                health_event(
                    f"DNS queries not read: a sendmmsg sent more than {prog.MMSG_MAX} datagrams to port 53",
                    host=self.host,
                    event_id=self.event_id(),
                    now_ns=now,
                    lost=net.dns_unread,
                )
            )
        dropped, _sent = self.probes.counts()
        if dropped != self.stats.dropped:
            self.stats.dropped = dropped
            out.append(
                health_event(
                    "eBPF ring buffer full: process and network events were lost",
                    host=self.host,
                    event_id=self.event_id(),
                    now_ns=now,
                    lost=dropped,
                )
            )
        mono = time.monotonic()
        if mono - self._last_sweep > 10:
            self.procs.sweep()
            self._last_sweep = mono
        return out

    def pending(self) -> bool:
        return self.probes.ring.pending() > 0

    def close(self) -> None:
        self.probes.close()
