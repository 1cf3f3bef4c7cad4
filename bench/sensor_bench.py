"""Benchmark of `vigil watch`: sustained creations/s without loss, creation->alert latency, CPU.

Run as root:  .venv/bin/python bench/sensor_bench.py [--seconds 3] [--rates 5000,10000,20000,40000]

Starts `vigil watch` as a subprocess on a scratch folder under the Dracut module folder
(so creations raise alerts when the rule engine is present; otherwise latency is measured
to the recorded event), writes files at fixed rates, and reads the sensor's own counts.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULES = Path("/usr/lib/dracut/modules.d")


class Watch:
    def __init__(self, out_dir: Path, path: Path) -> None:
        self.events = out_dir / "events.ndjson"
        self.alerts = out_dir / "alerts.ndjson"
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        cmd = [
            sys.executable,
            "-m",
            "vigil.cli",
            "watch",
            "--format",
            "ndjson",
            "--events-out",
            str(self.events),
        ]
        cmd += ["--path", str(path)]
        self.proc = subprocess.Popen(cmd, stdout=open(self.alerts, "wb"), stderr=subprocess.PIPE, env=env)  # noqa: SIM115
        self.engine = True
        while True:
            line = self.proc.stderr.readline().decode()
            if not line:
                raise SystemExit(f"vigil watch did not start: {self.proc.stderr.read().decode()}")
            if "engine not available" in line:
                self.engine = False
            if "watching" in line:
                break

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def counts(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGUSR1)
        line = self.proc.stderr.readline().decode()
        return {k: int(v) for k, v in re.findall(r"([\w-]+)=(\d+)", line)}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def _create(folder: Path, rate: int, seconds: float, prefix: str) -> int:
    """Create files at ``rate`` per second (paced every millisecond); returns how many."""
    n = 0
    start = time.perf_counter()
    total = int(rate * seconds)
    while n < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while n < due:
            os.close(os.open(folder / f"{prefix}{n}.sh", os.O_WRONLY | os.O_CREAT, 0o644))
            n += 1
        time.sleep(0.0005)
    return n


def _settle(watch: Watch, expected: int, timeout: float = 30.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    last = -1
    while True:
        c = watch.counts()
        if c.get("events", 0) + c.get("lost", 0) * 0 >= expected or time.monotonic() > deadline:
            return c
        if c.get("events") == last and c.get("lost", 0):
            return c
        last = c.get("events", 0)
        time.sleep(0.3)


def throughput(rates: list[int], seconds: float) -> list[tuple]:
    rows = []
    for rate in rates:
        folder = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir=MODULES))
        out = Path(tempfile.mkdtemp(prefix="vigil-bench-out-"))
        watch = Watch(out, folder)
        try:
            before = watch.counts()
            t0 = time.perf_counter()
            made = _create(folder, rate, seconds, "f")
            achieved = made / (time.perf_counter() - t0)
            after = _settle(watch, before.get("events", 0) + made)
            seen = after["events"] - before.get("events", 0)
            lost = after["lost"] - before.get("lost", 0)
            rows.append((rate, round(achieved), made, seen, lost, after.get("unattributed", 0)))
        finally:
            watch.stop()
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
    return rows


def capacity(batch: int = 15000) -> tuple[int, float, int]:
    """The sensor's own rate: queue ``batch`` creations while it is stopped, time the drain.

    Independent of how fast this machine can create files; the kernel queue holds 16384.
    """
    folder = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir=MODULES))
    out = Path(tempfile.mkdtemp(prefix="vigil-bench-out-"))
    watch = Watch(out, folder)
    try:
        before = watch.counts()
        watch.proc.send_signal(signal.SIGSTOP)
        for n in range(batch):
            os.close(os.open(f"{folder}/c{n}.sh", os.O_WRONLY | os.O_CREAT, 0o644))
        t0 = time.perf_counter()
        watch.proc.send_signal(signal.SIGCONT)
        while True:
            c = watch.counts()
            if c["events"] - before.get("events", 0) >= batch or c["lost"] or time.perf_counter() - t0 > 60:
                break
            time.sleep(0.01)
        took = time.perf_counter() - t0
        return c["events"] - before.get("events", 0), took, c["lost"]
    finally:
        watch.stop()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


def latency_and_cpu(rate: int, seconds: float) -> tuple[list[float], float, bool]:
    folder = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir=MODULES))
    out = Path(tempfile.mkdtemp(prefix="vigil-bench-out-"))
    watch = Watch(out, folder)
    target = watch.alerts if watch.engine else watch.events
    created: dict[str, int] = {}
    arrived: dict[str, int] = {}
    done = threading.Event()

    def tail() -> None:
        with open(target, "rb") as fh:
            buf = b""
            while not done.is_set() or len(arrived) < len(created):
                chunk = fh.read()
                now = time.perf_counter_ns()
                if not chunk:
                    if done.is_set() and time.perf_counter_ns() - last_seen[0] > 2e9:
                        return
                    time.sleep(0.0005)
                    continue
                last_seen[0] = now
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    m = re.search(rb'(/[^"]*/l\d+\.sh)"', line)
                    if m:
                        arrived.setdefault(m.group(1).decode(), now)

    last_seen = [time.perf_counter_ns()]
    reader = threading.Thread(target=tail, daemon=True)
    reader.start()
    try:
        # What the host's own activity costs (all writes and execs on the marked filesystems).
        idle0, iwall0 = watch.cpu_seconds(), time.perf_counter()
        time.sleep(seconds / 2)
        idle = (watch.cpu_seconds() - idle0) / (time.perf_counter() - iwall0)
        cpu0, wall0 = watch.cpu_seconds(), time.perf_counter()
        n, start = 0, time.perf_counter()
        total = int(rate * seconds)
        while n < total:
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            path = str(folder / f"l{n}.sh")
            created[path] = time.perf_counter_ns()
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
            n += 1
        cpu = (watch.cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
        done.set()
        reader.join(timeout=30)
        lat = [(arrived[p] - created[p]) / 1e6 for p in created if p in arrived]
    finally:
        watch.stop()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return lat, cpu, idle, watch.engine


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rates", default="5000,10000,20000,40000")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("sensor_bench: needs root (fanotify)", file=sys.stderr)
        return 1
    made_modules = not MODULES.exists()
    made_parent = not MODULES.parent.exists()
    MODULES.mkdir(parents=True, exist_ok=True)
    try:
        rows = throughput([int(r) for r in args.rates.split(",")], args.seconds)
        cap_events, cap_secs, cap_lost = capacity()
        lat, cpu, idle, engine = latency_and_cpu(1000, args.seconds * 2)
    finally:
        if made_parent:
            shutil.rmtree(MODULES.parent, ignore_errors=True)
        elif made_modules:
            shutil.rmtree(MODULES, ignore_errors=True)
    print(f"{'target/s':>9} {'achieved/s':>10} {'created':>8} {'events':>8} {'lost':>5} {'unattrib':>8}")
    for row in rows:
        print(f"{row[0]:>9} {row[1]:>10} {row[2]:>8} {row[3]:>8} {row[4]:>5} {row[5]:>8}")
    print(
        f"\nsensor capacity (15,000 queued creations drained): {cap_events} events in {cap_secs:.2f} s "
        f"= {cap_events / cap_secs:,.0f} events/s, lost {cap_lost}"
    )
    what = "alert" if engine else "event (no rule engine in this build)"
    if lat:
        q = statistics.quantiles(lat, n=100)
        print(
            f"\nlatency creation -> {what} at 1000/s: n={len(lat)} median={statistics.median(lat):.2f} ms "
            f"p99={q[98]:.2f} ms max={max(lat):.2f} ms"
        )
    else:
        print(f"\nlatency creation -> {what}: nothing arrived")
    print(
        f"sensor CPU at 1000 creations/s: {cpu * 100:.1f}% of one core (idle host background: {idle * 100:.1f}%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
