"""The kernel process-events connector (netlink NETLINK_CONNECTOR / CN_IDX_PROC).

It reports fork, exec and exit of every process, in order, to a root listener; Vigil
uses it for fork parentage (children that never exec) and exits.
"""

from __future__ import annotations

import collections
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
NLMSG_DONE = 3
PROC_CN_MCAST_LISTEN = 1
PROC_EVENT_FORK = 0x1
PROC_EVENT_EXEC = 0x2
PROC_EVENT_EXIT = 0x80000000

_NLMSG = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")
_EV_HEAD = struct.Struct("=IIQ")


class ProcConnector:
    def __init__(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_CONNECTOR)
        try:
            sock.bind((os.getpid(), CN_IDX_PROC))
            op = struct.pack("=I", PROC_CN_MCAST_LISTEN)
            cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(op), 0) + op
            sock.send(_NLMSG.pack(_NLMSG.size + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        except OSError:
            sock.close()
            raise
        sock.settimeout(0.5)
        self.sock = sock
        self.lost = 0
        self._queue: collections.deque = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(
        self, on_exec: Callable[[int], Any] | None = None, on_fork: Callable[[int], Any] | None = None
    ) -> None:
        """Read in a thread, so ``on_exec(pid)`` (reading /proc) runs while the process still
        shows the program it just exec'ed: a short-lived one is gone by the next poll.
        ``on_fork(child)``, likewise, while the child still exists."""
        self._thread = threading.Thread(
            target=self._run, args=(on_exec, on_fork), name="vigil-proc-connector", daemon=True
        )
        self._thread.start()

    def _run(self, on_exec: Callable[[int], Any] | None, on_fork: Callable[[int], Any] | None = None) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:  # ENOBUFS: the kernel dropped notices; keep going
                if self._stop.is_set():
                    return
                self.lost += 1
                continue
            for kind, a, b in parse(data):
                extra = None
                if kind == "exec" and on_exec is not None:
                    extra = on_exec(a)
                elif kind == "fork" and on_fork is not None:
                    extra = on_fork(b)
                self._queue.append((kind, a, b, extra))

    def drain(self) -> Iterator[tuple[str, int, int, Any]]:
        """Notices so far, in order: ("fork", parent, child, extra), ("exec", pid, 0, extra), ("exit", pid, 0, None)."""
        queue = self._queue
        while queue:
            yield queue.popleft()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.sock.close()


def parse(data: bytes) -> Iterator[tuple[str, int, int]]:
    off = 0
    while off + _NLMSG.size <= len(data):
        length = _NLMSG.unpack_from(data, off)[0]
        if length < _NLMSG.size:
            return
        pos = off + _NLMSG.size + _CN_MSG.size
        if pos + _EV_HEAD.size <= off + length:
            what = _EV_HEAD.unpack_from(data, pos)[0]
            body = pos + _EV_HEAD.size
            if what == PROC_EVENT_FORK:
                _ppid, ptgid, cpid, ctgid = struct.unpack_from("=iiii", data, body)
                if cpid == ctgid:  # a new process, not a thread
                    yield ("fork", ptgid, ctgid)
            elif what == PROC_EVENT_EXEC:
                pid, tgid = struct.unpack_from("=ii", data, body)
                yield ("exec", tgid, 0)
            elif what == PROC_EVENT_EXIT:
                pid, tgid = struct.unpack_from("=ii", data, body)
                if pid == tgid:
                    yield ("exit", tgid, 0)
        off += (length + 3) & ~3
