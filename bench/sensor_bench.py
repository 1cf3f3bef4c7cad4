"""Benchmark of `vigil watch`: sustained creations/s without loss, creation->alert latency, CPU.

Run as root:  .venv/bin/python bench/sensor_bench.py [--seconds 3] [--rates 5000,10000,20000,40000]

Starts `vigil watch` (the real engine, the bundled seed rule) as a subprocess on a scratch
folder under the Dracut module folder, writes files at fixed rates, and reads the sensor's
own counts. ``*.sh`` creations each raise a seed-rule alert (the worst case: an alert storm);
``*.swp`` creations go through the engine and are excluded by the rule (ordinary load).
Alerts and events are written to /dev/shm when it exists, so the disk is not what is timed.
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
        while True:
            line = self.proc.stderr.readline().decode()
            if not line:
                raise SystemExit(f"vigil watch did not start: {self.proc.stderr.read().decode()}")
            if "watching" in line:
                break

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def counts(self) -> dict[str, int]:
        self.proc.send_signal(signal.SIGUSR1)
        line = ""
        while not line.startswith("vigil watch: events="):  # skip loss notices
            line = self.proc.stderr.readline().decode()
            if not line:
                raise SystemExit("vigil watch exited")
        return {k: int(v) for k, v in re.findall(r"([\w-]+)=(\d+)", line)}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def _scratch_out() -> Path:
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="vigil-bench-out-", dir=shm if shm.is_dir() else None))


def _create(folder: Path, rate: int, seconds: float, prefix: str, ext: str = "sh") -> int:
    """Create files at ``rate`` per second (paced every millisecond); returns how many."""
    n = 0
    start = time.perf_counter()
    total = int(rate * seconds)
    while n < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while n < due:
            os.close(os.open(folder / f"{prefix}{n}.{ext}", os.O_WRONLY | os.O_CREAT, 0o644))
            n += 1
        time.sleep(0.0005)
    return n


def _settle(watch: Watch, expected: int, timeout: float = 60.0) -> dict[str, int]:
    """Counts once the sensor has read at least ``expected`` events and stopped moving.

    A creation may come as one event or two (creation, then the close-after-write as a
    modification, when the kernel could not merge them), so ``expected`` is a floor.
    """
    deadline = time.monotonic() + timeout
    last: dict[str, int] = {}
    while True:
        c = watch.counts()
        if c.get("events", 0) >= expected and c == last or time.monotonic() > deadline:
            return c
        last = c
        time.sleep(0.5)


def throughput(rates: list[int], seconds: float, ext: str = "sh") -> list[tuple]:
    rows = []
    for rate in rates:
        folder = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir=MODULES))
        out = _scratch_out()
        watch = Watch(out, folder)
        try:
            before = watch.counts()
            t0 = time.perf_counter()
            made = _create(folder, rate, seconds, "f", ext)
            achieved = made / (time.perf_counter() - t0)
            after = _settle(watch, before.get("events", 0) + made)
            seen = after["events"] - before.get("events", 0)
            lost = after["lost"] - before.get("lost", 0)
            rows.append((ext, rate, round(achieved), made, seen, lost, after.get("alerts", 0)))
        finally:
            watch.stop()
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
    return rows


def capacity(batch: int = 15000, ext: str = "sh") -> tuple[int, float, int]:
    """The sensor's own rate: queue ``batch`` creations while it is stopped, time the drain.

    Independent of how fast this machine can create files; the kernel queue holds 16384.
    """
    folder = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir=MODULES))
    out = _scratch_out()
    watch = Watch(out, folder)
    try:
        before = watch.counts()
        watch.proc.send_signal(signal.SIGSTOP)
        for n in range(batch):
            os.close(os.open(f"{folder}/c{n}.{ext}", os.O_WRONLY | os.O_CREAT, 0o644))
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


def latency_and_cpu(rate: int, seconds: float, ext: str = "sh") -> tuple[list[float], float, float]:
    folder = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir=MODULES))
    out = _scratch_out()
    watch = Watch(out, folder)
    # Latency to the alert for alerting files; to the recorded event for the others.
    target = watch.alerts if ext == "sh" else watch.events
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
                    m = re.search(rb'"file":\{"path":"(/[^"]*/l\d+\.\w+)"', line)
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
            path = str(folder / f"l{n}.{ext}")
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
    return lat, cpu, idle


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
        rates = [int(r) for r in args.rates.split(",")]
        rows = throughput(rates, args.seconds, "sh") + throughput(rates, args.seconds, "swp")
        caps = [(ext, *capacity(ext=ext)) for ext in ("sh", "swp")]
        lat_runs = [(ext, *latency_and_cpu(1000, args.seconds * 2, ext)) for ext in ("sh", "swp")]
    finally:
        if made_parent:
            shutil.rmtree(MODULES.parent, ignore_errors=True)
        elif made_modules:
            shutil.rmtree(MODULES, ignore_errors=True)
    print(f"CPUs: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    print(
        f"{'files':>6} {'target/s':>9} {'achieved/s':>10} {'created':>8} {'events':>8} {'lost':>5} {'alerts':>8}"
    )
    for row in rows:
        print(f"*.{row[0]:<4} {row[1]:>9} {row[2]:>10} {row[3]:>8} {row[4]:>8} {row[5]:>5} {row[6]:>8}")
    for ext, cap_events, cap_secs, cap_lost in caps:
        print(
            f"sensor+engine capacity, *.{ext} (15,000 queued creations drained): {cap_events} events "
            f"in {cap_secs:.2f} s = {cap_events / cap_secs:,.0f} events/s, lost {cap_lost}"
        )
    for ext, lat, cpu, idle in lat_runs:
        what = "alert" if ext == "sh" else "recorded event (no alert: excluded by the rule)"
        if lat:
            q = statistics.quantiles(lat, n=100)
            print(
                f"*.{ext} latency creation -> {what} at 1000/s: n={len(lat)} "
                f"median={statistics.median(lat):.2f} ms p99={q[98]:.2f} ms max={max(lat):.2f} ms"
            )
        else:
            print(f"*.{ext} latency creation -> {what}: nothing arrived")
        print(
            f"*.{ext} CPU of vigil watch at 1000 creations/s: {cpu * 100:.1f}% of one core "
            f"(host background before: {idle * 100:.1f}%)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
