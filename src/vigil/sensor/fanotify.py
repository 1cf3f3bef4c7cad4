"""fanotify(7) through ctypes: a notification group, filesystem marks, and event parsing.

The group reports directory file handles plus names (FAN_REPORT_DFID_NAME, kernel >= 5.9)
so creations, renames and deletions carry the path of what changed; directory handles are
turned back into paths with open_by_handle_at(2), which needs an fd on the filesystem.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

# Event bits (linux/fanotify.h).
FAN_MODIFY = 0x2
FAN_CLOSE_WRITE = 0x8
FAN_MOVED_FROM = 0x40
FAN_MOVED_TO = 0x80
FAN_CREATE = 0x100
FAN_DELETE = 0x200
FAN_OPEN_EXEC = 0x1000
FAN_Q_OVERFLOW = 0x4000
FAN_RENAME = 0x10000000
FAN_ONDIR = 0x40000000

# fanotify_init flags.
FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_NOTIF = 0x0
FAN_REPORT_FID = 0x200
FAN_REPORT_DIR_FID = 0x400
FAN_REPORT_NAME = 0x800
FAN_REPORT_TARGET_FID = 0x1000
FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME

# fanotify_mark flags.
FAN_MARK_ADD = 0x1
FAN_MARK_FILESYSTEM = 0x100

# Info record types.
INFO_FID = 1
INFO_DFID_NAME = 2
INFO_DFID = 3
INFO_OLD_DFID_NAME = 10
INFO_NEW_DFID_NAME = 12

AT_FDCWD = -100
O_PATH = 0o10000000

_META = struct.Struct("=IBBHQii")
_INFO_HDR = struct.Struct("=BBH")
_FID_HEAD = struct.Struct("=iiIi")  # fsid[2], handle_bytes, handle_type

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
_libc.fanotify_init.restype = ctypes.c_int
_libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
_libc.fanotify_mark.restype = ctypes.c_int
_libc.open_by_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
_libc.open_by_handle_at.restype = ctypes.c_int


class SensorUnavailable(Exception):
    """fanotify cannot be used here; the message says what is missing, in one line."""


@dataclass(slots=True)
class FidRecord:
    kind: int  # INFO_* type
    fsid: tuple[int, int]
    handle: bytes  # struct file_handle as the kernel gave it (header + f_handle)
    name: str | None


@dataclass(slots=True)
class RawEvent:
    mask: int
    pid: int
    records: list[FidRecord] = field(default_factory=list)


def _explain(err: int, what: str) -> str:
    if err == errno.EPERM:
        return f"{what}: permission denied; vigil watch needs CAP_SYS_ADMIN (run as root)"
    if err == errno.EINVAL:
        return f"{what}: not supported by this kernel; vigil watch needs Linux >= 5.9 (FAN_REPORT_DFID_NAME)"
    if err == errno.ENOSYS:
        return f"{what}: this kernel has no fanotify (CONFIG_FANOTIFY)"
    return f"{what}: {os.strerror(err)}"


CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21


def has_capability(cap: int) -> bool:
    """Whether this process holds ``cap`` in its effective set (from /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> cap & 1)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


def check_available() -> None:
    """Raise SensorUnavailable, naming what is missing, unless fanotify can watch a filesystem.

    Since Linux 5.13 an unprivileged process may open a fanotify group, but filesystem
    marks (which see files created anywhere below a folder, even in folders made later)
    still need CAP_SYS_ADMIN: check that first so the message names it.
    """
    if not has_capability(CAP_SYS_ADMIN):
        raise SensorUnavailable(
            "missing CAP_SYS_ADMIN: fanotify filesystem marks need it (run as root, "
            "or give the service AmbientCapabilities=CAP_SYS_ADMIN)"
        )
    Group().close()


class Group:
    """One fanotify notification group in FID mode."""

    def __init__(self, *, target_fid: bool = True) -> None:
        flags = FAN_CLOEXEC | FAN_NONBLOCK | FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_REPORT_FID
        if target_fid:
            flags |= FAN_REPORT_TARGET_FID
        fd = _libc.fanotify_init(flags, os.O_RDONLY | os.O_CLOEXEC | os.O_LARGEFILE)
        if fd < 0 and target_fid and ctypes.get_errno() == errno.EINVAL:
            # FAN_REPORT_TARGET_FID (5.17) missing: renames come as MOVED_FROM/MOVED_TO.
            flags &= ~FAN_REPORT_TARGET_FID
            fd = _libc.fanotify_init(flags, os.O_RDONLY | os.O_CLOEXEC | os.O_LARGEFILE)
        if fd < 0:
            raise SensorUnavailable(_explain(ctypes.get_errno(), "fanotify_init"))
        self.fd = fd
        self.rename_events = bool(flags & FAN_REPORT_TARGET_FID)
        self.marked_mask = 0
        self._mount_fds: dict[tuple[int, int], int] = {}
        self._dir_cache: dict[tuple[tuple[int, int], bytes], str | None] = {}

    def mark_filesystem(self, path: str, mask: int) -> tuple[int, int]:
        """Mark the whole filesystem holding ``path``; returns its fsid."""
        target = os.fsencode(path)
        rc = -1
        # Older kernels refuse some bits: FAN_RENAME needs 5.17; where FAN_CLOSE_WRITE is
        # refused in FID mode, FAN_MODIFY stands in for it.
        for attempt in _fallbacks(mask):
            rc = _libc.fanotify_mark(self.fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, attempt, AT_FDCWD, target)
            if rc == 0:
                self.marked_mask = attempt
                break
            if ctypes.get_errno() != errno.EINVAL:
                break
        if rc < 0:
            raise SensorUnavailable(_explain(ctypes.get_errno(), f"fanotify_mark {path}"))
        fsid = fsid_of(path)
        if fsid not in self._mount_fds:
            self._mount_fds[fsid] = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return fsid

    def read(self, size: int = 1 << 16) -> list[RawEvent]:
        try:
            data = os.read(self.fd, size)
        except BlockingIOError:
            return []
        return list(parse(data))

    def dir_path(self, rec: FidRecord) -> str | None:
        """Path of the directory a handle names, or None when it is gone or unknown.

        Misses are cached too: on a busy filesystem most events name folders that were
        deleted since (temporary trees), and a handle never comes back once its folder is gone.
        """
        key = (rec.fsid, rec.handle)
        try:
            return self._dir_cache[key]
        except KeyError:
            pass
        path = self._open_dir(rec)
        if len(self._dir_cache) > 65536:
            self._dir_cache.clear()
        self._dir_cache[key] = path
        return path

    def _open_dir(self, rec: FidRecord) -> str | None:
        mount_fd = self._mount_fds.get(rec.fsid)
        if mount_fd is None:
            return None
        fd = _libc.open_by_handle_at(mount_fd, rec.handle, O_PATH | os.O_CLOEXEC)
        if fd < 0:
            return None
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        if path.endswith(" (deleted)"):
            return None
        return path

    def forget_dirs(self) -> None:
        """A directory moved: cached paths below it are stale."""
        self._dir_cache.clear()

    def close(self) -> None:
        for fd in self._mount_fds.values():
            os.close(fd)
        self._mount_fds.clear()
        os.close(self.fd)


def _fallbacks(mask: int) -> list[int]:
    out = [mask]
    if mask & FAN_RENAME:
        out.append(mask & ~FAN_RENAME | FAN_MOVED_FROM | FAN_MOVED_TO)
    if mask & FAN_CLOSE_WRITE:
        out += [m & ~FAN_CLOSE_WRITE | FAN_MODIFY for m in list(out)]
    return out


def fsid_of(path: str) -> tuple[int, int]:
    """The filesystem id statfs(2) reports, as fanotify puts it in events."""

    class _Statfs(ctypes.Structure):
        _fields_ = [
            ("f_type", ctypes.c_long),
            ("f_bsize", ctypes.c_long),
            ("f_blocks", ctypes.c_ulong),
            ("f_bfree", ctypes.c_ulong),
            ("f_bavail", ctypes.c_ulong),
            ("f_files", ctypes.c_ulong),
            ("f_ffree", ctypes.c_ulong),
            ("f_fsid", ctypes.c_int * 2),
            ("f_namelen", ctypes.c_long),
            ("f_frsize", ctypes.c_long),
            ("f_flags", ctypes.c_long),
            ("f_spare", ctypes.c_long * 4),
        ]

    buf = _Statfs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), path)
    return (buf.f_fsid[0], buf.f_fsid[1])


_NAMED = frozenset((INFO_DFID_NAME, INFO_OLD_DFID_NAME, INFO_NEW_DFID_NAME))
_FIDS = _NAMED | {INFO_FID, INFO_DFID}


def parse(data: bytes) -> Iterator[RawEvent]:
    """Split a read(2) buffer into events with their FID info records."""
    off = 0
    end = len(data)
    meta, info_hdr, fid_head = _META.unpack_from, _INFO_HDR.unpack_from, _FID_HEAD.unpack_from
    meta_size = _META.size
    while off + meta_size <= end:
        event_len, _vers, _res, meta_len, mask, fd, pid = meta(data, off)
        if event_len < meta_len or off + event_len > end:
            break
        if fd >= 0:
            os.close(fd)  # not expected in FID mode, never leak one
        records: list[FidRecord] = []
        pos = off + meta_len
        stop = off + event_len
        while pos + 4 <= stop:
            info_type, _pad, info_len = info_hdr(data, pos)
            if info_len == 0:
                break
            if info_type in _FIDS:
                f0, f1, hbytes, _htype = fid_head(data, pos + 4)
                hstart = pos + 12
                hend = hstart + 8 + hbytes
                name = None
                if info_type in _NAMED:
                    nul = data.find(b"\0", hend, pos + info_len)
                    name = os.fsdecode(data[hend : nul if nul >= 0 else pos + info_len])
                records.append(FidRecord(info_type, (f0, f1), data[hstart:hend], name))
            pos += info_len
        yield RawEvent(mask, pid, records)
        off += event_len
