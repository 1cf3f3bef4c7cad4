"""eBPF from Python: the bpf(2) system call through ctypes, BTF offsets, the ring buffer.

No compiler and no libbpf: programs are assembled in Python (:mod:`vigil.sensor.programs`),
struct offsets come from the kernel's own BTF (``/sys/kernel/btf/vmlinux``), programs attach
to raw tracepoints (``BPF_RAW_TRACEPOINT_OPEN``, no tracefs needed), and records are read
from a ``BPF_MAP_TYPE_RINGBUF`` mapped into this process.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import struct

# bpf(2) commands and types (include/uapi/linux/bpf.h).
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_PROG_LOAD = 5
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_RINGBUF = 27
BPF_MAP_TYPE_LRU_HASH = 9
BPF_PROG_TYPE_RAW_TRACEPOINT = 17

_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class BPFUnavailable(Exception):
    """The kernel refused: no bpf(2), no privilege, or a program the verifier rejects."""


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    if _SYS_BPF is None:
        raise BPFUnavailable(f"bpf(2) is not wired for {platform.machine()}")
    ret = _libc.syscall(_SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _attr(fmt: str, *values) -> ctypes.Array:
    buf = ctypes.create_string_buffer(128)
    struct.pack_into(fmt, buf, 0, *values)
    return buf


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int, name: str) -> int:
    attr = _attr("=IIIIIII16s", map_type, key_size, value_size, max_entries, 0, 0, 0, name.encode()[:15])
    try:
        return _bpf(BPF_MAP_CREATE, attr)
    except OSError as exc:
        raise BPFUnavailable(f"cannot create BPF map {name}: {exc.strerror}") from None


def map_lookup(fd: int, key: int, value_size: int) -> bytes:
    k = ctypes.c_uint32(key)
    v = ctypes.create_string_buffer(value_size)
    attr = _attr("=IIQQQ", fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0)
    _bpf(BPF_MAP_LOOKUP_ELEM, attr)
    return v.raw


def prog_load(insns: bytes, license: str, name: str) -> int:
    """Load a raw-tracepoint program; the verifier's log is in the error when it refuses."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    for log_level in (0, 1):
        log = ctypes.create_string_buffer(1 << 20 if log_level else 1)
        attr = _attr(
            "=IIQQIIQII16s",
            BPF_PROG_TYPE_RAW_TRACEPOINT,
            len(insns) // 8,
            ctypes.addressof(code),
            ctypes.addressof(lic),
            log_level,
            len(log) if log_level else 0,
            ctypes.addressof(log) if log_level else 0,
            0,
            0,
            name.encode()[:15],
        )
        try:
            return _bpf(BPF_PROG_LOAD, attr)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOSYS) or log_level:
                text = log.value.decode(errors="replace")[-2000:] if log_level else ""
                raise BPFUnavailable(
                    f"cannot load BPF program {name}: {exc.strerror}\n{text}".rstrip()
                ) from None
    raise AssertionError("unreachable")


def raw_tracepoint_open(name: str, prog_fd: int) -> int:
    tp = ctypes.create_string_buffer(name.encode())
    attr = _attr("=QI", ctypes.addressof(tp), prog_fd)
    try:
        return _bpf(BPF_RAW_TRACEPOINT_OPEN, attr)
    except OSError as exc:
        raise BPFUnavailable(f"cannot attach to raw tracepoint {name}: {exc.strerror}") from None


# ---------------------------------------------------------------------------------------
# BTF: struct member offsets of the running kernel.

_KIND_STRUCT, _KIND_UNION = 4, 5
_SKIP = {1: 4, 3: 12, 14: 4, 17: 4}  # extra bytes after the common header, by kind
_PER_VLEN = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}
_QUALIFIERS = {7, 8, 9, 10, 11, 18}  # fwd, typedef, volatile, const, restrict, type_tag


class BTF:
    """Just enough of the kernel's BTF to find the byte offset of a (nested) struct member."""

    def __init__(self, path: str = "/sys/kernel/btf/vmlinux") -> None:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise BPFUnavailable(f"no kernel BTF ({path}): {exc.strerror}") from None
        magic, _ver, _flags, hdr_len, type_off, type_len, str_off, _str_len = struct.unpack_from(
            "<HBBIIIII", data
        )
        if magic != 0xEB9F:
            raise BPFUnavailable(f"{path} is not BTF")
        self._strs = data[hdr_len + str_off :]
        types = data[hdr_len + type_off : hdr_len + type_off + type_len]
        self.types: list[tuple] = [(0, 0, 0, [])]  # (kind, name_off, type_or_size, members)
        self.by_name: dict[tuple[int, str], int] = {}
        off = 0
        while off < len(types):
            name_off, info, size_type = struct.unpack_from("<III", types, off)
            off += 12
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            members: list = []
            if kind in (_KIND_STRUCT, _KIND_UNION):
                for i in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from("<III", types, off + 12 * i)
                    members.append((m_name, m_type, (m_off & 0xFFFFFF) if kflag else m_off))
            off += _SKIP.get(kind, 0) + _PER_VLEN.get(kind, 0) * vlen
            self.types.append((kind, name_off, size_type, members))
            if kind in (_KIND_STRUCT, _KIND_UNION, 8) and name_off:
                self.by_name.setdefault((kind, self._str(name_off)), len(self.types) - 1)

    def _str(self, off: int) -> str:
        end = self._strs.index(b"\0", off)
        return self._strs[off:end].decode()

    def _resolve(self, tid: int) -> int:
        for _ in range(32):
            kind, _name, ref, _m = self.types[tid]
            if kind not in _QUALIFIERS:
                return tid
            tid = ref
        return tid

    def _member(self, tid: int, name: str) -> tuple[int, int] | None:
        """(bit offset, type id) of ``name`` in struct/union ``tid``, looking into anonymous members."""
        for m_name, m_type, m_off in self.types[tid][3]:
            if m_name and self._str(m_name) == name:
                return m_off, m_type
            if not m_name:
                inner = self._resolve(m_type)
                if self.types[inner][0] in (_KIND_STRUCT, _KIND_UNION):
                    found = self._member(inner, name)
                    if found:
                        return m_off + found[0], found[1]
        return None

    def offset(self, struct_name: str, path: str) -> int:
        """Byte offset of ``path`` (``a.b.c``) in ``struct struct_name``."""
        tid = self.by_name.get((_KIND_STRUCT, struct_name))
        if tid is None:
            raise BPFUnavailable(f"kernel BTF has no struct {struct_name}")
        bits = 0
        for part in path.split("."):
            found = self._member(self._resolve(tid), part)
            if found is None:
                raise BPFUnavailable(f"kernel BTF: struct {struct_name} has no member {path}")
            bits += found[0]
            tid = found[1]
        if bits % 8:
            raise BPFUnavailable(f"kernel BTF: {struct_name}.{path} is a bit field")
        return bits // 8

    def has(self, struct_name: str, path: str) -> bool:
        try:
            self.offset(struct_name, path)
        except BPFUnavailable:
            return False
        return True


# ---------------------------------------------------------------------------------------
# Ring buffer.

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HDR = 8


class RingBuffer:
    """Consumer side of a BPF ring buffer map, mapped into this process."""

    def __init__(self, size: int, name: str = "vigil_events") -> None:
        self.size = size
        self.fd = map_create(BPF_MAP_TYPE_RINGBUF, 0, 0, size, name)
        page = mmap.PAGESIZE
        try:
            self._cons = mmap.mmap(self.fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
            self._prod = mmap.mmap(self.fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except OSError as exc:
            os.close(self.fd)
            raise BPFUnavailable(f"cannot map the BPF ring buffer: {exc.strerror}") from None
        self._page = page
        self._view = memoryview(self._prod)

    def fileno(self) -> int:
        return self.fd

    def read(self, limit: int = 1 << 30) -> list[bytes]:
        """Records written so far (each a copy), at most ``limit`` of them; they are consumed."""
        cons = struct.unpack_from("<Q", self._cons, 0)[0]
        prod = struct.unpack_from("<Q", self._prod, 0)[0]
        mask = self.size - 1
        base = self._page
        view = self._view
        out: list[bytes] = []
        while cons < prod and len(out) < limit:
            pos = base + (cons & mask)
            length = struct.unpack_from("<I", view, pos)[0]
            if length & _BUSY:
                break  # still being written
            size = length & ~(_BUSY | _DISCARD)
            if not length & _DISCARD:
                # Data is mapped twice back to back, so a record that wraps reads straight.
                out.append(bytes(view[pos + _HDR : pos + _HDR + size]))
            cons += (size + _HDR + 7) & ~7
        struct.pack_into("<Q", self._cons, 0, cons)
        return out

    def pending(self) -> int:
        """Bytes written by the kernel and not read yet."""
        return struct.unpack_from("<Q", self._prod, 0)[0] - struct.unpack_from("<Q", self._cons, 0)[0]

    def close(self) -> None:
        self._view.release()
        self._cons.close()
        self._prod.close()
        os.close(self.fd)


class Probes:
    """Vigil's programs loaded and attached, with their ring buffer and kernel-side counters."""

    def __init__(self, ring_size: int = 32 << 20) -> None:
        from vigil.sensor.programs import sensor as prog

        self._fds: list[int] = []
        offsets = prog.Offsets.from_btf(BTF())
        self.ring = RingBuffer(ring_size)
        try:
            self.counters = map_create(BPF_MAP_TYPE_ARRAY, 4, 16, 1, "vigil_counts")
            self._fds.append(self.counters)
            scratch = map_create(BPF_MAP_TYPE_PERCPU_ARRAY, 4, prog.SCRATCH, 1, "vigil_scratch")
            self._fds.append(scratch)
            senders = map_create(BPF_MAP_TYPE_LRU_HASH, 8, 8, 4096, "vigil_dns_send")
            self._fds.append(senders)
            maps = prog.Maps(self.ring.fd, scratch, self.counters, senders)
            syscalls = prog.SYSCALLS_X86_64 if platform.machine() == "x86_64" else None
            self.attached: list[str] = []
            for name, tracepoint, code in prog.programs(offsets, maps, syscalls):
                fd = prog_load(code, prog.LICENSE, name)
                self._fds.append(fd)
                try:
                    self._fds.append(raw_tracepoint_open(tracepoint, fd))
                except BPFUnavailable:
                    if tracepoint not in prog.OPTIONAL:
                        raise
                    continue  # an older kernel: what it gives is not seen, the rest is
                if tracepoint not in self.attached:
                    self.attached.append(tracepoint)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self.ring.fd

    def counts(self) -> tuple[int, int]:
        """(records dropped because the ring buffer was full, records sent), since loading."""
        raw = map_lookup(self.counters, 0, 16)
        dropped, sent = struct.unpack("<QQ", raw)
        return dropped, sent

    def close(self) -> None:
        for fd in reversed(self._fds):
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        self.ring.close()
