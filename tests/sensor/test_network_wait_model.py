"""Network records without a kernel: a connect's attempt waits for its local port but never
past its process's next event nor past HOLD_NS, and DNS records become lookup_requested
(elastic/endpoint-package custom_documentation/src/endpoint/data_stream/network/linux/
linux_network_dns_lookup_result.yaml) or nothing when the datagram is not a query."""

from __future__ import annotations

import itertools
import socket
import struct
import time

from vigil.sensor.ebpf import KernelSensor
from vigil.sensor.ecs import HostInfo
from vigil.sensor.network import HOLD_NS
from vigil.sensor.programs import sensor as prog

PID = 4242


class _Ring:
    def __init__(self) -> None:
        self.records: list[bytes] = []

    def read(self, limit: int = 1 << 30) -> list[bytes]:
        out, self.records = self.records[:limit], self.records[limit:]
        return out

    def pending(self) -> int:
        return len(self.records)


class _Probes:
    def __init__(self) -> None:
        self.ring = _Ring()

    def counts(self) -> tuple[int, int]:
        return 0, 0

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


def _now() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def _record(
    kind: int, *, at: int, sk: int = 0xFFFF0001, sport: int = 0, dport: int = 80, payload=b""
) -> bytes:
    head = bytearray(prog.HEADER)
    struct.pack_into("<IIII", head, 0, kind, PID, PID, 1)
    struct.pack_into("<QQQ", head, prog.O_START, 10**9, 10**8, at)
    struct.pack_into("<HH", head, prog.O_FAMILY, socket.AF_INET, sport)
    struct.pack_into(">H", head, prog.O_DPORT, dport)
    head[prog.O_DADDR4 : prog.O_DADDR4 + 4] = socket.inet_aton("192.0.2.7")
    head[prog.O_SADDR4 : prog.O_SADDR4 + 4] = socket.inet_aton("192.0.2.1")
    struct.pack_into("<Q", head, prog.O_SK, sk)
    struct.pack_into("<I", head, prog.O_ARGLEN, len(payload))
    if kind == prog.EXEC:
        struct.pack_into("<III", head, prog.O_ARGLEN, 3, 0, 0)
        return bytes(head) + b"ls\0"
    return bytes(head) + payload


def _sensor() -> KernelSensor:
    counter = itertools.count()
    return KernelSensor(HostInfo.local(), lambda: f"m-{next(counter)}", probes=_Probes())


def _poll(sensor: KernelSensor, *records: bytes) -> list[dict]:
    sensor.probes.ring.records += records
    return sensor.poll()


def test_attempt_takes_the_port_of_connects_exit_and_keeps_syn_sents_time():
    s = _sensor()
    t = _now()
    assert _poll(s, _record(prog.CONNECT, at=t)) == []  # waits for its port
    [doc] = _poll(s, _record(prog.CONNECTED, at=t + 5000, sport=40000))
    assert doc["event"]["action"] == "connection_attempted"
    assert doc["source"]["port"] == 40000 and doc["destination"]["port"] == 80
    assert doc["@timestamp"] == _poll_ts(s, t)


def _poll_ts(s: KernelSensor, t: int) -> str:
    from vigil.sensor.ecs import timestamp

    return timestamp(s.procs.boot_ns + t)


def test_attempt_goes_before_the_next_event_of_its_process():
    s = _sensor()
    t = _now()
    docs = _poll(s, _record(prog.CONNECT, at=t), _record(prog.EXEC, at=t + 10))
    assert [d["event"]["action"] for d in docs] == ["connection_attempted", "exec"]
    assert "port" not in docs[0]["source"]
    # Its port, read later, changes nothing already sent.
    assert _poll(s, _record(prog.CONNECTED, at=t + 20, sport=40001)) == []


def test_attempt_waits_no_longer_than_hold_ns():
    s = _sensor()
    old = _now() - HOLD_NS - 1
    [doc] = _poll(s, _record(prog.CONNECT, at=old))
    assert doc["event"]["action"] == "connection_attempted" and "port" not in doc["source"]


def test_refused_attempt_takes_the_port_from_the_close():
    s = _sensor()
    t = _now()
    _poll(s, _record(prog.CONNECT, at=t))
    close = bytearray(_record(prog.CLOSE, at=t + 10))
    struct.pack_into(">H", close, prog.O_INET_SPORT, 40002)
    struct.pack_into("<II", close, prog.O_OLDSTATE, prog.TCP_SYN_SENT, prog.TCP_CLOSE)
    [doc] = _poll(s, bytes(close))
    assert doc["event"]["action"] == "connection_attempted" and doc["source"]["port"] == 40002


def _query(name: bytes, qtype: int = 1) -> bytes:
    labels = b"".join(bytes([len(x)]) + x for x in name.split(b"."))
    return struct.pack(">HHHHHH", 1, 0x100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", qtype, 1)


def test_dns_record_is_lookup_requested_and_a_reply_is_nothing():
    s = _sensor()
    t = _now()
    [doc] = _poll(s, _record(prog.DNS, at=t, sport=5353, dport=53, payload=_query(b"c2.example.xyz", 28)))
    assert doc["event"]["action"] == "lookup_requested"
    assert doc["event"]["type"] == ["protocol", "info"] and doc["event"]["category"] == ["network"]
    assert doc["dns"] == {"question": {"name": "c2.example.xyz", "type": "AAAA"}}
    assert doc["network"] == {"protocol": "dns", "transport": "udp"}
    assert doc["source"] == {"address": "192.0.2.1", "ip": "192.0.2.1", "port": 5353}
    assert doc["destination"] == {"address": "192.0.2.7", "ip": "192.0.2.7", "port": 53}
    reply = bytearray(_query(b"c2.example.xyz"))
    reply[2] |= 0x80
    assert _poll(s, _record(prog.DNS, at=t, dport=53, payload=bytes(reply))) == []
    # A length beyond what the record holds reads what is there.
    rec = bytearray(_record(prog.DNS, at=t, dport=53, payload=_query(b"a.b")))
    struct.pack_into("<I", rec, prog.O_ARGLEN, 1 << 30)
    [doc] = _poll(s, bytes(rec))
    assert doc["dns"]["question"]["name"] == "a.b"
