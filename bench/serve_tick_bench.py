"""One tick of `vigil serve`'s scheduler with every runnable prebuilt rule over a window of
stored events: rules due together searched in one pass of the engine core, against each
rule searching alone (the path the shared pass replaces), in the same run.

    python bench/serve_tick_bench.py [--count 20000] [--alone-count 2000] [--rules-dir DIR]

The events (``gen_events.py``'s mixed fleet, spread over the last four minutes, so every
5-minute look-back holds them all) are stored first; the tick is timed alone. Each row
gives the tick's seconds, events per second of window, the rules run, and the alerts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import gen_events  # noqa: E402

from vigil.rules.loaders import load_rules  # noqa: E402
from vigil.scheduler.clock import ManualClock  # noqa: E402
from vigil.scheduler.runner import Scheduler  # noqa: E402
from vigil.store.alerts import AlertStore  # noqa: E402
from vigil.store.events import EventStore, Write  # noqa: E402
from vigil.store.runs import RunStore  # noqa: E402

NOW = 1_780_000_000_000


def _index(doc: dict) -> str:
    ds = doc.get("data_stream") or {}
    return f"{ds.get('type', 'logs')}-{ds.get('dataset', 'generic')}-{ds.get('namespace', 'default')}"


def tick(rules, count: int, shared_min: int) -> tuple[float, int, int]:
    start = datetime.fromtimestamp((NOW - 240_000) / 1000, UTC)
    events = list(gen_events.generate(count, seed=5, start=start))
    step = 240_000 / max(1, count)
    for n, doc in enumerate(events):  # spread over four minutes
        doc["@timestamp"] = datetime.fromtimestamp((NOW - 240_000 + n * step) / 1000, UTC).isoformat()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "v.db"
        s = Scheduler(rules, EventStore(db), AlertStore(db), RunStore(db), clock=ManualClock(NOW))
        s.shared_min = shared_min
        s.run_timeout_s = 3600
        for k in range(0, len(events), 5000):
            s.events.write([Write(_index(e), e) for e in events[k : k + 5000]], NOW - 1000)
        t = time.perf_counter()
        runs = s.tick()
        elapsed = time.perf_counter() - t
        s.close()
    return elapsed, len(runs), sum(r.alerts_written for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=20_000, help="events in the window, shared pass")
    ap.add_argument("--alone-count", type=int, default=2_000, help="events in the window, rules alone")
    ap.add_argument("--rules-dir", default=str(REPO.parent / "shared" / "detection-rules"))
    args = ap.parse_args()
    base = Path(args.rules_dir)
    rules = [r for r in load_rules([base / "rules", base / "rules_building_block"]).rules if r.runnable]
    print(f"{len(rules)} runnable prebuilt rules, one tick")
    print(f"{'path':22} {'events':>8} {'tick s':>8} {'events/s':>9} {'runs':>6} {'alerts':>7}")
    for label, count, shared_min in (
        ("shared core pass", args.alone_count, 64),
        ("each rule alone", args.alone_count, 10**9),
        ("shared core pass", args.count, 64),
    ):
        elapsed, runs, alerts = tick(rules, count, shared_min)
        print(f"{label:22} {count:8,} {elapsed:8.1f} {count / elapsed:9,.0f} {runs:6} {alerts:7}", flush=True)


if __name__ == "__main__":
    main()
