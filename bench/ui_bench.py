"""How fast the triage pages answer with many alerts in the store.

Builds a store of ``--alerts`` alerts (default 100,000): the bundled rule's real alerts on
the bundled sample, each copied with a new id, time, host, severity and rule (so the
documents are the shape the engine writes), starts ``vigil serve --store`` on it, and
times each page as a browser would fetch it: the first load, and the median of
``--repeat`` more (counts are kept until the store changes), slowest first. The
``orjson`` load of every stored alert is measured as a floor: a KQL search must read
documents (at most 10,000 of them).

    python bench/ui_bench.py [--alerts 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import http.client
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.rules.loaders import bundled_rules
from vigil.store.alerts import AlertStore
from vigil.store.events import iso_millis

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "src" / "vigil" / "data" / "samples" / "linux-endpoint-events.ndjson"
SEVERITIES = ("low", "medium", "high", "critical")


def build_store(path: Path, count: int) -> None:
    templates = list(scan_paths(Engine(bundled_rules().rules), [str(SAMPLE)]))
    store = AlertStore(path)
    start = 1_780_000_000_000
    batch = []
    for i in range(count):
        doc = orjson.loads(orjson.dumps(templates[i % len(templates)]))
        ts = iso_millis(start + i * 6_000)  # 100,000 alerts over a week
        doc["kibana.alert.uuid"] = f"{i:064x}"
        doc["@timestamp"] = ts
        doc["kibana.alert.original_time"] = ts
        doc["host"]["name"] = f"host-{i % 500:03d}"
        doc["process"]["entity_id"] = f"entity-{i % 20_000}"
        sev = SEVERITIES[i % 4] if i % 10 == 0 else "low"
        doc["kibana.alert.severity"] = sev
        rule = i % 40
        doc["kibana.alert.rule.rule_id"] = f"rule-{rule:02d}" if rule else doc["kibana.alert.rule.rule_id"]
        doc["kibana.alert.rule.name"] = f"Rule number {rule}" if rule else doc["kibana.alert.rule.name"]
        if i % 7 == 0:
            doc["kibana.alert.workflow_status"] = "closed"
        batch.append(doc)
        if len(batch) == 5000:
            store.add(batch)
            batch = []
    store.add(batch)
    store.close()


def get(host: str, port: int, path: str) -> tuple[int, float, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=300)
    t0 = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.perf_counter() - t0
    conn.close()
    return resp.status, elapsed, body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alerts", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--keep", metavar="FILE", help="build the store at FILE and keep it (reused if it exists)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.keep) if args.keep else Path(tmp) / "alerts.db"
        t0 = time.perf_counter()
        if not db.exists():
            build_store(db, args.alerts)
        print(
            f"store: {args.alerts:,} alerts, {db.stat().st_size / 1e6:.0f} MB, built in {time.perf_counter() - t0:.1f} s"
        )
        t0 = time.perf_counter()
        for (doc,) in sqlite3.connect(db).execute("SELECT doc FROM alerts"):
            orjson.loads(doc)
        floor = time.perf_counter() - t0
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vigil.cli",
                "serve",
                "--store",
                str(db),
                "--data",
                tmp,
                "--listen",
                "127.0.0.1:0",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = proc.stdout.readline()
            m = re.search(r"http://([\d.]+):(\d+)", line)
            if not m:
                raise SystemExit(f"server did not start: {line!r}")
            host, port = m.group(1), int(m.group(2))
            (uuid,) = (
                sqlite3.connect(db).execute("SELECT uuid FROM alerts ORDER BY ts_ms DESC LIMIT 1").fetchone()
            )
            pages = {
                "alerts (open, newest first)": "/ui/alerts",
                "alerts, any status, page 100": "/ui/alerts?status=&page=100",
                "alerts sorted by severity": "/ui/alerts?status=&sort=severity&dir=desc",
                "alerts of one host, high": "/ui/alerts?host=host-007&severity=high",
                "alerts grouped by host": "/ui/alerts?status=&group=host",
                "alerts, KQL search": "/ui/alerts?status=&q=process.name:+cp+and+host.name:+host-00*",
                "one alert (related by host and entity)": f"/ui/alerts/{uuid}",
                "rules": "/ui/rules",
                "health": "/ui/health",
            }
            results = []
            for name, path in pages.items():
                times = []
                for _ in range(1 + args.repeat):
                    status, elapsed, body = get(host, port, path)
                    if status != 200:
                        raise SystemExit(f"{path}: HTTP {status}")
                    times.append(elapsed)
                # The first load reads the store; the next ones may find its counts kept
                # (until something is written to the store).
                results.append((times[0], name, len(body), statistics.median(times[1:])))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"floor: orjson load of every stored alert: {floor * 1000:.0f} ms")
    print(f"{'page':42} {'first ms':>9} {'again ms':>9} {'KB':>6} {'first/floor':>12}")
    for first, name, size, again in sorted(results, reverse=True):
        print(f"{name:42} {first * 1000:9.0f} {again * 1000:9.0f} {size / 1024:6.0f} {first / floor:12.2f}")
    slowest = max(results)
    print(f"slowest page: {slowest[1]}, {slowest[0] * 1000:.0f} ms on first load with {args.alerts:,} alerts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
