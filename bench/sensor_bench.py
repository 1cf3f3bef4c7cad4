"""Benchmark of `vigil watch`: sustained creations/s without loss, creation->alert latency, CPU.

Run as root:  .venv/bin/python bench/sensor_bench.py [--seconds 3] [--rates 5000,10000,20000,40000]

Process and network events (eBPF), with the prebuilt Linux rules of a detection-rules checkout:
    .venv/bin/python bench/sensor_bench.py --processes --detection-rules ../detection-rules \
        [--storm 10000] [--exec-rate 1000] [--conn-rate 1000] [--seconds 5]
runs ``--storm`` executions of ``/bin/true`` as fast as a shell loop goes and checks that every
one arrived with its argv, executable and parent (none lost), then measures the CPU of
``vigil watch`` while a driver runs programs and opens TCP connections at the given rates.

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
sys.path.insert(0, str(REPO / "src"))  # --split runs Vigil in this process
MODULES = Path("/usr/lib/dracut/modules.d")


class Watch:
    def __init__(
        self, out_dir: Path, path: Path, extra: tuple[str, ...] = (), profile: str | None = None
    ) -> None:
        self.events = out_dir / "events.ndjson"
        self.alerts = out_dir / "alerts.ndjson"
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        # --profile: the whole run of vigil watch under cProfile (written when it stops).
        prof = ["-m", "cProfile", "-o", profile] if profile else []
        cmd = [
            sys.executable,
            *prof,
            "-m",
            "vigil.cli",
            "watch",
            "--format",
            "ndjson",
            "--events-out",
            str(self.events),
        ]
        cmd += ["--path", str(path), *extra]
        self.proc = subprocess.Popen(cmd, stdout=open(self.alerts, "wb"), stderr=subprocess.PIPE, env=env)  # noqa: SIM115
        while True:
            line = self.proc.stderr.readline().decode()
            if not line:
                raise SystemExit(f"vigil watch did not start: {self.proc.stderr.read().decode()}")
            if "watching" in line:
                break
        self.read_at = 0

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
        self.proc.wait(timeout=300)


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


def latency_and_cpu(
    rate: int, seconds: float, ext: str = "sh", rule_args: tuple[str, ...] = ()
) -> tuple[list[float], float, float]:
    folder = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir=MODULES))
    out = _scratch_out()
    watch = Watch(out, folder, rule_args)
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


def _rule_args(detection_rules: Path) -> tuple[str, ...]:
    out: list[str] = []
    for sub in ("rules/linux", "rules/cross-platform", "rules_building_block"):
        if (detection_rules / sub).is_dir():
            out += ["--rules", str(detection_rules / sub)]
    return tuple(out)


def _read_events(path: Path) -> list[dict]:
    import json

    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().split("\n")[:-1] if x.strip()]


def process_storm(rule_args: tuple[str, ...], n: int) -> dict:
    """``n`` runs of /bin/true by a shell loop under `vigil watch` with the rules: every exec
    must arrive, with its argv, executable and parent."""
    folder = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir=MODULES))
    out = _scratch_out()
    watch = Watch(out, folder, rule_args)
    marker = f"vigil-storm-{time.time_ns()}"
    try:
        t0 = time.perf_counter()
        cpu0 = watch.cpu_seconds()
        driver = subprocess.Popen(
            ["/bin/bash", "-c", f'for i in $(seq 1 {n}); do /bin/true {marker} "$i"; done']
        )
        driver.wait()
        ran = time.perf_counter() - t0
        _wait_for_lines(watch.events, f'"args":["/bin/true","{marker}"', '"action":"exec"', n)
        counts = watch.counts()
        drained = time.perf_counter() - t0
        cpu = watch.cpu_seconds() - cpu0
    finally:
        watch.stop()
    docs = _read_events(watch.events)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    true = os.path.realpath("/bin/true")
    bash = os.path.realpath("/bin/bash")
    seen: dict[int, int] = {}
    wrong = 0
    for d in docs:
        p = d.get("process", {})
        args = p.get("args") or []
        if d["event"]["action"] != "exec" or args[1:2] != [marker]:
            continue
        i = int(args[2])
        seen[i] = seen.get(i, 0) + 1
        ok = (
            p.get("executable") == true
            and args == ["/bin/true", marker, str(i)]
            and p["parent"].get("pid") == driver.pid
            and p["parent"].get("executable") == bash
        )
        wrong += not ok
    missing = sum(1 for i in range(1, n + 1) if i not in seen)
    return {
        "n": n,
        "seen": len(seen),
        "missing": missing,
        "duplicated": sum(1 for c in seen.values() if c > 1),
        "wrong": wrong,
        "kernel_lost": counts.get("kernel-lost", -1),
        "loop_seconds": ran,
        "drained_seconds": drained,
        "cpu_seconds": cpu,
    }


def _settle_process(watch: Watch, before: dict[str, int], timeout: float = 1800.0) -> None:
    """Until the sensor has read everything and the engine has written every event out
    (the events file stops growing for 5 s)."""
    deadline = time.monotonic() + timeout
    last, size, still = before, -1, 0.0
    while time.monotonic() < deadline:
        time.sleep(1.0)
        c = watch.counts()
        now = watch.events.stat().st_size if watch.events.exists() else 0
        quiet = c.get("process") == last.get("process") and c.get("network") == last.get("network")
        still = still + 1.0 if quiet and now == size else 0.0
        if still >= 5:
            return
        last, size = c, now


def _wait_for_lines(path: Path, needle: str, action: str, n: int, quiet: float = 120.0) -> int:
    """Until ``n`` lines of ``path`` hold both strings, or nothing new came for ``quiet`` s."""
    found, pos, buf = 0, 0, b""
    last = time.monotonic()
    a, b = needle.encode(), action.encode()
    while found < n and time.monotonic() - last < quiet:
        time.sleep(0.1)
        if not path.exists():
            continue
        with open(path, "rb") as fh:
            fh.seek(pos)
            chunk = fh.read()
        if not chunk:
            continue
        pos += len(chunk)
        last = time.monotonic()
        *lines, buf = (buf + chunk).split(b"\n")
        found += sum(1 for line in lines if a in line and b in line)
    return found


# A static x86_64 program that only exits (exit_group(0)): 129 bytes, no dynamic loader. The
# sensor's cost per exec does not depend on the program, but /bin/true's dynamic loading alone
# takes most of a core at 1,000 runs a second on a 2-core machine, so the driver could not
# reach the rate (it managed 230-525/s) beside vigil watch.
_EXIT_ONLY = bytes.fromhex("b8e700000031ff0f05")  # mov eax, 231; xor edi, edi; syscall


def exit_only_program(folder: Path) -> str:
    """Path of a tiny static program that exits at once (``/bin/true`` off x86_64)."""
    import platform
    import struct

    if platform.machine() != "x86_64":
        return "/bin/true"
    base, size = 0x400000, 64 + 56 + len(_EXIT_ONLY)
    ehdr = b"\x7fELF\x02\x01\x01\x00" + bytes(8)
    ehdr += struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, base + 120, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    path = folder / "true"
    path.write_bytes(ehdr + phdr + _EXIT_ONLY)
    path.chmod(0o755)
    return str(path)


def _run_programs(program: str, marker: str, rate: int, total: int, t0: float, result) -> None:
    """Run ``program`` ``total`` times at ``rate``/s from ``t0`` (a child process of its own)."""
    n = 0
    while n < total:
        delay = t0 + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pid = os.posix_spawn(program, [program, marker], os.environ)
        os.waitpid(pid, 0)
        n += 1
    result.put(("execs", n, time.perf_counter() - t0))


def _open_connections(rate: int, total: int, t0: float, result) -> None:
    """Open ``total`` TCP connections to a local listener at ``rate``/s (a child process)."""
    import socket

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(4096)
    port = server.getsockname()[1]

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    n = 0
    while n < total:
        delay = t0 + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        with socket.socket() as c:
            try:
                c.connect(("127.0.0.1", port))
            except OSError:
                pass
        n += 1
    took = time.perf_counter() - t0
    server.close()
    result.put(("conns", n, took))


def process_cpu(
    rule_args: tuple[str, ...],
    exec_rate: int,
    conn_rate: int,
    seconds: float,
    profile: str | None = None,
) -> dict:
    """CPU of `vigil watch` for ``seconds`` of programs run and connections opened at the rates
    (including the time to catch up afterwards, charged to the same window). The programs and
    the connections are driven by two processes of their own, so neither waits on the other."""
    import multiprocessing

    folder = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir=MODULES))
    out = _scratch_out()
    # Where programs live (rules flag programs run from /dev/shm or /tmp).
    bin_dir = Path(tempfile.mkdtemp(prefix="vigil-bench-bin-", dir="/usr/lib"))
    program = exit_only_program(bin_dir)
    watch = Watch(out, folder, rule_args, profile)
    marker = f"vigil-load-{time.time_ns()}"
    ctx = multiprocessing.get_context("fork")
    try:
        idle0, iwall0 = watch.cpu_seconds(), time.perf_counter()
        time.sleep(2)
        idle = (watch.cpu_seconds() - idle0) / (time.perf_counter() - iwall0)
        before = watch.counts()
        cpu0 = watch.cpu_seconds()
        t0 = time.perf_counter() + 0.05
        results = ctx.Queue()
        drivers = [
            ctx.Process(
                target=_run_programs, args=(program, marker, exec_rate, int(exec_rate * seconds), t0, results)
            )
        ]
        if conn_rate:
            drivers.append(
                ctx.Process(target=_open_connections, args=(conn_rate, int(conn_rate * seconds), t0, results))
            )
        for d in drivers:
            d.start()
        done = {what: (n, took) for what, n, took in (results.get() for _ in drivers)}
        for d in drivers:
            d.join()
        execs = done["execs"][0]
        conns = done.get("conns", (0, 0))[0]
        wall = max(took for _, took in done.values())
        # Until the last program's exec event is written out (the engine has run it).
        _wait_for_lines(watch.events, f'"args":["{program}","{marker}"]', '"action":"exec"', execs)
        caught_up = time.perf_counter() - t0
        cpu = watch.cpu_seconds() - cpu0
        _settle_process(watch, watch.counts())
        after = watch.counts()
    finally:
        watch.stop()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(bin_dir, ignore_errors=True)
    return {
        "execs_per_s": execs / wall,
        "conns_per_s": conns / wall,
        "cpu_share": cpu / wall,
        "cpu_s": cpu,
        "caught_up_s": caught_up,
        "wall_s": wall,
        "idle_share": idle,
        "process_events": after["process"] - before.get("process", 0),
        "network_events": after["network"] - before.get("network", 0),
        "kernel_lost": after.get("kernel-lost", -1),
    }


class _Recorded:
    """Ring-buffer records captured earlier, read back in the sensor's batches."""

    def __init__(self, records: list[bytes]) -> None:
        self.ring = self
        self.records, self.at = records, 0

    def read(self, limit: int = 1 << 30) -> list[bytes]:
        out = self.records[self.at : self.at + limit]
        self.at += len(out)
        return out

    def pending(self) -> int:
        return len(self.records) - self.at

    def counts(self) -> tuple[int, int]:
        return 0, self.at


def record_load(exec_rate: int, conn_rate: int, seconds: float) -> list[bytes]:
    """The ring-buffer records of the driver's load (and of whatever else runs on the host)."""
    import multiprocessing

    from vigil.sensor.bpf import Probes

    probes = Probes()
    bin_dir = Path(tempfile.mkdtemp(prefix="vigil-bench-bin-", dir="/usr/lib"))
    try:
        program = exit_only_program(bin_dir)
        ctx = multiprocessing.get_context("fork")
        results = ctx.Queue()
        t0 = time.perf_counter() + 0.05
        drivers = [
            ctx.Process(target=_run_programs, args=(program, "vigil-split", exec_rate, int(exec_rate * seconds), t0, results)),
            ctx.Process(target=_open_connections, args=(conn_rate, int(conn_rate * seconds), t0, results)),
        ]  # fmt: skip
        for d in drivers:
            d.start()
        records: list[bytes] = []
        while any(d.is_alive() for d in drivers):
            records += probes.ring.read()
            time.sleep(0.01)
        time.sleep(0.2)
        records += probes.ring.read()
        for d in drivers:
            d.join()
        return records
    finally:
        probes.close()
        shutil.rmtree(bin_dir, ignore_errors=True)


def split(rule_args: tuple[str, ...], exec_rate: int, conn_rate: int, seconds: float, batch: int) -> dict:
    """CPU per event of each part of `vigil watch`, without a profiler: the load's ring-buffer
    records are recorded, then replayed in process through the sensor's documents, the event
    objects, the --events-out line, the engine (event rules and sequences) and the scheduled
    rules' feed, each timed alone (CPU time of this process)."""
    import itertools

    from vigil.cli.output import dumps
    from vigil.cli.watch import _engine, ndjson_lines
    from vigil.events.model import Event
    from vigil.scheduler.live import LiveRules
    from vigil.sensor.ebpf import KernelSensor
    from vigil.sensor.ecs import HostInfo

    records = record_load(exec_rate, conn_rate, seconds)
    ids = itertools.count(1)
    sensor = KernelSensor(HostInfo.local(), lambda: f"e-{next(ids)}", probes=_Recorded(records))
    out: dict[str, float] = {}
    t = time.process_time()
    batches = []
    while sensor.pending():
        batches.append(sensor.poll(batch))
    out["documents (ring-buffer records to Defend-shaped events)"] = time.process_time() - t
    docs = [d for b in batches for d in b]
    t = time.process_time()
    for b in batches:
        b"".join(dumps(d) + b"\n" for d in b)
    out["--events-out lines, one dumps each (before)"] = time.process_time() - t
    t = time.process_time()
    for b in batches:
        ndjson_lines(b)
    out["--events-out lines (watch's ndjson_lines)"] = time.process_time() - t
    t = time.process_time()
    events = [
        [Event(d, index=f"logs-{d['data_stream']['dataset']}-default", id=d["event"]["id"]) for d in b]
        for b in batches
    ]
    out["event objects"] = time.process_time() - t
    if rule_args:
        ns = argparse.Namespace(
            rules=list(rule_args[1::2]), exceptions=None, exceptions_all=False, strict=False,
            match_long_values=False, all_rules=False,
        )  # fmt: skip
        engine, _ = _engine(ns)
        t = time.process_time()
        for b in events:
            engine.process_batch(b)
        out["rule engine (event rules, sequences and samples, a micro-batch at a time)"] = (
            time.process_time() - t
        )
        live = LiveRules(engine)
        t = time.process_time()
        for b in events:
            live.feed_batch(b)
        out["threshold, new terms, ES|QL rules' feed"] = time.process_time() - t
    return {"records": len(records), "events": len(docs), "seconds": out}


def processes_main(args: argparse.Namespace) -> int:
    rule_args = _rule_args(Path(args.detection_rules)) if args.detection_rules else ()
    MODULES.mkdir(parents=True, exist_ok=True)
    print(f"CPUs: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    print(f"rules: {' '.join(rule_args[1::2]) or 'the bundled rules'}")
    if args.split:
        r = split(rule_args, args.exec_rate, args.conn_rate, args.seconds, 4096)
        print(f"recorded {r['records']} ring-buffer records, {r['events']} events; CPU per event:")
        for what, secs in r["seconds"].items():
            print(f"  {what}: {secs / max(1, r['events']) * 1e6:.1f} us")
        return 0
    if args.storm:
        r = process_storm(rule_args, args.storm)
        print(
            f"exec storm: {r['n']} x /bin/true in {r['loop_seconds']:.1f} s ({r['n'] / r['loop_seconds']:,.0f}/s); "
            f"all events read after {r['drained_seconds']:.1f} s; seen {r['seen']}, missing {r['missing']}, "
            f"duplicated {r['duplicated']}, wrong argv/executable/parent {r['wrong']}, kernel-lost {r['kernel_lost']}; "
            f"CPU of vigil watch {r['cpu_seconds']:.1f} s"
        )
    runs = [("the bundled file rule only (the sensor's own cost)", ())]
    if rule_args:
        runs.append(("the Linux rules", rule_args))
    if args.rules_only and rule_args:
        runs = runs[1:]
    for what, rules in runs:
        profile = args.profile if rules == runs[-1][1] else None
        r = process_cpu(rules, args.exec_rate, args.conn_rate, args.seconds, profile)
        print(
            f"load with {what}: {r['execs_per_s']:,.0f} execs/s and {r['conns_per_s']:,.0f} connections/s "
            f"for {r['wall_s']:.1f} s: {r['process_events']} process and {r['network_events']} network events, "
            f"kernel-lost {r['kernel_lost']}; every exec read and run {r['caught_up_s']:.1f} s after the start; "
            f"CPU of vigil watch {r['cpu_share'] * 100:.1f}% of one core, "
            f"{r['cpu_s'] / max(1, r['process_events'] + r['network_events']) * 1e6:.0f} us per event "
            f"(idle before: {r['idle_share'] * 100:.1f}%)",
            flush=True,
        )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rates", default="5000,10000,20000,40000")
    ap.add_argument(
        "--processes", action="store_true", help="process and network events (eBPF) instead of files"
    )
    ap.add_argument(
        "--detection-rules", metavar="DIR", help="a detection-rules checkout: its Linux rules run"
    )
    ap.add_argument("--storm", type=int, default=10000, help="/bin/true runs checked one by one (0: skip)")
    ap.add_argument("--exec-rate", type=int, default=1000)
    ap.add_argument("--conn-rate", type=int, default=1000)
    ap.add_argument(
        "--latency",
        action="store_true",
        help="only creation -> alert latency and CPU at 1,000 creations/s "
        "(with --detection-rules: the Linux rules loaded, process and network events on)",
    )
    ap.add_argument(
        "--split",
        action="store_true",
        help="with --processes: record the load's ring-buffer records, then time each part of "
        "watch on them (sensor documents, event lines, engine, scheduled rules) without a profiler",
    )
    ap.add_argument(
        "--rules-only", action="store_true", help="with --processes: only the run with the Linux rules"
    )
    ap.add_argument(
        "--profile",
        metavar="FILE",
        help="with --processes: run the last vigil watch under cProfile, stats to FILE",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("sensor_bench: needs root (fanotify)", file=sys.stderr)
        return 1
    if args.processes:
        return processes_main(args)
    made_modules = not MODULES.exists()
    made_parent = not MODULES.parent.exists()
    MODULES.mkdir(parents=True, exist_ok=True)
    rule_args = _rule_args(Path(args.detection_rules)) if args.detection_rules else ()
    rows: list[tuple] = []
    caps: list[tuple] = []
    try:
        rates = [int(r) for r in args.rates.split(",")]
        if not args.latency:
            rows = throughput(rates, args.seconds, "sh") + throughput(rates, args.seconds, "swp")
            caps = [(ext, *capacity(ext=ext)) for ext in ("sh", "swp")]
        lat_runs = [(ext, *latency_and_cpu(1000, args.seconds * 2, ext, rule_args)) for ext in ("sh", "swp")]
    finally:
        if made_parent:
            shutil.rmtree(MODULES.parent, ignore_errors=True)
        elif made_modules:
            shutil.rmtree(MODULES, ignore_errors=True)
    print(f"CPUs: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    if rule_args:
        print(f"rules: {' '.join(rule_args[1::2])}")
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
