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
  or ``CLOSE``.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.sensor.programs.asm import (
    FP,
    GET_CURRENT_TASK,
    KTIME_GET_BOOT_NS,
    MAP_LOOKUP_ELEM,
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

# Record header layout (little-endian), then argv, executable path and cwd components.
O_TYPE, O_TGID, O_PID, O_PPID = 0, 4, 8, 12
O_START, O_PSTART, O_TIME = 16, 24, 32
O_CREDS = 40  # uid, gid, suid, sgid, euid, egid, fsuid, fsgid (u32 each)
O_CAP_PERM, O_CAP_EFF = 72, 80
O_PGID, O_SID = 88, 92
O_TTY_INDEX, O_TTY_MAJOR, O_TTY_MINOR = 96, 100, 104
O_NR, O_RET = 108, 112
O_ARGLEN, O_EXELEN, O_CWDLEN = 120, 124, 128
O_FAMILY, O_SPORT, O_DPORT = 132, 134, 136
O_DADDR4, O_SADDR4, O_ENVLEN, O_DADDR6, O_SADDR6 = 140, 144, 148, 152, 168
O_SK, O_OLDSTATE, O_NEWSTATE = 184, 192, 196
HEADER = 200

ARGV_MAX = 4096
ENV_MAX = 4096
NAME_MAX = 256
LIMIT = 16384  # the running offset never passes this before a component is written
SCRATCH = LIMIT + NAME_MAX + 256
PATH_LEVELS = 24

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
}
TCP_SYN_SENT, TCP_CLOSE = 2, 7
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
    regs_nr: int

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
            regs_nr=o("pt_regs", "orig_ax"),
        )


@dataclass(frozen=True)
class Maps:
    ringbuf: int
    scratch: int
    counters: int


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

    def sock(self, sk: int) -> None:
        """The addresses and ports of the ``struct sock`` in register ``sk`` (r6 or r7)."""
        o = self.o
        self.stx(8, R9, O_SK, sk)
        self.read(R9, O_FAMILY, 2, sk, o.skc_family)
        self.read(R9, O_SPORT, 2, sk, o.skc_num)
        self.read(R9, O_DPORT, 2, sk, o.skc_dport)
        self.read(R9, O_DADDR4, 4, sk, o.skc_daddr)
        self.read(R9, O_SADDR4, 4, sk, o.skc_rcv_saddr)
        self.read(R9, O_DADDR6, 16, sk, o.skc_v6_daddr)
        self.read(R9, O_SADDR6, 16, sk, o.skc_v6_rcv_saddr)

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

    def output(self, size_reg: int | None = None) -> None:
        """Send the record (``size_reg`` bytes, else the header) and count it, or count the drop."""
        self.ld_map(R1, self.maps.ringbuf)
        self.movr(R2, R9)
        if size_reg is None:
            self.mov(R3, HEADER)
        else:
            self.movr(R3, size_reg)
        self.mov(R4, 0)
        self.call(RINGBUF_OUTPUT)
        self.movr(R6, R0)
        self.lookup(self.maps.counters, "out")
        self.mov(R1, 1)
        sent = self.fresh("sent")
        self.jmp("==", R6, 0, sent)
        self.atomic_add(R0, 0, R1)
        self.ja("out")
        self.label(sent)
        self.atomic_add(R0, 8, R1)

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
    p.read(FP, -16, 8, R6, off.regs_nr)
    p.ldx(8, R6, FP, -16)
    p.jmp("==", R6, syscalls["setsid"], "setsid")
    for name in ("accept", "accept4"):
        p.jmp("==", R6, syscalls[name], "accept")
    for name in ("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid"):
        p.jmp("==", R6, syscalls[name], "creds")
    for name in ("setfsuid", "setfsgid"):
        p.jmp("==", R6, syscalls[name], "creds_any")
    p.ja("out")
    p.label("creds")
    p.jmp("!=", R7, 0, "out")
    p.label("creds_any")
    p.mov(R8, CREDS)
    p.ja("go")
    p.label("setsid")
    p.jmp("s<", R7, 0, "out")
    p.mov(R8, SETSID)
    p.ja("go")
    p.label("accept")
    p.jmp("s<", R7, 0, "out")
    p.mov(R8, ACCEPT)
    p.label("go")
    p.stx(8, FP, -72, R8)  # kind
    p.stx(8, FP, -80, R7)  # ret
    p.stx(8, FP, -88, R6)  # nr
    p.lookup(maps.scratch, "out")
    p.movr(R9, R0)
    p.call(GET_CURRENT_TASK)
    p.movr(R8, R0)
    p.header(0)
    p.ldx(8, R1, FP, -72)
    p.stx(4, R9, O_TYPE, R1)
    p.ldx(8, R1, FP, -80)
    p.stx(8, R9, O_RET, R1)
    p.ldx(8, R1, FP, -88)
    p.stx(4, R9, O_NR, R1)
    p.ldx(8, R1, FP, -72)
    p.jmp("!=", R1, ACCEPT, "send")
    # The accepted socket: current->files->fdt->fd[ret]->private_data (a socket) ->sk.
    p.load_ptr(R6, R8, off.files)
    p.load_ptr(R6, R6, off.fdt)
    p.load_ptr(R6, R6, off.fdt_fd)
    p.ldx(8, R7, FP, -80)
    p.alu("&", R7, 0xFFFFF)
    p.alu("<<", R7, 3)
    p.alu("+", R6, R7, reg=True)
    p.load_ptr(R6, R6, 0)
    p.load_ptr(R6, R6, off.file_private)
    p.load_ptr(R6, R6, off.socket_sk)
    p.sock(R6)
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
    p.ja("out")
    p.label("go")
    p.stx(8, FP, -80, R7)
    p.stx(8, FP, -88, R6)
    p.lookup(maps.scratch, "out")
    p.movr(R9, R0)
    p.call(GET_CURRENT_TASK)
    p.movr(R8, R0)
    p.header(CONNECT)
    p.ldx(8, R7, FP, -80)
    p.stx(4, R9, O_NEWSTATE, R7)
    p.ldx(8, R1, FP, -72)
    p.stx(4, R9, O_OLDSTATE, R1)
    p.jmp("==", R7, TCP_SYN_SENT, "connect")
    p.st(4, R9, O_TYPE, CLOSE)
    p.label("connect")
    p.ldx(8, R6, FP, -88)
    p.sock(R6)
    p.output()
    return p.finish()


def programs(off: Offsets, maps: Maps, syscalls: dict[str, int] | None) -> list[tuple[str, str, bytes]]:
    """(name, raw tracepoint, instructions) of every program; no syscall program without numbers."""
    out = [
        ("vigil_exec", "sched_process_exec", exec_program(off, maps)),
        ("vigil_fork", "sched_process_fork", fork_program(off, maps)),
        ("vigil_exit", "sched_process_exit", exit_program(off, maps)),
        ("vigil_sock", "inet_sock_set_state", sock_state_program(off, maps)),
    ]
    if syscalls:
        out.append(("vigil_sysexit", "sys_exit", syscall_exit_program(off, maps, syscalls)))
    return out
