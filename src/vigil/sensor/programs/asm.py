# SPDX-License-Identifier: BSD-2-Clause OR GPL-2.0-only
# Vigil's eBPF programs and this assembler are dual licensed, "Dual BSD/GPL" (see LICENSE here).
"""A small eBPF assembler: instructions, labels and forward jumps, map references."""

from __future__ import annotations

import struct

# Instruction classes and fields (include/uapi/linux/bpf.h, bpf_common.h).
LDX, ST, STX, ALU64, JMP = 0x01, 0x02, 0x03, 0x07, 0x05
MEM, IMM, ATOMIC = 0x60, 0x00, 0xC0
SIZES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}
K, X = 0x00, 0x08
ALU = {"+": 0x00, "-": 0x10, "*": 0x20, "|": 0x40, "&": 0x50, "<<": 0x60, ">>": 0x70, "^": 0xA0, "=": 0xB0}
JUMP = {
    "==": 0x10,
    ">": 0x20,
    ">=": 0x30,
    "&": 0x40,
    "!=": 0x50,
    "s>": 0x60,
    "s>=": 0x70,
    "<": 0xA0,
    "<=": 0xB0,
    "s<": 0xC0,
}
CALL, EXIT = 0x80, 0x90
PSEUDO_MAP_FD = 1
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, FP = range(11)

# Helper ids.
MAP_LOOKUP_ELEM = 1
MAP_UPDATE_ELEM = 2
MAP_DELETE_ELEM = 3
GET_CURRENT_PID_TGID = 14
GET_CURRENT_TASK = 35
PROBE_READ_USER = 112
PROBE_READ_KERNEL = 113
PROBE_READ_KERNEL_STR = 115
KTIME_GET_BOOT_NS = 125
RINGBUF_OUTPUT = 130


class Asm:
    def __init__(self) -> None:
        self.code: list[list[int]] = []  # [opcode, dst, src, off, imm]
        self.labels: dict[str, int] = {}
        self.fixups: list[tuple[int, str]] = []
        self._n = 0

    def _emit(self, op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> None:
        self.code.append([op, dst, src, off, imm])

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def fresh(self, stem: str) -> str:
        self._n += 1
        return f"{stem}.{self._n}"

    # ALU64: alu("+", R1, 8) or alu("=", R1, R2) (register when ``reg`` is True).
    def alu(self, op: str, dst: int, value: int, *, reg: bool = False) -> None:
        if reg:
            self._emit(ALU64 | ALU[op] | X, dst, value)
        else:
            self._emit(ALU64 | ALU[op] | K, dst, 0, 0, value)

    def mov(self, dst: int, value: int) -> None:
        self.alu("=", dst, value)

    def movr(self, dst: int, src: int) -> None:
        self.alu("=", dst, src, reg=True)

    def ldx(self, size: int, dst: int, src: int, off: int) -> None:
        self._emit(LDX | MEM | SIZES[size], dst, src, off)

    def stx(self, size: int, dst: int, off: int, src: int) -> None:
        self._emit(STX | MEM | SIZES[size], dst, src, off)

    def st(self, size: int, dst: int, off: int, imm: int) -> None:
        self._emit(ST | MEM | SIZES[size], dst, 0, off, imm)

    def atomic_add(self, dst: int, off: int, src: int) -> None:
        self._emit(STX | ATOMIC | SIZES[8], dst, src, off, 0)

    def ld_map(self, dst: int, fd: int) -> None:
        self._emit(0x18, dst, PSEUDO_MAP_FD, 0, fd)
        self._emit(0, 0, 0, 0, 0)

    def jmp(self, op: str, dst: int, value: int, target: str, *, reg: bool = False) -> None:
        self.fixups.append((len(self.code), target))
        self._emit(JMP | JUMP[op] | (X if reg else K), dst, value if reg else 0, 0, 0 if reg else value)

    def ja(self, target: str) -> None:
        self.fixups.append((len(self.code), target))
        self._emit(JMP)

    def call(self, helper: int) -> None:
        self._emit(JMP | CALL, 0, 0, 0, helper)

    def exit(self) -> None:
        self._emit(JMP | EXIT)

    def assemble(self) -> bytes:
        for at, target in self.fixups:
            self.code[at][3] = self.labels[target] - at - 1
        return b"".join(
            struct.pack("<BBhi", op, (src << 4) | dst, off, imm - (1 << 32) if imm >= 1 << 31 else imm)
            for op, dst, src, off, imm in self.code
        )
