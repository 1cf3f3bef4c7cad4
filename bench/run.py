"""Vigil's scan benchmark: events per second against baselines measured in the same run.

    python bench/run.py [--count 1000000] [--rules-dir DIR] [--keep] [--repeat N] [--events FILE]
                        [--spark MASTER]

Baselines, on the same generated file:
  floor   parse every line with orjson and do nothing else;
  duckdb  DuckDB's read_json with hand-written SQL equivalent to the seed rule.
Vigil runs `vigil scan` end to end (a subprocess, output discarded) with the
bundled seed rule and with every rule of the prebuilt corpus that runs (every type), single process
and with --jobs 2 (and on Spark with --spark, e.g. local[2]). Peak memory is the
child's maximum resident set size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import gen_events  # noqa: E402

SEED_SQL = """
SELECT count(*) FROM read_json('{path}', format='newline_delimited', union_by_name=true,
                              maximum_object_size=1048576)
WHERE host.os.type = 'linux'
  AND list_contains(event.type, 'creation')
  AND process.executable IS NOT NULL
  AND (lower(file.path) LIKE '/lib/dracut/modules.d/%' OR lower(file.path) LIKE '/usr/lib/dracut/modules.d/%')
  AND NOT (
    process.executable IN ({excluded})
    OR lower(process.executable) LIKE '/nix/store/%' OR lower(process.executable) LIKE '/var/lib/dpkg/%'
    OR lower(process.executable) LIKE '/tmp/vmis.%' OR lower(process.executable) LIKE '/snap/%'
    OR lower(process.executable) LIKE '/dev/fd/%' OR lower(process.executable) LIKE '/usr/lib/virtualbox/%'
    OR coalesce(file.extension IN ('swp', 'swpx', 'swx', 'dpkg-remove'), false)
    OR coalesce(process.name = 'sed' AND lower(file.name) LIKE 'sed%', false)
  )
"""
EXCLUDED = [
    "/bin/dpkg",
    "/usr/bin/dpkg",
    "/bin/dockerd",
    "/usr/bin/dockerd",
    "/usr/sbin/dockerd",
    "/bin/microdnf",
    "/usr/bin/microdnf",
    "/bin/rpm",
    "/usr/bin/rpm",
    "/bin/snapd",
    "/usr/bin/snapd",
    "/bin/yum",
    "/usr/bin/yum",
    "/bin/dnf",
    "/usr/bin/dnf",
    "/bin/podman",
    "/usr/bin/podman",
    "/bin/dnf-automatic",
    "/usr/bin/dnf-automatic",
    "/bin/pacman",
    "/usr/bin/pacman",
    "/usr/bin/dpkg-divert",
    "/bin/dpkg-divert",
    "/sbin/apk",
    "/usr/sbin/apk",
    "/usr/local/sbin/apk",
    "/usr/bin/apt",
    "/usr/sbin/pacman",
    "/usr/bin/puppet",
    "/bin/puppet",
    "/opt/puppetlabs/puppet/bin/puppet",
    "/usr/bin/chef-client",
    "/bin/chef-client",
    "/bin/autossl_check",
    "/usr/bin/autossl_check",
    "/proc/self/exe",
    "/dev/fd/*",
    "/usr/bin/pamac-daemon",
    "/bin/pamac-daemon",
    "/usr/lib/snapd/snapd",
    "/usr/local/bin/dockerd",
    "/usr/bin/crio",
    "/usr/sbin/crond",
    "/opt/puppetlabs/puppet/bin/ruby",
    "/usr/libexec/platform-python",
    "/kaniko/kaniko-executor",
    "/bin/install",
    "/usr/lib/systemd/systemd",
    "/usr/sbin/sshd",
    "/usr/bin/gitlab-runner",
    "/opt/gitlab/embedded/bin/ruby",
    "/usr/sbin/gdm",
    "/usr/bin/install",
    "/usr/local/manageengine/uems_agent/bin/dcregister",
    "/usr/local/bin/pacman",
]


def floor(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    n = 0
    with open(path, "rb") as f:
        for line in f:
            orjson.loads(line)
            n += 1
    return time.perf_counter() - start, n


def duckdb_seed(path: Path) -> tuple[float, int]:
    import duckdb

    sql = SEED_SQL.format(path=path, excluded=", ".join(f"'{e}'" for e in EXCLUDED))
    con = duckdb.connect()
    con.execute("SET threads TO 1")
    start = time.perf_counter()
    (count,) = con.execute(sql).fetchone()
    return time.perf_counter() - start, count


class ScanFailed(Exception):
    """A `vigil scan` run that exited non-zero: its row says so, the others still run."""


# The rule cache every run reads (vigil.rules.cache): one of its own, filled before the
# timed runs, so that they do not depend on what earlier runs left.
CACHE = tempfile.mkdtemp(prefix="vigil-bench-cache-")


def vigil_scan(path: Path, extra: list[str]) -> tuple[float, int, int]:
    """Seconds, alerts and peak RSS (KiB) of one `vigil scan` run (alerts written to a file)."""
    with tempfile.TemporaryDirectory(prefix="vigil-bench-out-") as tmp:
        out_path = Path(tmp) / "alerts.ndjson"
        cmd = [
            str(REPO / ".venv" / "bin" / "vigil"),
            "scan",
            "--format",
            "ndjson",
            "--output",
            str(out_path),
            *extra,
            str(path),
        ]
        with tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "VIGIL_CACHE_DIR": CACHE}
            )
            # wait4 gives this child's peak resident set size (the largest of it and the
            # workers it waited for).
            _, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            stderr = err.read()
        if proc.returncode != 0:
            raise ScanFailed(f"vigil scan failed ({' '.join(cmd)}):\n{stderr.decode()[-2000:]}")
        with open(out_path, "rb") as fh:
            alerts = sum(1 for _ in fh)
    return elapsed, alerts, usage.ru_maxrss


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--rules-dir", default=str(REPO.parent / "shared" / "detection-rules"))
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--skip", default="", help="comma-separated rows to skip (duckdb,all,jobs)")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs for each row (default 1)")
    ap.add_argument("--events", help="an events file made before (with --keep) instead of a new one")
    ap.add_argument("--spark", metavar="MASTER", help="also run vigil scan --spark MASTER, e.g. local[2]")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    if args.events:
        work, data = None, Path(args.events)
    else:
        work = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
        data = work / "events.ndjson"
        print(f"generating {args.count:,} events ...", file=sys.stderr)
        gen_events.write(str(data), args.count)
    size_mb = data.stat().st_size / 1e6
    rows: list[tuple[str, float | None, str, int | None]] = []
    duck = None

    def best(run, *a):
        results = [run(*a) for _ in range(max(1, args.repeat))]
        return min(results, key=lambda r: r[0])

    t, n = best(floor, data)
    base = n / t
    rows.append(("floor: orjson parse of every line", base, "", None))
    if "duckdb" not in skip:
        t, c = best(duckdb_seed, data)
        duck = n / t
        rows.append(("DuckDB read_json + seed rule SQL (1 thread)", duck, f"{c} matches", None))
    rules = Path(args.rules_dir)
    runs = [("vigil scan, seed rule", [])]
    if "all" not in skip and rules.is_dir():
        runs.append(
            (
                "vigil scan, all runnable prebuilt rules",
                ["--rules", str(rules / "rules"), "--rules", str(rules / "rules_building_block")],
            )
        )
    empty = Path(CACHE) / "empty.ndjson"
    empty.write_bytes(b"")
    for label, extra in list(runs):
        # The first start-up fills the rule cache (reported apart); the timed runs read it.
        cold = vigil_scan(empty, extra)[0]
        warm = vigil_scan(empty, extra)[0]
        print(
            f"{label}: start-up {cold:.1f} s from an empty rule cache, {warm:.1f} s cached", file=sys.stderr
        )
        variants = [("", [])]
        if "jobs" not in skip:
            variants.append((", --jobs 2", ["--jobs", "2"]))
        if args.spark:
            variants.append((f", --spark {args.spark}", ["--spark", args.spark]))
        for suffix, more in variants:
            try:
                t, alerts, rss = best(vigil_scan, data, [*extra, *more])
            except ScanFailed as exc:
                print(exc, file=sys.stderr)
                rows.append((label + suffix, None, "FAILED (see above)", None))
                continue
            rows.append((label + suffix, n / t, f"{alerts} alerts", rss))

    print(f"\n{n:,} events, {size_mb:,.0f} MB, {machine()}, Python {sys.version.split()[0]}\n")
    print(f"{'run':<62} {'events/s':>12} {'x floor':>8} {'x DuckDB':>9}  {'peak MB':>8}  result")
    for label, eps, result, rss in rows:
        if eps is None:
            print(f"{label:<62} {'':>12} {'':>8} {'':>9}  {'':>8}  {result}")
            continue
        mb = f"{rss / 1024:.0f}" if rss else ""
        vs_duck = f"{eps / duck:>9.2f}" if duck else f"{'':>9}"
        print(f"{label:<62} {eps:>12,.0f} {eps / base:>8.2f} {vs_duck}  {mb:>8}  {result}")
    shutil.rmtree(CACHE, ignore_errors=True)
    if work is None:
        return
    if not args.keep:
        data.unlink()
        work.rmdir()
    else:
        print(f"\nkept {data}")


if __name__ == "__main__":
    main()
