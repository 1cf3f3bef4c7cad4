"""The columnar engine core against the routed per-event path, with ratios to the floor.

    python bench/core_bench.py [--count 20000] [--rules-dir DIR] [--mix default,linux] [--paths core,routed]
                               [--repeat N]

For each event mix of ``gen_events.py`` (``default``: the mixed fleet; ``linux``:
Linux endpoints with process lineage), on one generated file: the floor (orjson
parsing every line, nothing else), then every runnable prebuilt rule (EQL and KQL)
in a fresh process per path: ``core`` (:mod:`vigil.engine.core`) and ``routed``
(``Engine.batch``, the per-event path the core replaces). Each row gives events/s
past start-up, its ratio to the floor, the start-up (rules loaded and compiled,
engine built), the alerts and the child's peak resident memory. ``--repeat`` keeps the
best of N runs of each row, the paths taking turns so that a busy machine weighs on both.
"""

from __future__ import annotations

import argparse
import json
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

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from datetime import UTC, datetime
from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.events.readers import ReadStats
from vigil.rules.loaders import load_rules
dirs, path, core = sys.argv[1].split(","), sys.argv[2], sys.argv[3] == "core"
rules = load_rules(dirs).rules
engine = Engine(rules, now=datetime(2026, 12, 1, tzinfo=UTC))
for r in engine.rules:
    r.compiled()
t1 = time.perf_counter()
stats = ReadStats()
alerts = sum(1 for _ in scan_paths(engine, [path], stats=stats, core=core))
t2 = time.perf_counter()
print(json.dumps({"start": t1 - t0, "scan": t2 - t1, "events": stats.events, "alerts": alerts,
                  "rules": len(engine.rules),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def floor(path: Path) -> float:
    """Events per second of orjson parsing every line."""
    t = time.perf_counter()
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            orjson.loads(line)
            n += 1
    return n / (time.perf_counter() - t)


def run(path: Path, rules: list[str], kind: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, ",".join(rules), str(path), kind],
        capture_output=True,
        check=True,
        cwd=REPO,
    )
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--rules-dir", default=str(REPO.parent / "shared" / "detection-rules"))
    ap.add_argument("--mix", default="default,linux")
    ap.add_argument("--paths", default="core,routed")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs of each row")
    args = ap.parse_args()
    base = Path(args.rules_dir)
    rules = [str(base / "rules"), str(base / "rules_building_block")]
    print(f"{args.count:,} events per mix, every runnable prebuilt rule, one process")
    print(f"{'mix':8} {'path':7} {'events/s':>9} {'x floor':>8} {'start s':>8} {'alerts':>7} {'peak MB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for mix in args.mix.split(","):
            path = Path(tmp) / f"{mix}.ndjson"
            gen_events.write(str(path), args.count, mix=mix)
            kinds = args.paths.split(",")
            best: dict[str, dict] = {}
            base_rate = 0.0
            for _ in range(args.repeat):
                base_rate = max(base_rate, floor(path))
                for kind in kinds:
                    r = run(path, rules, kind)
                    if kind not in best or r["scan"] < best[kind]["scan"]:
                        best[kind] = r
            print(f"{mix:8} {'floor':7} {base_rate:9,.0f} {1:8.3f}")
            for kind in kinds:
                r = best[kind]
                rate = r["events"] / r["scan"]
                print(
                    f"{mix:8} {kind:7} {rate:9,.0f} {rate / base_rate:8.3f} {r['start']:8.1f} "
                    f"{r['alerts']:7} {r['peak_mb']:8.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
