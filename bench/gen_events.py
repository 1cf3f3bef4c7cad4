"""Generate realistic ECS endpoint events for benchmarks and equivalence tests.

A mix of process, file, network, registry and library events from Linux,
Windows and macOS hosts, shaped like Elastic Defend's documents, with a small
share that the seed rule (Dracut Module Creation) and other prebuilt rules
should flag. Deterministic for a given seed.

    python bench/gen_events.py --count 1000000 --output events.ndjson
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta

import orjson

HOSTS = {
    "linux": [
        ("web-01", "Ubuntu", "22.04", "6.5.0-1015-aws"),
        ("db-02", "Debian GNU/Linux", "12", "6.1.0-18-amd64"),
        ("build-03", "Red Hat Enterprise Linux", "9.3", "5.14.0-362.el9.x86_64"),
    ],
    "windows": [
        ("WS-ACCT-07", "Windows 11 Pro", "23H2", "10.0.22631"),
        ("DC-01", "Windows Server 2022", "21H2", "10.0.20348"),
    ],
    "macos": [("mbp-lena", "macOS", "14.4", "23.4.0")],
}

LINUX_PROCS = [
    "/usr/bin/bash",
    "/usr/bin/python3.11",
    "/usr/sbin/sshd",
    "/usr/bin/cp",
    "/usr/bin/vim.basic",
    "/usr/bin/dpkg",
    "/usr/lib/systemd/systemd",
    "/usr/bin/curl",
    "/usr/sbin/cron",
    "/usr/bin/tar",
    "/usr/bin/sed",
    "/usr/bin/gzip",
]
WIN_PROCS = [
    "C:\\Windows\\System32\\svchost.exe",
    "C:\\Windows\\explorer.exe",
    "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
    "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
    "C:\\Windows\\System32\\cmd.exe",
    "C:\\Windows\\System32\\rundll32.exe",
    "C:\\Windows\\System32\\reg.exe",
]
MAC_PROCS = [
    "/bin/zsh",
    "/usr/bin/osascript",
    "/Applications/Safari.app/Contents/MacOS/Safari",
    "/usr/bin/curl",
    "/bin/launchctl",
]

LINUX_FILES = [
    "/var/log/syslog",
    "/tmp/tmp{n}.txt",
    "/home/ubuntu/.bash_history",
    "/etc/cron.d/job{n}",
    "/var/lib/apt/lists/x{n}",
    "/usr/lib/python3/dist-packages/m{n}.py",
    "/etc/systemd/system/svc{n}.service",
    "/root/.ssh/authorized_keys",
]
WIN_FILES = [
    "C:\\Users\\alice\\AppData\\Local\\Temp\\t{n}.tmp",
    "C:\\Windows\\Prefetch\\X{n}.pf",
    "C:\\ProgramData\\app\\log{n}.txt",
    "C:\\Users\\alice\\Downloads\\invoice{n}.pdf",
]
MAC_FILES = [
    "/Users/lena/Library/Caches/c{n}",
    "/private/var/folders/x/T/t{n}",
    "/Users/lena/Library/LaunchAgents/com.app{n}.plist",
]


def _base(
    rng: random.Random, ts: datetime, os_type: str, dataset: str, category: str, etype: list[str], action: str
) -> dict:
    name, os_name, version, kernel = rng.choice(HOSTS[os_type])
    ingested = ts + timedelta(milliseconds=rng.randint(200, 5000))
    return {
        "@timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
        "agent": {"id": f"agent-{name}", "type": "endpoint", "version": "8.15.0"},
        "data_stream": {"dataset": dataset, "namespace": "default", "type": "logs"},
        "ecs": {"version": "8.10.0"},
        "event": {
            "action": action,
            "agent_id_status": "verified",
            "category": [category],
            "created": None,
            "dataset": dataset,
            "id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "kind": "event",
            "module": "endpoint",
            "type": etype,
            "ingested": ingested.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "host": {
            "hostname": name,
            "name": name,
            "id": f"host-{name}",
            "architecture": "x86_64",
            "os": {
                "type": os_type,
                "family": {"linux": "debian", "windows": "windows", "macos": "macos"}[os_type],
                "name": os_name,
                "version": version,
                "kernel": kernel,
                "platform": {"linux": "ubuntu", "windows": "windows", "macos": "macos"}[os_type],
            },
        },
    }


def _process(rng: random.Random, os_type: str) -> dict:
    exe = rng.choice({"linux": LINUX_PROCS, "windows": WIN_PROCS, "macos": MAC_PROCS}[os_type])
    sep = "\\" if os_type == "windows" else "/"
    name = exe.rsplit(sep, 1)[-1]
    pid = rng.randint(300, 60000)
    return {
        "executable": exe,
        "name": name,
        "pid": pid,
        "entity_id": f"{pid:x}{rng.getrandbits(32):x}",
        "args": [exe, "--opt", str(rng.randint(1, 9))],
        "command_line": f"{exe} --opt {rng.randint(1, 9)}",
        "parent": {
            "pid": rng.randint(1, 300),
            "executable": "/usr/bin/bash" if os_type != "windows" else WIN_PROCS[1],
            "name": "bash" if os_type != "windows" else "explorer.exe",
        },
    }


def _user(os_type: str, rng: random.Random) -> dict:
    if os_type == "windows":
        return {"name": "alice", "domain": "CORP", "id": "S-1-5-21-1004"}
    # Elastic Defend writes user.id as a number on Linux; it is a keyword in ECS.
    return {"name": rng.choice(["root", "ubuntu", "lena"]), "id": rng.choice([0, 1000, 501])}


# Shares of (process, file, network) events by mix; the rest is registry or library.
MIXES = {"default": (0.40, 0.75, 0.88), "linux": (0.30, 0.90, 1.0)}


def make_event(rng: random.Random, ts: datetime, n: int, mix: str = "default") -> dict:
    roll = rng.random()
    if mix == "linux":
        os_type = "linux"
    else:
        os_type = rng.choices(["linux", "windows", "macos"], weights=[5, 4, 1])[0]
    if roll < 0.002:
        return _dracut_event(rng, ts, n)
    process_share, file_share, network_share = MIXES[mix]
    if roll < process_share:
        kind = "process"
    elif roll < file_share:
        kind = "file"
    elif roll < network_share:
        kind = "network"
    elif roll < 0.95 and os_type == "windows":
        kind = "registry"
    else:
        kind = "library"
    if kind == "process":
        action = rng.choice(["exec", "fork", "end"] if os_type != "windows" else ["start", "end"])
        etype = ["start"] if action in ("exec", "start", "fork") else ["end"]
        ev = _base(rng, ts, os_type, "endpoint.events.process", "process", etype, action)
        ev["process"] = _process(rng, os_type)
    elif kind == "file":
        action = rng.choice(["creation", "modification", "deletion", "rename"])
        etype = {
            "creation": ["creation"],
            "modification": ["change"],
            "deletion": ["deletion"],
            "rename": ["change"],
        }[action]
        ev = _base(rng, ts, os_type, "endpoint.events.file", "file", etype, action)
        path = rng.choice({"linux": LINUX_FILES, "windows": WIN_FILES, "macos": MAC_FILES}[os_type]).format(
            n=n % 997
        )
        sep = "\\" if os_type == "windows" else "/"
        name = path.rsplit(sep, 1)[-1]
        ev["file"] = {
            "path": path,
            "name": name,
            "directory": path.rsplit(sep, 1)[0],
            "extension": name.rsplit(".", 1)[-1] if "." in name else None,
            "size": rng.randint(0, 1 << 20),
            "inode": rng.randint(1, 1 << 30),
        }
        if ev["file"]["extension"] is None:
            del ev["file"]["extension"]
        ev["process"] = _process(rng, os_type)
    elif kind == "network":
        action = rng.choice(["connection_attempted", "connection_accepted", "disconnect_received"])
        ev = _base(rng, ts, os_type, "endpoint.events.network", "network", ["start"], action)
        ev["source"] = {
            "ip": f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "port": rng.randint(1024, 65535),
        }
        ev["destination"] = {
            "ip": f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "port": rng.choice([22, 53, 80, 443, 3389, 4444, 8080]),
        }
        ev["network"] = {"transport": "tcp", "type": "ipv4", "direction": rng.choice(["egress", "ingress"])}
        ev["process"] = _process(rng, os_type)
    elif kind == "registry":
        ev = _base(rng, ts, "windows", "endpoint.events.registry", "registry", ["change"], "modification")
        key = rng.choice(
            [
                "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
                "HKCU\\Software\\Classes\\x{n}",
                "HKLM\\SYSTEM\\CurrentControlSet\\Services\\svc{n}",
            ]
        ).format(n=n % 131)
        ev["registry"] = {
            "path": key + "\\Value",
            "key": key,
            "value": "Value",
            "hive": key.split("\\")[0],
            "data": {"strings": [rng.choice(WIN_PROCS)]},
        }
        ev["process"] = _process(rng, "windows")
    else:
        ev = _base(rng, ts, os_type, "endpoint.events.library", "library", ["start"], "load")
        path = (
            "C:\\Windows\\System32\\kernel32.dll"
            if os_type == "windows"
            else "/usr/lib/x86_64-linux-gnu/libc.so.6"
        )
        ev["dll" if os_type == "windows" else "file"] = {
            "path": path,
            "name": path.replace("\\", "/").rsplit("/", 1)[-1],
        }
        ev["process"] = _process(rng, os_type)
    ev["user"] = _user(ev["host"]["os"]["type"], rng)
    ev["event"]["created"] = ev["@timestamp"]
    return ev


def _dracut_event(rng: random.Random, ts: datetime, n: int) -> dict:
    """A Dracut module dropped: half by an unexpected program (alert), half by excluded ones."""
    ev = _base(rng, ts, "linux", "endpoint.events.file", "file", ["creation"], "creation")
    exe = rng.choice(
        [
            "/usr/bin/curl",
            "/usr/bin/bash",
            "/tmp/.x/dropper",
            "/usr/bin/dpkg",
            "/usr/bin/install",
            "/usr/bin/python3.11",
        ]
    )
    ext = rng.choice(["sh", "sh", "conf", "swp"])
    d = rng.choice(["/usr/lib/dracut/modules.d", "/lib/dracut/modules.d"])
    name = f"module-setup{n % 7}.{ext}"
    ev["file"] = {
        "path": f"{d}/99evil{n % 5}/{name}",
        "name": name,
        "directory": f"{d}/99evil{n % 5}",
        "extension": ext,
        "size": 512,
        "inode": rng.randint(1, 1 << 30),
    }
    ev["process"] = {
        "executable": exe,
        "name": exe.rsplit("/", 1)[-1],
        "pid": rng.randint(300, 60000),
        "args": [exe],
        "command_line": exe,
        "parent": {"pid": 1, "name": "systemd"},
    }
    ev["user"] = {"name": "root", "id": 0}
    ev["event"]["created"] = ev["@timestamp"]
    return ev


def generate(count: int, seed: int = 7, start: datetime | None = None, mix: str = "default"):
    """Events in time order. The ``linux`` mix is Linux endpoints only (30% process,
    60% file, 10% network) whose processes descend from recent ones on their host
    (``process.parent.entity_id``) and whose file and network events come from them,
    as the prebuilt sequence rules join them."""
    rng = random.Random(seed)
    ts = start or datetime(2026, 11, 1, tzinfo=UTC)
    recent: dict[str, list[str]] = {}
    for n in range(count):
        ts += timedelta(milliseconds=rng.randint(0, 40))
        ev = make_event(rng, ts, n, mix)
        if mix == "linux" and "process" in ev:
            _lineage(rng, ev, recent.setdefault(ev["host"]["id"], []))
        yield ev


def _lineage(rng: random.Random, ev: dict, recent: list[str]) -> None:
    proc = ev["process"]
    if "process" in ev["event"]["category"]:
        if recent:
            proc.setdefault("parent", {})["entity_id"] = rng.choice(recent)
        if "entity_id" in proc:
            recent.append(proc["entity_id"])
            del recent[:-64]
    elif recent:
        proc["entity_id"] = rng.choice(recent)


def write(path: str, count: int, seed: int = 7, mix: str = "default") -> None:
    out = sys.stdout.buffer if path == "-" else open(path, "wb")  # noqa: SIM115
    try:
        for ev in generate(count, seed, mix=mix):
            out.write(orjson.dumps(ev) + b"\n")
    finally:
        if out is not sys.stdout.buffer:
            out.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--output", default="-")
    ap.add_argument(
        "--mix", choices=sorted(MIXES), default="default", help="default: the mixed endpoint fleet"
    )
    args = ap.parse_args()
    write(args.output, args.count, args.seed, args.mix)


if __name__ == "__main__":
    main()
