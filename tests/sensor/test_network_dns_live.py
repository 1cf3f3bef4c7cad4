"""The eBPF sensor's network events against the real kernel (root; skipped where eBPF cannot
load): the local port of ``connection_attempted`` and DNS queries (``lookup_requested``).

Shapes: elastic/endpoint-package ``custom_documentation/src/endpoint/data_stream/network/linux/
linux_network_attempted_accepted_and_disconnect.yaml`` (connections) and
``.../linux_network_dns_lookup_result.yaml`` (DNS: ``lookup_requested`` and ``lookup_result``).
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import struct
import subprocess
import sys
import time

import pytest

from vigil.sensor.ecs import HostInfo, field_names
from vigil.sensor.network import dns_question

# The fields linux_network_dns_lookup_result.yaml lists (those this sensor can have).
DNS_FIELDS = {
    "@timestamp", "agent.id", "agent.type", "agent.version", "data_stream.dataset",
    "data_stream.namespace", "data_stream.type", "destination.address", "destination.ip",
    "destination.port", "dns.question.name", "dns.question.type", "dns.resolved_ip", "ecs.version",
    "elastic.agent.id", "event.action", "event.category", "event.created", "event.dataset",
    "event.id", "event.kind", "event.module", "event.outcome", "event.sequence", "event.type",
    "group.Ext.real.id", "group.Ext.real.name", "group.id", "group.name", "host.id", "host.name",
    "host.os.type", "message", "network.protocol", "network.transport", "process.Ext.ancestry",
    "process.command_line", "process.entity_id", "process.executable", "process.name",
    "process.parent.entity_id", "process.pid", "process.thread.capabilities.effective",
    "process.thread.capabilities.permitted", "source.address", "source.ip", "source.port",
    "user.Ext.real.id", "user.Ext.real.name", "user.id", "user.name",
}  # fmt: skip

# sendmmsg(2) from Python (the socket module has none): one buffer per message.
SENDMMSG = """
import ctypes, ctypes.util
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_char_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint), ("iov", ctypes.POINTER(iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
def sendmmsg(sock, payloads):
    iovs = [iovec(q, len(q)) for q in payloads]
    vec = (mmsghdr * len(payloads))()
    for i in range(len(payloads)):
        vec[i].hdr.iov = ctypes.pointer(iovs[i])
        vec[i].hdr.iovlen = 1
    return libc.sendmmsg(sock.fileno(), vec, len(payloads), 0)
"""


def query(name: bytes, qtype: int = 1, ident: int = 0x1234) -> bytes:
    """A DNS query (RD set) for the labels of ``name``."""
    labels = b"".join(bytes([len(x)]) + x for x in name.split(b".") if x)
    return struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", qtype, 1)


@pytest.fixture(scope="module")
def kernel():
    try:
        from vigil.sensor.ebpf import KernelSensor

        counter = itertools.count()
        sensor = KernelSensor(HostInfo.local(), lambda: f"t-{next(counter)}")
    except Exception as exc:  # noqa: BLE001 - any refusal is the reason to skip
        pytest.skip(f"eBPF sensor unavailable here: {str(exc).splitlines()[0] if str(exc) else exc}")
    sensor.already_running()
    yield sensor
    sensor.close()


def _collect(kernel, until, timeout: float = 30.0) -> list[dict]:
    docs: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        docs += kernel.poll()
        if until(docs):
            return docs + kernel.poll()
        time.sleep(0.01)
    return docs


def _run(code: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return proc.returncode, proc.stdout


def _ended(pid_box: list[int]):
    return lambda acc: any(d["event"]["action"] == "end" and d["process"]["pid"] in pid_box for d in acc)


# ----- connection_attempted: source.port


def test_connection_attempted_carries_the_local_port_the_kernel_picked(kernel):
    """The kernel picks the port after SYN_SENT: the attempt waits for it, keeps SYN_SENT's time,
    and still comes before what the process does next (here, a non-blocking connect, then exec)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: a connect to it is refused
    refused_port = closed.getsockname()[1]
    code = f"""
import os, socket
s = socket.create_connection(("127.0.0.1", {port}))
print(s.getsockname()[1], flush=True)
try:
    socket.create_connection(("127.0.0.1", {refused_port}))
except ConnectionRefusedError:
    pass
n = socket.socket()
n.setblocking(False)
try:
    n.connect(("127.0.0.1", {port}))
except BlockingIOError:
    pass
print(n.getsockname()[1], flush=True)
os.execv("/bin/true", ["/bin/true", "vigil-after-connect"])
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    out = proc.communicate(timeout=60)[0].split()
    server.close()
    closed.close()
    blocking, nonblocking = int(out[0]), int(out[1])
    docs = _collect(kernel, _ended([proc.pid]))
    mine = [d for d in docs if d["process"]["pid"] == proc.pid]
    attempts = [d for d in mine if d["event"]["action"] == "connection_attempted"]
    assert [a["destination"]["port"] for a in attempts] == [port, refused_port, port]
    assert attempts[0]["source"] == {"address": "127.0.0.1", "ip": "127.0.0.1", "port": blocking}
    assert attempts[2]["source"]["port"] == nonblocking
    assert attempts[1]["source"]["port"] > 0  # refused: the port from the socket's close
    # The non-blocking attempt comes before the exec that followed it, with an earlier time.
    true_exec = next(
        d for d in mine if d["event"]["action"] == "exec" and "vigil-after-connect" in d["process"]["args"]
    )
    assert mine.index(attempts[2]) < mine.index(true_exec)
    assert attempts[2]["@timestamp"] <= true_exec["@timestamp"]


def test_disconnect_of_a_connect_carries_the_local_port(kernel):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", f"import socket;s=socket.create_connection(('127.0.0.1',{port}));"
         "print(s.getsockname()[1],flush=True);s.close()"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    conn, _ = server.accept()
    local = int(proc.communicate(timeout=60)[0])
    conn.close()
    server.close()
    docs = _collect(
        kernel,
        lambda acc: any(
            d["event"]["action"] == "disconnect_received" and d["process"]["pid"] == proc.pid for d in acc
        ),
    )
    close = [
        d for d in docs if d["event"]["action"] == "disconnect_received" and d["process"]["pid"] == proc.pid
    ]
    assert close[0]["source"]["port"] == local and close[0]["destination"]["port"] == port


# ----- DNS: lookup_requested


def test_dns_queries_by_every_send_call_are_lookup_requested(kernel):
    """sendto, send on a connected socket, sendmsg, sendmmsg (glibc sends A and AAAA in one)
    and IPv6: one event per query, shaped as Defend's Linux DNS event."""
    # A local receiver on port 53 keeps the kernel from refusing later sends (ICMP unreachable).
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sink.bind(("127.0.0.77", 53))
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.77:53: {exc}")
    sink6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sink6.bind(("::1", 53))
    except OSError:
        sink6.close()
        sink6 = None
    code = (
        SENDMMSG
        + """
import socket, struct, sys
def query(name, qtype=1):
    labels = b"".join(bytes([len(x)]) + x for x in name.split(b".") if x)
    return struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + labels + b"\\0" + struct.pack(">HH", qtype, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(query(b"sendto.vigil.xyz"), ("127.0.0.77", 53))
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect(("127.0.0.77", 53))
c.send(query(b"send.vigil.xyz", 28))
c.sendmsg([query(b"sendmsg.vigil.xyz", 16)])
q = query(b"split-msg.vigil.xyz")
c.sendmsg([q[:2], q[2:13], q[13:]])  # a query over three buffers
u.sendmsg([query(b"sendmsg-to.vigil.xyz")], [], 0, ("127.0.0.77", 53))
m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
m.connect(("127.0.0.77", 53))
assert sendmmsg(m, [query(b"mmsg-a.vigil.xyz", 1), query(b"mmsg-aaaa.vigil.xyz", 28)]) == 2
if sys.argv[1] == "6":
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s6.sendto(query(b"six.vigil.xyz"), ("::1", 53))
u.sendto(query(b"not-dns.vigil.xyz"), ("127.0.0.77", 5353))
"""
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "6" if sink6 else "4"], capture_output=True, text=True, timeout=60
    )
    sink.close()
    if sink6:
        sink6.close()
    assert proc.returncode == 0, proc.stderr
    want = {"sendto", "send", "sendmsg", "split-msg", "sendmsg-to", "mmsg-a", "mmsg-aaaa"} | (
        {"six"} if sink6 else set()
    )
    docs = _collect(
        kernel,
        lambda acc: want <= {d.get("dns", {}).get("question", {}).get("name", "").split(".")[0] for d in acc},
    )
    dns = [d for d in docs if d["event"]["action"] == "lookup_requested"]
    by_name = {
        d["dns"]["question"]["name"]: d for d in dns if d["dns"]["question"]["name"].endswith(".vigil.xyz")
    }
    assert set(by_name) == {f"{w}.vigil.xyz" for w in want}  # not the datagram to port 5353
    types = {n.split(".")[0]: d["dns"]["question"].get("type") for n, d in by_name.items()}
    assert types["send"] == "AAAA" and types["sendmsg"] == "TXT" and types["mmsg-aaaa"] == "AAAA"
    assert types["sendto"] == "A"
    d = by_name["send.vigil.xyz"]
    assert d["event"]["category"] == ["network"] and d["event"]["dataset"] == "endpoint.events.network"
    assert d["network"] == {"protocol": "dns", "transport": "udp"}
    assert d["destination"] == {"address": "127.0.0.77", "ip": "127.0.0.77", "port": 53}
    assert d["source"]["ip"].startswith("127.") and d["source"]["port"] > 0  # connected: routed from lo
    assert by_name["sendto.vigil.xyz"]["source"]["port"] > 0
    assert d["process"]["executable"] == os.path.realpath(sys.executable)
    assert "args" not in d["process"]
    for doc in by_name.values():
        # host.* and agent.* are those of every event of this host (the envelope).
        own = {f for f in field_names(doc) if not f.startswith(("host.", "agent."))}
        assert own <= DNS_FIELDS, sorted(own - DNS_FIELDS)
    if sink6:
        assert by_name["six.vigil.xyz"]["destination"]["ip"] == "::1"
    assert kernel.stats.dropped == 0


def test_hostile_datagrams_to_port_53_never_stop_the_sensor(kernel):
    """Replies, cut names, pointer loops, over-long names and random bytes give no event; a
    name with bytes a shell or a query would misread is escaped as ECS asks (elastic/ecs
    schemas/dns.yml, dns.question.name); the query after them is seen."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sink.bind(("127.0.0.78", 53))
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.78:53: {exc}")
    rnd = random.Random(53)
    bad = [
        b"",
        b"\x12",
        query(b"reply.vigil.xyz")[:2] + b"\x81\x80" + query(b"reply.vigil.xyz")[4:],
        struct.pack(">HHHHHH", 1, 0x100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
        struct.pack(">HHHHHH", 1, 0x100, 1, 0, 0, 0) + b"\x3fabc",
        struct.pack(">HHHHHH", 1, 0x100, 1, 0, 0, 0) + (b"\x3f" + b"a" * 63) * 5 + b"\0\0\1\0\1",
        struct.pack(">HHHHHH", 1, 0x100, 0, 0, 0, 0) + b"\x01a\0\0\1\0\1",
        *(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 600))) for _ in range(200)),
        b"\xff" * 4000,
    ]
    odd = query(b'a\x00b.c\\d.e"f.\x7f.vigil.xyz')
    dotted = struct.pack(">HHHHHH", 9, 0x100, 1, 0, 0, 0) + b"\x03a.b\x05vigil\x03xyz\0\0\1\0\1"
    good = query(b"after-the-noise.vigil.xyz")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for payload in [*bad, odd, dotted, good]:
        s.sendto(payload, ("127.0.0.78", 53))
    s.close()
    sink.close()
    docs = _collect(
        kernel,
        lambda acc: any(
            d.get("dns", {}).get("question", {}).get("name") == "after-the-noise.vigil.xyz" for d in acc
        ),
    )
    names = [
        d["dns"]["question"]["name"] for d in docs if d.get("dns") and d["process"]["pid"] == os.getpid()
    ]
    assert names[-1] == "after-the-noise.vigil.xyz"
    assert 'a\\000b.c\\\\d.e\\"f.\\127.vigil.xyz' in names
    assert "a\\.b.vigil.xyz" in names
    # Random bytes can form a query by chance; none of the crafted bad ones does.
    assert not [n for n in names if "reply" in n or n.startswith("a" * 63)]


def test_dns_question_parser_is_bounded_on_any_bytes():
    """Unit: the parser returns a name or None for any input, never raises, never reads past it."""
    rnd = random.Random(7)
    assert dns_question(query(b"www.example.com", 28)) == ("www.example.com", 28)
    assert dns_question(query(b"x.y")[:-3]) is None  # type cut
    assert dns_question(query(b"")) == (".", 1)
    for _ in range(20000):
        data = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 80)))
        if rnd.random() < 0.5:
            data = query(b"seed.vigil.xyz")[:12] + data
        found = dns_question(data)
        assert found is None or (
            isinstance(found[0], str) and found[0].isprintable() and 0 <= found[1] < 65536
        )


def test_dns_queries_written_to_a_connected_socket(kernel, tmp_path):
    """write and writev on a connected UDP socket (Go's resolver, bash's /dev/udp) are queries
    too; the same bytes written to a file, a pipe or a TCP socket to port 53 are not."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sink.bind(("127.0.0.80", 53))
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.80:53: {exc}")
    tcp = socket.socket()
    tcp.bind(("127.0.0.80", 53))
    tcp.listen(1)
    code = f"""
import os, socket, struct
def query(name, qtype=1):
    labels = b"".join(bytes([len(x)]) + x for x in name.split(b".") if x)
    return struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + labels + b"\\0" + struct.pack(">HH", qtype, 1)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect(("127.0.0.80", 53))
os.write(c.fileno(), query(b"write.vigil.xyz"))
q = query(b"writev.vigil.xyz", 28)
os.writev(c.fileno(), [q])
q = query(b"split-writev.vigil.xyz")
os.writev(c.fileno(), [q[:3], q[3:]])
with open({str(tmp_path / "q.bin")!r}, "wb", buffering=0) as f:
    f.write(query(b"file.vigil.xyz"))
r, w = os.pipe()
os.write(w, query(b"pipe.vigil.xyz"))
t = socket.create_connection(("127.0.0.80", 53))
os.write(t.fileno(), query(b"tcp.vigil.xyz"))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    label = "\\x05bashq\\x05vigil\\x03xyz\\x00\\x00\\x01\\x00\\x01"
    bash = subprocess.run(
        ["bash", "-c", f"exec 3<>/dev/udp/127.0.0.80/53; printf '\\x00\\x07\\x01\\x00\\x00\\x01"
         f"\\x00\\x00\\x00\\x00\\x00\\x00{label}' >&3"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    sink.close()
    tcp.close()
    assert bash.returncode == 0, bash.stderr
    want = {"write.vigil.xyz", "writev.vigil.xyz", "split-writev.vigil.xyz", "bashq.vigil.xyz"}
    docs = _collect(
        kernel, lambda acc: want <= {d.get("dns", {}).get("question", {}).get("name") for d in acc}
    )
    names = {d["dns"]["question"]["name"]: d for d in docs if d.get("dns")}
    assert want <= set(names)
    assert not {"file.vigil.xyz", "pipe.vigil.xyz", "tcp.vigil.xyz"} & set(names)
    assert names["writev.vigil.xyz"]["dns"]["question"]["type"] == "AAAA"
    assert names["bashq.vigil.xyz"]["process"]["name"] == "bash"
    assert names["write.vigil.xyz"]["destination"] == {
        "address": "127.0.0.80",
        "ip": "127.0.0.80",
        "port": 53,
    }


def test_a_sendmmsg_of_more_queries_than_are_read_is_a_counted_loss(kernel):
    """The kernel reads MMSG_MAX datagrams of one sendmmsg; the rest, to port 53, are counted
    in a vigil.sensor.health event, never lost in silence."""
    from vigil.sensor.programs.sensor import MMSG_MAX

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sink.bind(("127.0.0.81", 53))
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.81:53: {exc}")
    n = MMSG_MAX + 3
    code = (
        SENDMMSG
        + f"""
import socket, struct
def query(name):
    labels = b"".join(bytes([len(x)]) + x for x in name.split(b"."))
    return struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + labels + b"\\0" + struct.pack(">HH", 1, 1)
m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
m.connect(("127.0.0.81", 53))
assert sendmmsg(m, [query(b"many%d.vigil.xyz" % i) for i in range({n})]) == {n}
"""
    )
    before = kernel.stats.dns_unread
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    sink.close()
    assert proc.returncode == 0, proc.stderr
    docs = _collect(kernel, lambda acc: any(d["event"]["dataset"] == "vigil.sensor.health" for d in acc))
    names = {d["dns"]["question"]["name"] for d in docs if d.get("dns")}
    assert {f"many{i}.vigil.xyz" for i in range(MMSG_MAX)} <= names
    assert not {f"many{i}.vigil.xyz" for i in range(MMSG_MAX, n)} & names
    health = [d for d in docs if d["event"]["dataset"] == "vigil.sensor.health"]
    assert health[-1]["vigil"]["sensor"]["lost"] == before + 3
    assert kernel.stats.dns_unread == before + 3


def test_programs_load_without_the_map_of_dns_senders(kernel):
    """Where that map cannot be made, write and writev are left out and the rest still loads."""
    from vigil.sensor import bpf
    from vigil.sensor.programs import sensor as prog

    offsets = prog.Offsets.from_btf(bpf.BTF())
    fds = [
        bpf.map_create(bpf.BPF_MAP_TYPE_ARRAY, 4, 16, 1, "t_counts"),
        bpf.map_create(bpf.BPF_MAP_TYPE_PERCPU_ARRAY, 4, prog.SCRATCH, 1, "t_scratch"),
    ]
    ring = bpf.RingBuffer(1 << 16, "t_ring")
    try:
        maps = prog.Maps(ring.fd, fds[1], fds[0])
        loaded = [name for name, _tp, code in prog.programs(offsets, maps, prog.SYSCALLS_X86_64)]
        for name, _tp, code in prog.programs(offsets, maps, prog.SYSCALLS_X86_64):
            fds.append(bpf.prog_load(code, prog.LICENSE, name))
        assert "vigil_sysexit" in loaded and "vigil_dnssend" not in loaded
    finally:
        for fd in fds:
            os.close(fd)
        ring.close()
