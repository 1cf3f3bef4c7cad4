"""The columnar engine core against the routed per-event path, with ratios to the floor.

    python bench/core_bench.py [--count 20000] [--rules-dir DIR] [--mix default,linux] [--paths core,routed]
                               [--repeat N]

For each event mix of ``gen_events.py`` (``default``: the mixed fleet; ``linux``:
Linux endpoints with process lineage), on one generated file: the floor (orjson
parsing every line, nothing else), then every runnable prebuilt rule (EQL and KQL)
in a fresh process per path: ``core`` (:mod:`vigil.engine.core`), ``jobs2`` (the core
in two worker processes, each over a share of the rules, as ``--jobs 2``) and ``routed``
(``Engine.batch``, the per-event path the core replaces); then the replayed schedule of
each scheduled rule type alone (``replay:threshold``, ``replay:new_terms``, ``replay:esql``,
``replay:threat_match``: ``vigil scan``'s second pass). Each row gives events/s
past start-up, its ratio to the floor, the start-up (rules loaded from the rule cache,
engine built), the alerts and the peak resident memory of one process. Before the rows,
the start-up with the whole set, from an empty rule cache and from a filled one. ``--repeat`` keeps the
best of N runs of each row, the paths taking turns so that a busy machine weighs on both.
"""

from __future__ import annotations

import argparse
import json
import os
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
dirs, path, kind = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
rules = load_rules(dirs).rules
engine = Engine(rules, now=datetime(2026, 12, 1, tzinfo=UTC))
t1 = time.perf_counter()
stats = ReadStats()
jobs = 2 if kind == "jobs2" else 1
if kind.startswith("replay:"):
    from vigil.engine.replay import replay_paths
    engine.scheduled = [r for r in engine.scheduled if r.type == kind[7:]]
    alerts = sum(1 for _ in replay_paths(engine, [path], stats=stats))
    stats.events = sum(1 for _ in open(path, "rb"))
else:
    alerts = 0 if kind == "start" else sum(
        1 for _ in scan_paths(engine, [path], stats=stats, core=kind != "routed", jobs=jobs))
t2 = time.perf_counter()
peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(json.dumps({"start": t1 - t0, "scan": t2 - t1, "events": stats.events, "alerts": alerts,
                  "rules": len(engine.rules) if ":" not in kind else len(engine.scheduled),
                "peak_mb": peak / 1024}))
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


def run(path: Path, rules: list[str], kind: str, cache: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, ",".join(rules), str(path), kind],
        capture_output=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "VIGIL_CACHE_DIR": cache},
    )
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--rules-dir", default=str(REPO.parent / "shared" / "detection-rules"))
    ap.add_argument("--mix", default="default,linux")
    ap.add_argument(
        "--paths",
        default="core,jobs2,routed,replay:threshold,replay:new_terms,replay:esql,replay:threat_match",
    )
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs of each row")
    args = ap.parse_args()
    base = Path(args.rules_dir)
    rules = [str(base / "rules"), str(base / "rules_building_block")]
    print(f"{args.count:,} events per mix, every runnable prebuilt rule")
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "cache")
        cold = run(Path(os.devnull), rules, "start", cache)
        warm = min((run(Path(os.devnull), rules, "start", cache) for _ in range(3)), key=lambda r: r["start"])
        print(
            f"start-up with {cold['rules']} rules: {cold['start']:.2f} s from an empty rule cache, "
            f"{warm['start']:.2f} s cached (peak {cold['peak_mb']:.0f} / {warm['peak_mb']:.0f} MB)"
        )
        print(
            f"{'mix':8} {'path':19} {'events/s':>9} {'x floor':>8} {'start s':>8} {'alerts':>7} {'peak MB':>8}"
        )
        for mix in args.mix.split(","):
            path = Path(tmp) / f"{mix}.ndjson"
            gen_events.write(str(path), args.count, mix=mix)
            kinds = args.paths.split(",")
            best: dict[str, dict] = {}
            base_rate = 0.0
            for _ in range(args.repeat):
                base_rate = max(base_rate, floor(path))
                for kind in kinds:
                    r = run(path, rules, kind, cache)
                    if kind not in best or r["scan"] < best[kind]["scan"]:
                        best[kind] = r
            print(f"{mix:8} {'floor':19} {base_rate:9,.0f} {1:8.3f}")
            for kind in kinds:
                r = best[kind]
                rate = r["events"] / r["scan"]
                print(
                    f"{mix:8} {kind:19} {rate:9,.0f} {rate / base_rate:8.3f} {r['start']:8.1f} "
                    f"{r['alerts']:7} {r['peak_mb']:8.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
