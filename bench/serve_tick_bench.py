"""One tick of `vigil serve`'s scheduler with every runnable prebuilt rule over a window of
stored events: rules due together searched together (one engine core pass per window for
the event, sequence and sample rules, one replay feed for the threshold, new terms,
indicator match and ES|QL rules, one transaction per tick), against each rule searching
alone (the path the shared passes replace), in the same run.

    python bench/serve_tick_bench.py [--count 20000] [--count 100000] [--alone-count 2000]
                                     [--rules-dir DIR]

The events (``gen_events.py``'s mixed fleet, spread over the last four minutes, so every
5-minute look-back holds them all) are stored first; the tick is timed alone (the first
tick after a start: matchers compiled on first use and new terms histories read from the
store are part of it). Each row gives the tick's seconds, events per second of window, the
rules run, the alerts, milliseconds per run, and the next tick five minutes later (the
5-minute rules over the same events again, the hourly ones not due). The row of 0 events
is the per-run overhead: everything a tick does but search events. ``--alone-count 0``
skips the rows of rules searching alone.
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


def tick(rules, count: int, together: bool) -> tuple[float, int, int, float, int]:
    """The first tick over ``count`` stored events, the rules searched together or each alone
    (seconds, runs, alerts), and the next one five minutes later (seconds, runs)."""
    start = datetime.fromtimestamp((NOW - 240_000) / 1000, UTC)
    events = list(gen_events.generate(count, seed=5, start=start))
    step = 240_000 / max(1, count)
    for n, doc in enumerate(events):  # spread over four minutes
        doc["@timestamp"] = datetime.fromtimestamp((NOW - 240_000 + n * step) / 1000, UTC).isoformat()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "v.db"
        s = Scheduler(rules, EventStore(db), AlertStore(db), RunStore(db), clock=ManualClock(NOW))
        if not together:
            s.shared_min = s.scheduled_shared_min = 10**9
        s.run_timeout_s = 3600
        for k in range(0, len(events), 5000):
            s.events.write([Write(_index(e), e) for e in events[k : k + 5000]], NOW - 1000)
        t = time.perf_counter()
        runs = s.tick()
        elapsed = time.perf_counter() - t
        # The next tick, five minutes on: the 5-minute rules search the same events again.
        s.clock.now = NOW + 300_000
        t = time.perf_counter()
        again = s.tick()
        elapsed_again = time.perf_counter() - t
        s.close()
    return elapsed, len(runs), sum(r.alerts_written for r in runs), elapsed_again, len(again)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--count",
        type=int,
        action="append",
        help="events in the window, shared passes (repeatable; default 20000)",
    )
    ap.add_argument(
        "--alone-count", type=int, default=2_000, help="events in the window, rules alone (0: none)"
    )
    ap.add_argument("--rules-dir", default=str(REPO.parent / "shared" / "detection-rules"))
    args = ap.parse_args()
    base = Path(args.rules_dir)
    rules = [r for r in load_rules([base / "rules", base / "rules_building_block"]).rules if r.runnable]
    print(f"{len(rules)} runnable prebuilt rules, one tick")
    print(
        f"{'path':22} {'events':>8} {'tick s':>8} {'events/s':>9} {'runs':>6} {'alerts':>7} {'ms/run':>7}"
        f" {'next tick s':>11} {'runs':>6}"
    )
    rows = [("shared passes", 0, True)]
    if args.alone_count:
        rows += [("shared passes", args.alone_count, True), ("each rule alone", args.alone_count, False)]
    rows += [("shared passes", count, True) for count in args.count or [20_000]]
    for label, count, together in rows:
        elapsed, runs, alerts, again, runs_again = tick(rules, count, together)
        rate = f"{count / elapsed:9,.0f}" if count else f"{'':9}"
        print(
            f"{label:22} {count:8,} {elapsed:8.1f} {rate} {runs:6} {alerts:7} {1000 * elapsed / max(1, runs):7.2f}"
            f" {again:11.1f} {runs_again:6}",
            flush=True,
        )


if __name__ == "__main__":
    main()
