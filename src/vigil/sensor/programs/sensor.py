# SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only
# Vigil's eBPF programs and their assembler are dual licensed, "Dual BSD/GPL" (see LICENSE here).
"""Vigil's process and network eBPF programs, on raw tracepoints (no kprobes, no fentry).

Each program writes one record into a per-CPU scratch buffer, then copies it to the ring
buffer with ``bpf_ringbuf_output``; a failed copy (buffer full) is counted in the kernel,
in ``counters[0]``; records sent are counted in ``counters[1]``.

* ``sched_process_exec``: the new program: argv and environment (from the new ``mm``), the executable's path
  and the working directory (dentry walks, across mounts), credentials, pids, tty.
* ``sched_process_fork``: a new process (threads are skipped).
* ``sched_process_exit``: the last thread of a process exits (``signal->live == 0``).
* ``sys_exit`` (``raw_syscalls``): ``setsid``, the ``set*uid``/``set*gid`` family, ``accept``
  and ``accept4`` (the new socket through ``files->fdt->fd[ret]``).
* ``inet_sock_set_state``: a TCP socket enters ``SYN_SENT`` (connect, in the caller's context)
  or ``CLOSE``, or goes from ``SYN_SENT`` to ``ESTABLISHED`` (its local port is known by then).
* ``sys_exit`` again, for ``connect`` (a TCP socket whose local port the kernel picked after
  ``SYN_SENT``) and for ``sendto``, ``sendmsg`` and ``sendmmsg`` on a UDP socket to port 53:
  the start of each datagram (a DNS query, parsed in user space).
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.sensor.programs.asm import (
    FP,
    GET_CURRENT_PID_TGID,
    GET_CURRENT_TASK,
    KTIME_GET_BOOT_NS,
    MAP_DELETE_ELEM,
    MAP_LOOKUP_ELEM,
    MAP_UPDATE_ELEM,
    PROBE_READ_KERNEL,
    PROBE_READ_KERNEL_STR,
    PROBE_READ_USER,
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    R8,
    R9,
    RINGBUF_OUTPUT,
    Asm,
)

LICENSE = "Dual BSD/GPL"

# Record types.
EXEC, FORK, EXIT, SETSID, CREDS, ACCEPT, CONNECT, CLOSE = range(1, 9)
# CONNECTED: the local port of a socket seen at SYN_SENT (connect's exit, or ESTABLISHED);
# DNS: a datagram sent to port 53, its first DNS_MAX bytes after the header.
CONNECTED, DNS = 9, 10

# Record header layout (little-endian), then argv, executable path and cwd components.
O_TYPE, O_TGID, O_PID, O_PPID = 0, 4, 8, 12
O_START, O_PSTART, O_TIME = 16, 24, 32
O_CREDS = 40  # uid, gid, suid, sgid, euid, egid, fsuid, fsgid (u32 each)
O_CAP_PERM, O_CAP_EFF = 72, 80
O_PGID, O_SID = 88, 92
O_TTY_INDEX, O_TTY_MAJOR, O_TTY_MINOR = 96, 100, 104
O_NR, O_RET = 108, 112
O_ARGLEN, O_EXELEN, O_CWDLEN = 120, 124, 128
O_FAMILY, O_SPORT, O_DPORT, O_INET_SPORT = 132, 134, 136, 138
O_DADDR4, O_SADDR4, O_ENVLEN, O_DADDR6, O_SADDR6 = 140, 144, 148, 152, 168
O_SK, O_OLDSTATE, O_NEWSTATE = 184, 192, 196
HEADER = 200

ARGV_MAX = 4096
ENV_MAX = 4096
NAME_MAX = 256
LIMIT = 16384  # the running offset never passes this before a component is written
SCRATCH = LIMIT + NAME_MAX + 256
PATH_LEVELS = 24
DNS_MAX = 512  # bytes of a datagram to port 53 (a query's question fits: a name is at most 255)
IOV_MAX = 4  # buffers of one message gathered (up to DNS_MAX bytes in all)
MMSG_MAX = 8  # datagrams of one sendmmsg looked at (glibc sends A and AAAA queries in one)
DNS_PORT_RAW = 53 << 8  # port 53 in network byte order, read as a little-endian u16

# x86_64 system call numbers watched at exit.
SYSCALLS_X86_64 = {
    "setsid": 112,
    "setuid": 105,
    "setgid": 106,
    "setreuid": 113,
    "setregid": 114,
    "setresuid": 117,
    "setresgid": 119,
    "setfsuid": 122,
    "setfsgid": 123,
    "accept": 43,
    "accept4": 288,
    "connect": 42,
    "sendto": 44,
    "sendmsg": 46,
    "sendmmsg": 307,
    "write": 1,
    "writev": 20,
}
TCP_ESTABLISHED, TCP_SYN_SENT, TCP_CLOSE = 1, 2, 7
AF_INET, AF_INET6 = 2, 10
SOCK_STREAM, SOCK_DGRAM = 1, 2
S_IFMT, S_IFSOCK = 0o170000, 0o140000
DNS_MIN = 17  # the shortest query: header, a one-letter name, type and class
EINPROGRESS = 115
PIDTYPE_PGID, PIDTYPE_SID = 2, 3


@dataclass(frozen=True)
class Offsets:
    """Struct member offsets of the running kernel, from its BTF."""

    tgid: int
    pid: int
    real_parent: int
    group_leader: int
    start_boottime: int
    cred: int
    signal: int
    mm: int
    fs: int
    files: int
    exit_code: int
    cred_uid: int
    cap_permitted: int
    cap_effective: int
    sig_pids: int
    sig_live: int
    sig_tty: int
    pid_nr: int
    tty_index: int
    tty_driver: int
    drv_major: int
    drv_minor_start: int
    arg_start: int
    bprm_file: int
    file_path: int
    file_private: int
    fs_pwd: int
    path_dentry: int
    mount_mnt: int
    mount_parent: int
    mount_mountpoint: int
    vfsmount_root: int
    d_parent: int
    d_name: int
    fdt: int
    fdt_fd: int
    socket_sk: int
    skc_daddr: int
    skc_rcv_saddr: int
    skc_dport: int
    skc_num: int
    skc_family: int
    skc_v6_daddr: int
    skc_v6_rcv_saddr: int
    inet_sport: int
    regs_nr: int
    regs_di: int
    regs_si: int
    regs_dx: int
    regs_r8: int
    socket_type: int
    file_inode: int
    inode_mode: int
    sk_type: int  # -1: not a plain member on this kernel (no write/writev DNS)

    @classmethod
    def from_btf(cls, btf) -> Offsets:
        o = btf.offset
        return cls(
            tgid=o("task_struct", "tgid"),
            pid=o("task_struct", "pid"),
            real_parent=o("task_struct", "real_parent"),
            group_leader=o("task_struct", "group_leader"),
            start_boottime=o("task_struct", "start_boottime"),
            cred=o("task_struct", "cred"),
            signal=o("task_struct", "signal"),
            mm=o("task_struct", "mm"),
            fs=o("task_struct", "fs"),
            files=o("task_struct", "files"),
            exit_code=o("task_struct", "exit_code"),
            cred_uid=o("cred", "uid"),
            cap_permitted=o("cred", "cap_permitted"),
            cap_effective=o("cred", "cap_effective"),
            sig_pids=o("signal_struct", "pids"),
            sig_live=o("signal_struct", "live"),
            sig_tty=o("signal_struct", "tty"),
            pid_nr=o("pid", "numbers") + o("upid", "nr"),
            tty_index=o("tty_struct", "index"),
            tty_driver=o("tty_struct", "driver"),
            drv_major=o("tty_driver", "major"),
            drv_minor_start=o("tty_driver", "minor_start"),
            arg_start=o("mm_struct", "arg_start"),
            bprm_file=o("linux_binprm", "file"),
            file_path=o("file", "f_path"),
            file_private=o("file", "private_data"),
            fs_pwd=o("fs_struct", "pwd"),
            path_dentry=o("path", "dentry"),
            mount_mnt=o("mount", "mnt"),
            mount_parent=o("mount", "mnt_parent"),
            mount_mountpoint=o("mount", "mnt_mountpoint"),
            vfsmount_root=o("vfsmount", "mnt_root"),
            d_parent=o("dentry", "d_parent"),
            d_name=o("dentry", "d_name.name"),
            fdt=o("files_struct", "fdt"),
            fdt_fd=o("fdtable", "fd"),
            socket_sk=o("socket", "sk"),
            skc_daddr=o("sock_common", "skc_daddr"),
            skc_rcv_saddr=o("sock_common", "skc_rcv_saddr"),
            skc_dport=o("sock_common", "skc_dport"),
            skc_num=o("sock_common", "skc_num"),
            skc_family=o("sock_common", "skc_family"),
            skc_v6_daddr=o("sock_common", "skc_v6_daddr"),
            skc_v6_rcv_saddr=o("sock_common", "skc_v6_rcv_saddr"),
            inet_sport=o("inet_sock", "inet_sport"),
            regs_nr=o("pt_regs", "orig_ax"),
            regs_di=o("pt_regs", "di"),
            regs_si=o("pt_regs", "si"),
            regs_dx=o("pt_regs", "dx"),
            regs_r8=o("pt_regs", "r8"),
            socket_type=o("socket", "type"),
            file_inode=o("file", "f_inode"),
            inode_mode=o("inode", "i_mode"),
            sk_type=o("sock", "sk_type") if btf.has("sock", "sk_type") else -1,
        )


@dataclass(frozen=True)
class Maps:
    ringbuf: int
    scratch: int
    counters: int
    # Threads whose system call now running sent on a connected UDP socket to port 53
    # (pid_tgid -> 1, an LRU hash): only their write and writev are looked at.
    dns_senders: int = -1


class _Program(Asm):
    """Common pieces: scratch and counter lookups, kernel reads, the record header, output.

    Registers: r9 the scratch record, r8 the task, r7 the running record offset, r6 spare.
    """

    def __init__(self, off: Offsets, maps: Maps) -> None:
        super().__init__()
        self.o = off
        self.maps = maps

    def lookup(self, map_fd: int, fail: str) -> None:
        self.st(4, FP, -4, 0)
        self.ld_map(R1, map_fd)
        self.movr(R2, FP)
        self.alu("+", R2, -4)
        self.call(MAP_LOOKUP_ELEM)
        self.jmp("==", R0, 0, fail)

    def read(
        self, dst: int, dst_off: int, size: int, src: int, src_off: int, helper: int = PROBE_READ_KERNEL
    ) -> None:
        """``size`` bytes at kernel address ``src + src_off`` to ``dst + dst_off`` (zeros on a fault)."""
        self.movr(R3, src)
        self.alu("+", R3, src_off)
        self.movr(R1, dst)
        self.alu("+", R1, dst_off)
        self.mov(R2, size)
        self.call(helper)

    def load_ptr(self, dst: int, src: int, src_off: int) -> None:
        """``dst = *(u64 *)(src + src_off)`` read from the kernel (0 on a fault)."""
        self.read(FP, -8, 8, src, src_off)
        self.ldx(8, dst, FP, -8)

    def header(self, kind: int) -> None:
        o = self.o
        for i in range(0, HEADER, 8):
            self.st(8, R9, i, 0)
        self.st(4, R9, O_TYPE, kind)
        self.read(R9, O_TGID, 4, R8, o.tgid)
        self.read(R9, O_PID, 4, R8, o.pid)
        self.load_ptr(R6, R8, o.group_leader)
        self.read(R9, O_START, 8, R6, o.start_boottime)
        self.load_ptr(R6, R8, o.real_parent)
        self.read(R9, O_PPID, 4, R6, o.tgid)
        self.load_ptr(R6, R6, o.group_leader)
        self.read(R9, O_PSTART, 8, R6, o.start_boottime)
        self.call(KTIME_GET_BOOT_NS)
        self.stx(8, R9, O_TIME, R0)
        self.load_ptr(R6, R8, o.cred)
        self.read(R9, O_CREDS, 32, R6, o.cred_uid)
        self.read(R9, O_CAP_PERM, 8, R6, o.cap_permitted)
        self.read(R9, O_CAP_EFF, 8, R6, o.cap_effective)
        self.load_ptr(R7, R8, o.signal)
        self.load_ptr(R6, R7, o.sig_pids + 8 * PIDTYPE_PGID)
        self.read(R9, O_PGID, 4, R6, o.pid_nr)
        self.load_ptr(R6, R7, o.sig_pids + 8 * PIDTYPE_SID)
        self.read(R9, O_SID, 4, R6, o.pid_nr)
        self.load_ptr(R6, R7, o.sig_tty)
        no_tty = self.fresh("no_tty")
        self.jmp("==", R6, 0, no_tty)
        self.read(R9, O_TTY_INDEX, 4, R6, o.tty_index)
        self.load_ptr(R6, R6, o.tty_driver)
        self.read(R9, O_TTY_MAJOR, 4, R6, o.drv_major)
        self.read(R9, O_TTY_MINOR, 4, R6, o.drv_minor_start)
        self.label(no_tty)

    def span(self, length: int, start: int, start_slot: int, end_slot: int, cap: int, len_off: int) -> None:
        """``start`` and ``length`` (at most ``cap``, also stored at ``len_off``) of the user
        memory range whose bounds are on the stack."""
        ok = self.fresh("span_ok")
        self.ldx(8, start, FP, start_slot)
        self.ldx(8, length, FP, end_slot)
        self.alu("-", length, start, reg=True)
        self.jmp("<=", length, cap, ok)
        self.mov(length, cap)
        self.label(ok)
        self.stx(4, R9, len_off, length)

    def span_cap(self, length: int, cap: int) -> None:
        """``length`` (a register) at most ``cap``, unsigned: its bounds for the verifier."""
        ok = self.fresh("cap_ok")
        self.jmp("<=", length, cap, ok)
        self.mov(length, cap)
        self.label(ok)

    def sock(self, sk: int) -> None:
        """The addresses and ports of the ``struct sock`` in register ``sk`` (r6 or r7)."""
        o = self.o
        self.stx(8, R9, O_SK, sk)
        self.read(R9, O_FAMILY, 2, sk, o.skc_family)
        self.read(R9, O_SPORT, 2, sk, o.skc_num)
        self.read(R9, O_DPORT, 2, sk, o.skc_dport)
        # The local port again, as the socket sends from it: still there when a closing
        # socket has given its port back (skc_num is 0 then).
        self.read(R9, O_INET_SPORT, 2, sk, o.inet_sport)
        self.read(R9, O_DADDR4, 4, sk, o.skc_daddr)
        self.read(R9, O_SADDR4, 4, sk, o.skc_rcv_saddr)
        self.read(R9, O_DADDR6, 16, sk, o.skc_v6_daddr)
        self.read(R9, O_SADDR6, 16, sk, o.skc_v6_rcv_saddr)

    def socket_of(self, fd: int, sock_type: int) -> None:
        """r6 = the ``struct sock`` of file descriptor register ``fd`` (r7) of the current
        task (r8), through ``current->files->fdt->fd[fd]->private_data`` (a ``struct socket``:
        the file's inode is a socket's) when that socket's type is ``sock_type``; else the
        program ends."""
        o = self.o
        self.load_ptr(R6, R8, o.files)
        self.load_ptr(R6, R6, o.fdt)
        self.load_ptr(R6, R6, o.fdt_fd)
        self.alu("&", fd, 0xFFFFF)
        self.alu("<<", fd, 3)
        self.alu("+", R6, fd, reg=True)
        self.load_ptr(R6, R6, 0)
        self.jmp("==", R6, 0, "out")
        self.load_ptr(R1, R6, o.file_inode)
        self.read(FP, -16, 2, R1, o.inode_mode)
        self.ldx(2, R1, FP, -16)
        self.alu("&", R1, S_IFMT)
        self.jmp("!=", R1, S_IFSOCK, "out")
        self.load_ptr(R6, R6, o.file_private)
        self.jmp("==", R6, 0, "out")
        self.read(FP, -16, 2, R6, o.socket_type)
        self.ldx(2, R1, FP, -16)
        self.jmp("!=", R1, sock_type, "out")
        self.load_ptr(R6, R6, o.socket_sk)

    def walk(self, path_slot: int, len_off: int) -> None:
        """Components of the ``struct path`` whose address is on the stack at ``path_slot``,
        leaf first, each NUL-terminated, at the running offset r7; the byte count goes to
        ``len_off``. Crosses mount points up to the root of the mount tree."""
        o = self.o
        done = self.fresh("walk_done")
        self.stx(8, FP, -40, R7)  # where this path starts
        self.ldx(8, R6, FP, path_slot)
        self.jmp("==", R6, 0, done)
        self.load_ptr(R8, R6, o.path_dentry)  # dentry
        self.load_ptr(R6, R6, 0)  # vfsmount
        self.alu("-", R6, o.mount_mnt)  # struct mount
        for _ in range(PATH_LEVELS):
            nxt, not_root, skip = self.fresh("lvl"), self.fresh("not_root"), self.fresh("skip")
            self.jmp("==", R8, 0, done)
            self.load_ptr(R0, R6, o.mount_mnt + o.vfsmount_root)
            self.jmp("!=", R8, R0, not_root, reg=True)
            # The root of this mount: continue from where it is mounted.
            self.load_ptr(R0, R6, o.mount_parent)
            self.jmp("==", R0, R6, done, reg=True)
            self.stx(8, FP, -48, R0)
            self.load_ptr(R8, R6, o.mount_mountpoint)
            self.ldx(8, R6, FP, -48)
            self.ja(nxt)
            self.label(not_root)
            self.load_ptr(R0, R8, o.d_parent)
            self.jmp("==", R0, R8, done, reg=True)
            self.stx(8, FP, -48, R0)
            self.jmp(">", R7, LIMIT, done)
            self.load_ptr(R3, R8, o.d_name)
            self.movr(R1, R9)
            self.alu("+", R1, R7, reg=True)
            self.mov(R2, NAME_MAX)
            self.call(PROBE_READ_KERNEL_STR)
            self.jmp("s<", R0, 1, skip)
            self.jmp(">", R0, NAME_MAX, skip)
            self.alu("+", R7, R0, reg=True)
            self.label(skip)
            self.ldx(8, R8, FP, -48)
            self.label(nxt)
            # The same offset range on every path here, so the verifier prunes (no change: < 2**15).
            self.alu("&", R7, 0x7FFF)
        self.label(done)
        self.ldx(8, R0, FP, -40)
        self.movr(R1, R7)
        self.alu("-", R1, R0, reg=True)
        self.stx(4, R9, len_off, R1)

    def output(self, size_reg: int | None = None, after: str = "out") -> None:
        """Send the record (``size_reg`` bytes, else the header) and count it, or count the drop
        (then go on at ``after``)."""
        self.ld_map(R1, self.maps.ringbuf)
        self.movr(R2, R9)
        if size_reg is None:
            self.mov(R3, HEADER)
        else:
            self.movr(R3, size_reg)
        self.mov(R4, 0)
        self.call(RINGBUF_OUTPUT)
        self.movr(R6, R0)
        self.lookup(self.maps.counters, after)
        self.mov(R1, 1)
        sent = self.fresh("sent")
        self.jmp("==", R6, 0, sent)
        self.atomic_add(R0, 0, R1)
        self.ja(after)
        self.label(sent)
        self.atomic_add(R0, 8, R1)

    def begin(self, kind: int) -> None:
        """The scratch record in r9, the current task in r8, and the record's header."""
        self.lookup(self.maps.scratch, "out")
        self.movr(R9, R0)
        self.call(GET_CURRENT_TASK)
        self.movr(R8, R0)
        self.header(kind)

    def start(self, kind: int) -> None:
        """Scratch record in r9 (r6 keeps the context in the stack at -32)."""
        self.stx(8, FP, -32, R1)
        self.lookup(self.maps.scratch, "out")
        self.movr(R9, R0)

    def finish(self) -> bytes:
        self.label("out")
        self.mov(R0, 0)
        self.exit()
        return self.assemble()


def exec_program(off: Offsets, maps: Maps) -> bytes:
    p = _Program(off, maps)
    p.start(EXEC)
    p.ldx(8, R6, FP, -32)
    p.ldx(8, R6, R6, 16)  # args[2]: struct linux_binprm *
    p.load_ptr(R6, R6, off.bprm_file)
    p.alu("+", R6, off.file_path)
    p.stx(8, FP, -56, R6)
    p.call(GET_CURRENT_TASK)
    p.movr(R8, R0)
    p.header(EXEC)
    p.load_ptr(R6, R8, off.fs)
    p.jmp("==", R6, 0, "no_fs")
    p.alu("+", R6, off.fs_pwd)
    p.label("no_fs")
    p.stx(8, FP, -64, R6)
    # argv: mm->arg_start .. arg_end, capped; then the environment, env_start .. env_end.
    p.load_ptr(R6, R8, off.mm)
    p.read(FP, -120, 32, R6, off.arg_start)
    p.span(R7, R6, -120, -112, ARGV_MAX, O_ARGLEN)
    p.movr(R3, R6)
    p.movr(R1, R9)
    p.alu("+", R1, HEADER)
    p.movr(R2, R7)
    p.call(PROBE_READ_USER)
    p.alu("+", R7, HEADER)
    p.span(R1, R6, -104, -96, ENV_MAX, O_ENVLEN)
    p.stx(8, FP, -88, R1)
    p.movr(R3, R6)
    p.movr(R2, R1)
    p.movr(R1, R9)
    p.alu("+", R1, R7, reg=True)
    p.call(PROBE_READ_USER)
    p.ldx(8, R1, FP, -88)
    p.alu("+", R7, R1, reg=True)
    p.walk(-56, O_EXELEN)
    p.walk(-64, O_CWDLEN)
    p.output(R7)
    return p.finish()


def fork_program(off: Offsets, maps: Maps) -> bytes:
    p = _Program(off, maps)
    p.start(FORK)
    p.ldx(8, R8, FP, -32)
    p.ldx(8, R8, R8, 8)  # args[1]: the child
    p.header(FORK)
    p.ldx(4, R1, R9, O_PID)
    p.ldx(4, R2, R9, O_TGID)
    p.jmp("!=", R1, R2, "out", reg=True)  # a new thread, not a process
    p.output()
    return p.finish()


def exit_program(off: Offsets, maps: Maps) -> bytes:
    p = _Program(off, maps)
    p.start(EXIT)
    p.call(GET_CURRENT_TASK)
    p.movr(R8, R0)
    p.load_ptr(R6, R8, off.signal)
    p.read(FP, -16, 4, R6, off.sig_live)
    p.ldx(4, R1, FP, -16)
    p.jmp("!=", R1, 0, "out")  # other threads still run
    p.header(EXIT)
    p.read(R9, O_RET, 4, R8, off.exit_code)
    p.output()
    return p.finish()


def syscall_exit_program(off: Offsets, maps: Maps, syscalls: dict[str, int]) -> bytes:
    p = _Program(off, maps)
    # The filter comes first: this runs at every system call's exit.
    p.ldx(8, R6, R1, 0)  # args[0]: struct pt_regs *
    p.ldx(8, R7, R1, 8)  # args[1]: the return value
    p.stx(8, FP, -104, R6)
    p.read(FP, -16, 8, R6, off.regs_nr)
    p.ldx(8, R6, FP, -16)
    p.jmp("==", R6, syscalls["connect"], "connect")
    p.jmp("==", R6, syscalls["setsid"], "setsid")
    for name in ("accept", "accept4"):
        p.jmp("==", R6, syscalls[name], "accept")
    for name in ("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid"):
        p.jmp("==", R6, syscalls[name], "creds")
    for name in ("setfsuid", "setfsgid"):
        p.jmp("==", R6, syscalls[name], "creds_any")
    p.movr(R1, R6)
    p.ldx(8, R6, FP, -104)
    _dns(p, syscalls)  # the calls that send datagrams: R1 the number, R6 the registers, R7 ret
    p.label("creds")
    p.jmp("!=", R7, 0, "out")
    p.label("creds_any")
    p.mov(R8, CREDS)
    p.ja("go")
    p.label("setsid")
    p.jmp("s<", R7, 0, "out")
    p.mov(R8, SETSID)
    p.ja("go")
    p.label("connect")
    # A TCP connect has picked its local port by its exit: done (0) or under way (EINPROGRESS).
    p.jmp("==", R7, 0, "connect_ok")
    p.jmp("!=", R7, -EINPROGRESS, "out")
    p.label("connect_ok")
    p.mov(R8, CONNECTED)
    p.ja("go")
    p.label("accept")
    p.jmp("s<", R7, 0, "out")
    p.mov(R8, ACCEPT)
    p.label("go")
    p.stx(8, FP, -72, R8)  # kind
    p.stx(8, FP, -80, R7)  # ret
    p.stx(8, FP, -88, R6)  # nr
    p.begin(0)
    p.ldx(8, R1, FP, -72)
    p.stx(4, R9, O_TYPE, R1)
    p.ldx(8, R1, FP, -80)
    p.stx(8, R9, O_RET, R1)
    p.ldx(8, R1, FP, -88)
    p.stx(4, R9, O_NR, R1)
    p.ldx(8, R1, FP, -72)
    p.jmp("==", R1, ACCEPT, "accept_fd")
    p.jmp("!=", R1, CONNECTED, "send")
    p.ldx(8, R6, FP, -104)
    p.load_ptr(R7, R6, off.regs_di)  # connect's socket: its first argument
    p.ja("fd")
    p.label("accept_fd")
    p.ldx(8, R7, FP, -80)  # accept's socket: what it returned
    p.label("fd")
    # TCP only: a stream socket of the Internet families (connects of UDP and Unix sockets
    # are many and say nothing here).
    p.socket_of(R7, SOCK_STREAM)
    p.sock(R6)
    p.ldx(2, R1, R9, O_FAMILY)
    p.jmp("==", R1, AF_INET, "send")
    p.jmp("!=", R1, AF_INET6, "out")
    p.label("send")
    p.output()
    return p.finish()


def sock_state_program(off: Offsets, maps: Maps) -> bytes:
    p = _Program(off, maps)
    p.ldx(8, R6, R1, 0)  # args[0]: struct sock *
    p.ldx(8, R7, R1, 16)  # args[2]: the new state
    p.ldx(8, R1, R1, 8)  # args[1]: the old state
    p.stx(8, FP, -72, R1)
    p.alu("&", R7, 0xFF)
    p.jmp("==", R7, TCP_SYN_SENT, "go")
    p.jmp("==", R7, TCP_CLOSE, "go")
    p.jmp("!=", R7, TCP_ESTABLISHED, "out")
    p.jmp("!=", R1, TCP_SYN_SENT, "out")  # a connect's handshake done (not an accept's)
    p.label("go")
    p.stx(8, FP, -80, R7)
    p.stx(8, FP, -88, R6)
    p.begin(CONNECT)
    p.ldx(8, R7, FP, -80)
    p.stx(4, R9, O_NEWSTATE, R7)
    p.ldx(8, R1, FP, -72)
    p.stx(4, R9, O_OLDSTATE, R1)
    p.jmp("==", R7, TCP_SYN_SENT, "connect")
    p.st(4, R9, O_TYPE, CLOSE)
    p.jmp("==", R7, TCP_CLOSE, "connect")
    p.st(4, R9, O_TYPE, CONNECTED)
    p.label("connect")
    p.ldx(8, R6, FP, -88)
    p.sock(R6)
    p.output()
    return p.finish()


def _dns(p: _Program, syscalls: dict[str, int]) -> None:
    """Part of the ``sys_exit`` program (one program per system call's exit costs less than
    two), entered with r1 the call's number, r6 its registers and r7 its return value; ends at
    ``out``. At the exit of ``sendto``, ``sendmsg``, ``sendmmsg``, ``write`` and ``writev`` that sent
    on a UDP socket: each datagram to port 53 (the address given, else the connected peer), up
    to ``MMSG_MAX`` of one ``sendmmsg``, with its first ``DNS_MAX`` bytes (the first buffer of
    a message). The datagram's bytes are only copied here; user space parses them, bounded.
    ``write`` and ``writev`` are many: only those of a query's size whose first bytes read as
    a standard query with one question go on to look at the file.

    Stack: -72 the call (0 sendto, 1 sendmsg, 2 sendmmsg, 3 write, 4 writev), -80 its return
    value, -88 the sock, -104 the registers, -112 the address, -120 the buffer, -128 its
    length, -160 a msghdr, -176 an iovec, -208 a sockaddr, -216 a query's first bytes, -224
    an iovec array, -232 its length (0: the buffer at -120)."""
    off = p.o
    # write and writev only with the map of threads that sent to port 53 (sock_send_length).
    writes = p.maps.dns_senders >= 0
    calls = ("sendto", "sendmsg", "sendmmsg") + (("write", "writev") if writes else ())
    for kind, name in enumerate(calls):
        p.mov(R2, kind)
        p.jmp("==", R1, syscalls[name], "dns_send")
    p.ja("out")
    p.label("dns_send")
    p.jmp("s<", R7, 1, "out")  # nothing sent
    p.stx(8, FP, -72, R2)
    p.stx(8, FP, -80, R7)
    p.stx(8, FP, -104, R6)
    if writes:
        p.jmp("<", R2, 3, "dns_sent")
        _written(p)
    p.label("dns_sent")
    p.begin(DNS)
    p.ldx(8, R6, FP, -104)
    p.load_ptr(R7, R6, off.regs_di)
    p.socket_of(R7, SOCK_DGRAM)
    p.stx(8, FP, -88, R6)
    p.ldx(8, R6, FP, -104)
    p.ldx(8, R1, FP, -72)
    p.jmp("==", R1, 1, "dns_sendmsg")
    p.jmp("==", R1, 2, "dns_sendmmsg")
    if writes:
        p.jmp(">=", R1, 3, "dns_written_out")
    # sendto(fd, buf, len, flags, dest_addr, addrlen)
    p.st(8, FP, -232, 0)
    p.load_ptr(R1, R6, off.regs_r8)
    p.stx(8, FP, -112, R1)
    p.load_ptr(R1, R6, off.regs_si)
    p.stx(8, FP, -120, R1)
    p.load_ptr(R1, R6, off.regs_dx)
    p.stx(8, FP, -128, R1)
    _datagram(p, "out")
    p.ja("out")
    if writes:
        p.label("dns_written_out")  # write or writev: the buffers are set, no address
        _datagram(p, "out")
        p.ja("out")
    # sendmsg(fd, msg, flags)
    p.label("dns_sendmsg")
    p.load_ptr(R7, R6, off.regs_si)
    _msghdr(p, R7)
    _datagram(p, "out")
    p.ja("out")
    # sendmmsg(fd, msgvec, vlen, flags): struct mmsghdr is 64 bytes, its msghdr first.
    p.label("dns_sendmmsg")
    for i in range(MMSG_MAX):
        p.ldx(8, R1, FP, -80)
        p.jmp("<=", R1, i, "out")
        p.ldx(8, R6, FP, -104)
        p.load_ptr(R7, R6, off.regs_si)
        p.alu("+", R7, 64 * i)
        _msghdr(p, R7)
        nxt = p.fresh("mmsg")
        _datagram(p, nxt)
        p.label(nxt)
    # More datagrams than were looked at, on a socket connected to port 53: a record without
    # a datagram that says how many were not read (never a silent loss).
    p.ldx(8, R7, FP, -80)
    p.jmp("<=", R7, MMSG_MAX, "out")
    p.ldx(8, R6, FP, -88)
    p.sock(R6)
    p.ldx(2, R1, R9, O_DPORT)
    p.jmp("!=", R1, DNS_PORT_RAW, "out")
    p.alu("-", R7, MMSG_MAX)
    p.stx(8, R9, O_RET, R7)
    p.st(4, R9, O_ARGLEN, 0)
    p.output()


def _written(p: _Program) -> None:
    """The part of :func:`_dns` for ``write`` (kind 3) and ``writev`` (4), r2 the kind, r7
    what was written: on to ``dns_sent`` with the buffers set, or ``out``."""
    off = p.o
    # write(fd, buf, count) or writev(fd, iov, iovcnt): a query's size, by a thread that has
    # just sent on a UDP socket connected to port 53 (sock_send_length), a query's header.
    p.jmp("<", R7, DNS_MIN, "out")
    p.jmp(">", R7, DNS_MAX, "out")
    p.call(GET_CURRENT_PID_TGID)
    p.stx(8, FP, -216, R0)
    p.ld_map(R1, p.maps.dns_senders)
    p.movr(R2, FP)
    p.alu("+", R2, -216)
    p.call(MAP_LOOKUP_ELEM)
    p.jmp("==", R0, 0, "out")
    p.ld_map(R1, p.maps.dns_senders)
    p.movr(R2, FP)
    p.alu("+", R2, -216)
    p.call(MAP_DELETE_ELEM)
    p.ldx(8, R6, FP, -104)
    p.ldx(8, R7, FP, -80)
    p.st(8, FP, -112, 0)
    p.st(8, FP, -232, 0)
    p.load_ptr(R1, R6, off.regs_si)
    p.stx(8, FP, -120, R1)
    p.stx(8, FP, -128, R7)
    p.ldx(8, R2, FP, -72)
    p.jmp("==", R2, 3, "dns_written")
    # writev: its buffers (a query may be split over them), no look at the bytes here.
    p.stx(8, FP, -224, R1)
    p.ldx(8, R6, FP, -104)
    p.load_ptr(R1, R6, off.regs_dx)
    p.stx(8, FP, -232, R1)
    p.ja("dns_sent")
    p.label("dns_written")
    p.ldx(8, R1, FP, -120)
    p.read(FP, -216, 8, R1, 0, PROBE_READ_USER)
    p.ldx(1, R1, FP, -214)
    p.jmp("&", R1, 0xF8, "out")  # QR (a reply) or an opcode other than QUERY
    p.ldx(2, R1, FP, -212)
    p.jmp("!=", R1, 1 << 8, "out")  # QDCOUNT 1, big-endian


def _msghdr(p: _Program, msg: int) -> None:
    """The address, buffers and their number of the user ``struct user_msghdr`` at register
    ``msg`` (name at 0, iov at 16, iovlen at 24) into -112, -224 and -232."""
    p.read(FP, -160, 32, msg, 0, PROBE_READ_USER)
    p.ldx(8, R1, FP, -160)
    p.stx(8, FP, -112, R1)
    p.ldx(8, R1, FP, -144)  # msg_iov
    p.stx(8, FP, -224, R1)
    p.ldx(8, R1, FP, -136)  # msg_iovlen
    p.stx(8, FP, -232, R1)


def _payload(p: _Program) -> None:
    """The datagram's bytes after the header, ``DNS_MAX`` at most: the buffer at -120 of
    length -128, or (-232 not 0) the first ``IOV_MAX`` of the -232 buffers of the iovec array
    at -224, one after the other. r7 ends as their length (also at ``O_ARGLEN``)."""
    done, gather = p.fresh("payload_done"), p.fresh("gather")
    p.mov(R7, 0)
    p.ldx(8, R1, FP, -232)
    p.jmp("!=", R1, 0, gather)
    p.ldx(8, R8, FP, -128)
    p.span_cap(R8, DNS_MAX)
    p.ldx(8, R3, FP, -120)
    p.movr(R1, R9)
    p.alu("+", R1, HEADER)
    p.movr(R2, R8)
    p.call(PROBE_READ_USER)
    p.movr(R7, R8)
    p.ja(done)
    p.label(gather)
    for i in range(IOV_MAX):
        p.ldx(8, R1, FP, -232)
        p.jmp("<=", R1, i, done)
        p.ldx(8, R3, FP, -224)
        p.read(FP, -176, 16, R3, 16 * i, PROBE_READ_USER)
        p.ldx(8, R8, FP, -168)
        room = p.fresh("room")
        p.mov(R1, DNS_MAX)
        p.alu("-", R1, R7, reg=True)
        p.jmp("<=", R8, R1, room, reg=True)
        p.movr(R8, R1)
        p.label(room)
        p.span_cap(R8, DNS_MAX)
        p.ldx(8, R3, FP, -176)
        p.movr(R1, R9)
        p.alu("+", R1, HEADER)
        p.alu("+", R1, R7, reg=True)
        p.movr(R2, R8)
        p.call(PROBE_READ_USER)
        p.alu("+", R7, R8, reg=True)
        p.span_cap(R7, DNS_MAX)
    p.label(done)
    p.stx(4, R9, O_ARGLEN, R7)


def _datagram(p: _Program, skip: str) -> None:
    """One datagram (address -112, its bytes as :func:`_payload` reads them): its record when
    it goes to port 53 of an Internet address, else on to ``skip``."""
    p.ldx(8, R6, FP, -88)
    p.sock(R6)  # the connected peer, the local address and port
    named = p.fresh("named")
    p.ldx(8, R7, FP, -112)
    p.jmp("==", R7, 0, named)
    p.read(FP, -208, 28, R7, 0, PROBE_READ_USER)  # sockaddr_in or sockaddr_in6
    p.ldx(2, R1, FP, -208)
    p.stx(2, R9, O_FAMILY, R1)
    p.ldx(2, R2, FP, -206)
    p.stx(2, R9, O_DPORT, R2)
    v6 = p.fresh("v6")
    p.jmp("==", R1, AF_INET6, v6)
    p.jmp("!=", R1, AF_INET, skip)
    p.ldx(4, R2, FP, -204)
    p.stx(4, R9, O_DADDR4, R2)
    p.ja(named)
    p.label(v6)
    p.ldx(8, R2, FP, -200)
    p.stx(8, R9, O_DADDR6, R2)
    p.ldx(8, R2, FP, -192)
    p.stx(8, R9, O_DADDR6 + 8, R2)
    p.label(named)
    p.ldx(2, R1, R9, O_DPORT)
    p.jmp("!=", R1, DNS_PORT_RAW, skip)
    p.ldx(2, R1, R9, O_FAMILY)
    inet = p.fresh("inet")
    p.jmp("==", R1, AF_INET, inet)
    p.jmp("!=", R1, AF_INET6, skip)
    p.label(inet)
    _payload(p)
    p.alu("+", R7, HEADER)
    p.output(R7, after=skip)


def send_length_program(off: Offsets, maps: Maps) -> bytes:
    """``sock_send_length`` (a socket's send, in the sending thread): a datagram socket
    connected to port 53 sent; marks the thread for its ``write``/``writev`` exit, so those
    many calls cost a map lookup, not a read of their buffer."""
    p = _Program(off, maps)
    p.ldx(8, R6, R1, 0)  # args[0]: struct sock *
    p.ldx(8, R7, R1, 8)  # args[1]: what was sent, or an error
    p.alu("<<", R7, 32)
    p.alu(">>", R7, 32)  # an int
    p.jmp("&", R7, 1 << 31, "out")
    p.jmp("==", R7, 0, "out")
    p.read(FP, -16, 2, R6, off.skc_dport)
    p.ldx(2, R1, FP, -16)
    p.jmp("!=", R1, DNS_PORT_RAW, "out")
    p.read(FP, -16, 2, R6, off.sk_type)
    p.ldx(2, R1, FP, -16)
    p.jmp("!=", R1, SOCK_DGRAM, "out")
    p.call(GET_CURRENT_PID_TGID)
    p.stx(8, FP, -8, R0)
    p.st(8, FP, -16, 1)
    p.ld_map(R1, maps.dns_senders)
    p.movr(R2, FP)
    p.alu("+", R2, -8)
    p.movr(R3, FP)
    p.alu("+", R3, -16)
    p.mov(R4, 0)
    p.call(MAP_UPDATE_ELEM)
    return p.finish()


# Programs whose tracepoint an older kernel may lack: not attached there, the rest still is.
OPTIONAL = {"sock_send_length"}


def programs(off: Offsets, maps: Maps, syscalls: dict[str, int] | None) -> list[tuple[str, str, bytes]]:
    """(name, raw tracepoint, instructions) of every program; no syscall program without numbers."""
    out = [
        ("vigil_exec", "sched_process_exec", exec_program(off, maps)),
        ("vigil_fork", "sched_process_fork", fork_program(off, maps)),
        ("vigil_exit", "sched_process_exit", exit_program(off, maps)),
        ("vigil_sock", "inet_sock_set_state", sock_state_program(off, maps)),
    ]
    if syscalls and maps.dns_senders >= 0 and off.sk_type >= 0:
        out.append(("vigil_dnssend", "sock_send_length", send_length_program(off, maps)))
    if syscalls:
        out.append(("vigil_sysexit", "sys_exit", syscall_exit_program(off, maps, syscalls)))
    return out
