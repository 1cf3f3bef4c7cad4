"""Where eBPF cannot load, `vigil watch` says so and falls back to the process connector and
/proc for process events and file attribution, reported as lossy. The refusal is real: `vigil watch` runs under
a seccomp filter that makes bpf(2) fail with EPERM, as a locked-down host would."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = Path("/usr/lib/dracut/modules.d")

# Runs the rest of argv with bpf(2) refused: a classic-BPF seccomp filter (linux/seccomp.h,
# linux/filter.h) returning SECCOMP_RET_ERRNO | EPERM for that system call only.
WRAPPER = r"""
import ctypes, os, struct, sys
NR_BPF = int(sys.argv[1])
AUDIT_ARCH_X86_64 = 0xC000003E
def stmt(code, k): return struct.pack("=HBBI", code, 0, 0, k)
def jump(code, k, jt, jf): return struct.pack("=HBBI", code, jt, jf, k)
prog = b"".join([
    stmt(0x20, 4),                             # ld [arch]
    jump(0x15, AUDIT_ARCH_X86_64, 1, 0),       # jeq x86_64
    stmt(0x06, 0x7FFF0000),                    # ret ALLOW (another arch: leave it be)
    stmt(0x20, 0),                             # ld [nr]
    jump(0x15, NR_BPF, 0, 1),                  # jeq bpf
    stmt(0x06, 0x00050000 | 1),                # ret ERRNO(EPERM)
    stmt(0x06, 0x7FFF0000),                    # ret ALLOW
])
buf = ctypes.create_string_buffer(prog)
fprog = struct.pack("=HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf))
fbuf = ctypes.create_string_buffer(fprog)
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
assert libc.prctl(38, 1, 0, 0, 0) == 0                        # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.addressof(fbuf), 0, 0) == 0   # PR_SET_SECCOMP, FILTER
os.execv(sys.argv[2], sys.argv[2:])
"""

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or platform.machine() != "x86_64", reason="needs root on x86_64"
)


def test_without_ebpf_the_connector_and_proc_give_process_events_and_say_they_are_lossy(tmp_path):
    folder = MODULES / "96vigil-fallback"
    made = not MODULES.exists()
    folder.mkdir(parents=True, exist_ok=True)
    events = tmp_path / "events.ndjson"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    cmd = [sys.executable, "-c", WRAPPER, "321", sys.executable, "-m", "vigil.cli", "watch"]
    cmd += ["--format", "ndjson", "--events-out", str(events), "--path", str(folder)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = b""
    try:
        while b"watching" not in (line := proc.stderr.readline()):
            err += line
            assert line, f"vigil watch exited: {err.decode()}"
        target = folder / "fallback.sh"
        # A shell that lives a while: /proc still shows it when the notices are read.
        subprocess.run(["/bin/sh", "-c", f"sleep 0.3; /usr/bin/touch {target}; sleep 0.3"], check=True)
        deadline = time.monotonic() + 10
        docs: list[dict] = []
        while time.monotonic() < deadline and not any(d["event"]["category"] == ["file"] for d in docs):
            time.sleep(0.1)
            if events.exists():
                docs = [json.loads(x) for x in events.read_text().split("\n")[:-1] if x.strip()]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
        subprocess.run(["rm", "-rf", str(MODULES if made else folder)], check=False)
    text = (err + rest).decode()
    docs = [json.loads(x) for x in events.read_text().split("\n")[:-1] if x.strip()]
    assert "process events: process connector + /proc, lossy for programs that exit at once" in text
    assert "Operation not permitted" in text
    files = [d for d in docs if d["event"]["category"] == ["file"]]
    assert len(files) == 1 and files[0]["process"]["executable"] == "/usr/bin/touch"
    actions = {d["event"]["action"] for d in docs if d["event"]["category"] == ["process"]}
    assert "already_running" in actions and "fork" in actions
    shells = [
        d
        for d in docs
        if d["event"]["action"] == "exec" and d["process"].get("args", [])[:2] == ["/bin/sh", "-c"]
    ]
    assert shells and shells[0]["process"]["executable"] == os.path.realpath("/bin/sh")
    # The shell's entity id is the one its child, touch, names as its parent in the file event.
    assert files[0]["process"]["parent"]["pid"] == shells[0]["process"]["pid"]
    # When the notice of touch's exec came while it still ran (lossy: not always), its parent
    # is named with the shell's entity id.
    assert (
        files[0]["process"]["parent"].get("entity_id", shells[0]["process"]["entity_id"])
        == (shells[0]["process"]["entity_id"])
    )
    assert not any(d["event"]["category"] == ["network"] for d in docs)
    summary = text.strip().splitlines()[-1]
    assert "network=0" in summary and "process-missed=" in summary
    missed = int(summary.rsplit("process-missed=", 1)[1].split()[0])
    health = [d for d in docs if d["event"]["kind"] == "metric"]
    assert (missed == 0) == (not health) and all(h["event"]["action"] == "queue-overflow" for h in health)
