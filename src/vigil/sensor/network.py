"""Network events shaped as Elastic Defend writes them on Linux, from the eBPF records.

Index ``logs-endpoint.events.network-default``; actions ``connection_attempted`` (a TCP socket
enters SYN_SENT, in the connecting process), ``connection_accepted`` (``accept``/``accept4``
returned a socket, in the accepting process), ``disconnect_received`` (a socket seen at
connect or accept is closed; attributed to the process that opened it) and ``lookup_requested``
(a DNS query sent over UDP). Fields: elastic/endpoint-package ``custom_documentation/src/
endpoint/data_stream/network/linux/linux_network_attempted_accepted_and_disconnect.yaml``:
addresses and ports, ``network.*``, and the short process form (no args); for DNS,
``.../linux_network_dns_lookup_result.yaml``: ``dns.question.{name,type}``,
``network.{protocol,transport}``, the addresses and ports, and a shorter process form.

The local port of a connect is picked by the kernel just after the socket enters SYN_SENT, so
the attempt waits, with the time and the process of SYN_SENT, for the socket's next record:
connect's exit in the connecting thread (a non-blocking connect: at once), or the handshake's
end (ESTABLISHED, or CLOSE when refused), which carry the port. It never waits past another
event of its process (so a process's events keep their order) nor past ``HOLD_NS`` (a blocking
connect to a host that does not answer: then it goes without ``source.port``).
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
_BE_PORTS = struct.Struct(">HH")
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
    dport, inet_sport = _BE_PORTS.unpack_from(raw, prog.O_DPORT)
    sport = sport or inet_sport
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
_DNS_PROCESS = frozenset(
    {"pid", "entity_id", "executable", "name", "command_line", "parent", "Ext", "thread"}
)  # noqa: E501
_ANY = frozenset({"0.0.0.0", "::"})
# Windows' DNS example in elastic/endpoint-package (schemas/examples/v1/dns_request_windows.json);
# the Linux field list gives no other.
_DNS_TYPES = ["protocol", "info"]
HOLD_NS = 1_000_000_000  # the longest an attempt waits for its local port

# dns.question.type: the names elastic/endpoint-package's network pipeline gives the numbers
# (package/endpoint/data_stream/network/elasticsearch/ingest_pipeline/default.yml).
QTYPES = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL",
    11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB",
    19: "X25", 20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAPPTR", 24: "SIG", 25: "KEY", 26: "PX",
    27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA",
    35: "NAPTR", 36: "KX", 37: "CERT", 38: "A6", 39: "DNAME", 40: "SINK", 41: "OPT", 42: "APL",
    43: "DS", 44: "SSHFP", 45: "ISECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID",
    50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 56: "NINFO", 57: "RKEY",
    58: "TALINK", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB",
    65: "HTTPS", 99: "SPF", 100: "UINFO", 101: "UID", 102: "GID", 103: "UNSPEC", 104: "NID",
    105: "L32", 106: "L64", 107: "LP", 108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG",
    251: "IXFR", 252: "AXFR", 253: "MAILB", 254: "MAILA", 255: "ANY", 256: "URI", 257: "CAA",
    258: "AVC",
}  # fmt: skip

# A label's bytes as ECS asks for dns.question.name (elastic/ecs schemas/dns.yml): below 32 or
# above 126 as \DDD, tab, CR and LF as \t, \r, \n, backslash and quotes escaped; a dot
# inside a label is \. (the zone file form), so it never reads as a label boundary.
_ESCAPES = {i: f"\\{i:03d}" for i in [*range(32), *range(127, 256)]}
_ESCAPES.update({9: "\\t", 10: "\\n", 13: "\\r", 92: "\\\\", 34: '\\"', 39: "\\'", 46: "\\."})
_LABEL = str.maketrans({chr(k): v for k, v in _ESCAPES.items()})


def dns_question(payload: bytes) -> tuple[str, int] | None:
    """(name, type number) of the first question of a DNS query, or None when the datagram
    is not one (a reply, no question, a name that is cut, compressed or longer than 255
    bytes). Bounded: at most 128 labels, never past the datagram."""
    if len(payload) < 12 or payload[2] & 0x80:  # QR set: a reply
        return None
    if (payload[4] << 8 | payload[5]) == 0:  # QDCOUNT
        return None
    pos, labels, size = 12, [], 0
    for _ in range(128):
        if pos >= len(payload):
            return None
        n = payload[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0:  # a pointer or a reserved label type: not in a query's first name
            return None
        label = payload[pos + 1 : pos + 1 + n]
        if len(label) != n:
            return None
        size += n + 1
        if size > 255:
            return None
        labels.append(label.decode("latin-1").translate(_LABEL))
        pos += 1 + n
    else:
        return None
    if pos + 2 > len(payload):
        return None
    qtype = payload[pos] << 8 | payload[pos + 1]
    return (".".join(labels) if labels else "."), qtype


class NetworkTracker:
    """Turns socket records into events; remembers open sockets for their disconnects."""

    def __init__(self, procs: ProcessTracker, *, capacity: int = 65536) -> None:
        self.procs = procs
        self.open: OrderedDict[int, tuple[str, int, int]] = OrderedDict()  # sk -> (action, pid, start)
        self.capacity = capacity
        # Attempts waiting for their local port: sk -> (document, kernel time, pid).
        self.waiting: dict[int, tuple[dict, int, int]] = {}
        self.waiting_pids: dict[int, int] = {}  # pid -> attempts of it waiting
        self.dns_unread = 0  # datagrams to port 53 of a sendmmsg past those the kernel read

    def handle(self, rec: Record, *, event_id, now_ns: int) -> list[dict]:
        if rec.kind == prog.DNS:
            return self._dns(rec, event_id, now_ns)
        ends = endpoints(rec)
        if ends is None:
            return []
        sk = _SK.unpack_from(rec.raw, prog.O_SK)[0]
        if rec.kind == prog.CONNECTED:
            return self._complete(sk, ends[2])
        if rec.kind == prog.CONNECT:
            task = self.procs.current(rec)
            out = self.release_pid(task.pid) if self.waiting_pids else []
            self._remember(sk, "connection_attempted", task.pid, task.start)
            doc = self._doc("connection_attempted", task, ends, event_id(), now_ns)
            if ends[2]:  # a socket bound before connect: its port is known now
                return [*out, doc]
            old = self.waiting.pop(sk, None)
            if old is not None:  # the same socket connects again: the first goes as it is
                out.append(old[0])
                self._unwait(old[2])
            self.waiting[sk] = (doc, rec.time, task.pid)
            self.waiting_pids[task.pid] = self.waiting_pids.get(task.pid, 0) + 1
            return out
        if rec.kind == prog.ACCEPT:
            task = self.procs.current(rec)
            self._remember(sk, "connection_accepted", task.pid, task.start)
            return [self._doc("connection_accepted", task, ends, event_id(), now_ns)]
        if rec.kind == prog.CLOSE:
            out = self._complete(sk, ends[2]) if self.waiting else []
            known = self.open.pop(sk, None)
            if known is None:
                return out
            old_state = struct.unpack_from("<I", rec.raw, prog.O_OLDSTATE)[0]
            if old_state == prog.TCP_SYN_SENT:
                return out  # the connection never opened
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

    def _complete(self, sk: int, port: int) -> list[dict]:
        """The waiting attempt of ``sk``, now with its local port."""
        found = self.waiting.pop(sk, None)
        if found is None:
            return []
        doc, _t, pid = found
        self._unwait(pid)
        if port:
            doc["source"]["port"] = port
        return [doc]

    def _unwait(self, pid: int) -> None:
        n = self.waiting_pids.get(pid, 0) - 1
        if n > 0:
            self.waiting_pids[pid] = n
        else:
            self.waiting_pids.pop(pid, None)

    def release_pid(self, *pids: int) -> list[dict]:
        """The waiting attempts of these processes, as they are: an event of theirs comes next."""
        out = []
        for sk, (doc, _t, pid) in list(self.waiting.items()):
            if pid in pids:
                del self.waiting[sk]
                self._unwait(pid)
                out.append(doc)
        return out

    def release_older(self, kernel_ns: int) -> list[dict]:
        """The waiting attempts that entered SYN_SENT ``HOLD_NS`` before ``kernel_ns`` (boot clock)."""
        out = []
        for sk, (doc, t, pid) in list(self.waiting.items()):
            if kernel_ns - t >= HOLD_NS:
                del self.waiting[sk]
                self._unwait(pid)
                out.append(doc)
        return out

    def _dns(self, rec: Record, event_id, now_ns: int) -> list[dict]:
        """``lookup_requested``: a DNS query the process sent (a datagram to port 53)."""
        n = struct.unpack_from("<I", rec.raw, prog.O_ARGLEN)[0]
        if n == 0 and rec.ret > 0:
            self.dns_unread += rec.ret
            return []
        question = dns_question(rec.raw[prog.HEADER : prog.HEADER + min(n, prog.DNS_MAX)])
        ends = endpoints(rec) if question is not None else None
        if ends is None:
            return []
        name, qtype = question
        local, remote, lport, rport, _kind = ends
        task = self.procs.current(rec)
        process, user, group = self.procs.network_fields(task)
        # The process fields of linux_network_dns_lookup_result.yaml (no leaders there).
        process = {k: v for k, v in process.items() if k in _DNS_PROCESS}
        parent = process.pop("parent", {}).get("entity_id")
        if parent is not None:
            process["parent"] = {"entity_id": parent}
        doc = envelope(
            self.procs.host, DATASET, "network", "lookup_requested", _DNS_TYPES, event_id=event_id(),
            ts=timestamp(now_ns), message="Endpoint DNS event",
        )  # fmt: skip
        dns: dict = {"question": {"name": name}}
        if qtype in QTYPES:
            dns["question"]["type"] = QTYPES[qtype]
        doc["dns"] = dns
        doc["network"] = {"protocol": "dns", "transport": "udp"}
        doc["process"] = process
        doc["user"] = user
        doc["group"] = group
        source: dict = {}
        if local not in _ANY:  # an unconnected socket has no source address before routing
            source = {"address": local, "ip": local}
        if lport:
            source["port"] = lport
        if source:
            doc["source"] = source
        doc["destination"] = {"address": remote, "ip": remote, "port": rport}
        return [doc]

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
