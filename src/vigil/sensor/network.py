"""Network events shaped as Elastic Defend writes them on Linux, from the eBPF records.

Index ``logs-endpoint.events.network-default``; actions ``connection_attempted`` (a TCP socket
enters SYN_SENT, in the connecting process), ``connection_accepted`` (``accept``/``accept4``
returned a socket, in the accepting process) and ``disconnect_received`` (a socket seen at
connect or accept is closed; attributed to the process that opened it). Fields: elastic/
endpoint-package ``custom_documentation/src/endpoint/data_stream/network/linux/
linux_network_attempted_accepted_and_disconnect.yaml``: addresses and ports, ``network.*``, and
the short process form (no args).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections import OrderedDict
from functools import lru_cache

from vigil.sensor.ecs import envelope, timestamp
from vigil.sensor.process import ProcessTracker, Record
from vigil.sensor.programs import sensor as prog

DATASET = "endpoint.events.network"
INDEX = f"logs-{DATASET}-default"


_MAPPED = bytes(10) + b"\xff\xff"  # ::ffff:a.b.c.d, an IPv4 peer of an IPv6 socket
_PORTS = struct.Struct("<HH")
_DPORT = struct.Struct(">H")
_SK = struct.Struct("<Q")


@lru_cache(maxsize=4096)
def _ip6(raw: bytes) -> tuple[str, int]:
    """Text and version of a 16-byte address, as Python's ``ipaddress`` writes it."""
    if raw[:12] == _MAPPED:
        return socket.inet_ntop(socket.AF_INET, raw[12:]), 4
    return str(ipaddress.IPv6Address(raw)), 6


def endpoints(rec: Record) -> tuple[str, str, int, int, str] | None:
    """(local ip, remote ip, local port, remote port, network.type) of a socket record."""
    raw = rec.raw
    family, sport = _PORTS.unpack_from(raw, prog.O_FAMILY)
    dport = _DPORT.unpack_from(raw, prog.O_DPORT)[0]
    if family == socket.AF_INET:
        remote = socket.inet_ntop(socket.AF_INET, raw[prog.O_DADDR4 : prog.O_DADDR4 + 4])
        local = socket.inet_ntop(socket.AF_INET, raw[prog.O_SADDR4 : prog.O_SADDR4 + 4])
        return local, remote, sport, dport, "ipv4"
    if family == socket.AF_INET6:
        remote, version = _ip6(raw[prog.O_DADDR6 : prog.O_DADDR6 + 16])
        local = _ip6(raw[prog.O_SADDR6 : prog.O_SADDR6 + 16])[0]
        return local, remote, sport, dport, "ipv4" if version == 4 else "ipv6"
    return None


_START, _END = ["start"], ["end"]


class NetworkTracker:
    """Turns socket records into events; remembers open sockets for their disconnects."""

    def __init__(self, procs: ProcessTracker, *, capacity: int = 65536) -> None:
        self.procs = procs
        self.open: OrderedDict[int, tuple[str, int, int]] = OrderedDict()  # sk -> (action, pid, start)
        self.capacity = capacity

    def handle(self, rec: Record, *, event_id, now_ns: int) -> list[dict]:
        ends = endpoints(rec)
        if ends is None:
            return []
        sk = _SK.unpack_from(rec.raw, prog.O_SK)[0]
        if rec.kind == prog.CONNECT:
            task = self.procs.current(rec)
            self._remember(sk, "connection_attempted", task.pid, task.start)
            return [self._doc("connection_attempted", task, ends, event_id(), now_ns)]
        if rec.kind == prog.ACCEPT:
            task = self.procs.current(rec)
            self._remember(sk, "connection_accepted", task.pid, task.start)
            return [self._doc("connection_accepted", task, ends, event_id(), now_ns)]
        if rec.kind == prog.CLOSE:
            known = self.open.pop(sk, None)
            if known is None:
                return []
            old_state = struct.unpack_from("<I", rec.raw, prog.O_OLDSTATE)[0]
            if old_state == prog.TCP_SYN_SENT:
                return []  # the connection never opened
            action, pid, start = known
            task = self.procs.get(pid)
            if task is None or task.start != start:
                return []
            return [
                self._doc(
                    "disconnect_received",
                    task,
                    ends,
                    event_id(),
                    now_ns,
                    accepted=action == "connection_accepted",
                )
            ]
        return []

    def _remember(self, sk: int, action: str, pid: int, start: int) -> None:
        self.open[sk] = (action, pid, start)
        if len(self.open) > self.capacity:
            self.open.popitem(last=False)

    def _doc(
        self,
        action: str,
        task,
        ends: tuple[str, str, int, int, str],
        event_id: str,
        now_ns: int,
        *,
        accepted: bool = False,
    ) -> dict:
        local, remote, lport, rport, kind = ends
        inbound = action == "connection_accepted" or accepted
        src, dst = ((remote, rport), (local, lport)) if inbound else ((local, lport), (remote, rport))
        ts = timestamp(now_ns)
        process, user, group = self.procs.network_fields(task)
        event_type = _END if action == "disconnect_received" else _START
        addr = {"source": {"address": src[0], "ip": src[0]}, "destination": {"address": dst[0], "ip": dst[0]}}
        if src[1]:
            addr["source"]["port"] = src[1]
        if dst[1]:
            addr["destination"]["port"] = dst[1]
        doc = envelope(
            self.procs.host, DATASET, "network", action, event_type, event_id=event_id, ts=ts,
            message="Endpoint network event",
        )  # fmt: skip
        doc["network"] = {"direction": "ingress" if inbound else "egress", "transport": "tcp", "type": kind}
        doc["process"] = process
        doc["user"] = user
        doc["group"] = group
        doc.update(addr)
        return doc
