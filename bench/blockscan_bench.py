"""The block scan: which lines of an NDJSON block to parse, in C and in Python, against
parsing every line with orjson, on the same generated events in the same run.

    python bench/blockscan_bench.py                # 200,000 events, best of 3
    python bench/blockscan_bench.py --count 50000 --repeat 5

Rows: the C scan on its vector path (AVX2 where the processor has it, else SSE2)
for the seed rule's literal, with and without the SentinelOne and Endgame markers;
the C scan with 16 literals (too many needles for the vector path: the pair table);
the Python scan; and orjson parsing every line (the floor the scan must beat by
far, since it decides which lines to parse).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_events  # noqa: E402
from run import machine  # noqa: E402

from vigil.engine.batch import blocks  # noqa: E402
from vigil.engine.blockscan import BlockScanner  # noqa: E402

SEED = [b"/lib/dracut/modules.d/", b"/usr/lib/dracut/modules.d/"]
# Enough literals that the C scan leaves its vector path for the pair table.
MANY = SEED + [b"cmd.exe", b"powershell", b"/etc/cron", b"rundll32", b"/tmp/", b"curl", b"wget", b"base64"]
MANY += [b"sudo", b"chmod", b"/dev/shm", b"certutil", b"mshta", b"regsvr32"]


def best(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        path = Path(tmp) / "events.ndjson"
        gen_events.write(str(path), args.count)
        with open(path, "rb") as fh:
            data = [bytes(b) for b in blocks(fh)]
    lines = sum(b.count(b"\n") for b in data)

    def scan(scanner: BlockScanner, python: bool = False):
        run = scanner.scan_python if python else scanner.scan
        return lambda: [run(b) for b in data]

    def parse_all():
        for b in data:
            for x in b.split(b"\n"):
                if x:
                    orjson.loads(x)

    floor = best(args.repeat, parse_all)
    rows = [("orjson parse of every line (floor)", floor)]
    seed = BlockScanner(SEED)
    if seed.is_native:
        rows.append(("C scan, seed rule", best(args.repeat, scan(seed))))
        rows.append(
            (
                "C scan, seed rule, no vendor markers",
                best(args.repeat, scan(BlockScanner(SEED, vendor=False))),
            )
        )
        rows.append(("C scan, 16 literals (pair table)", best(args.repeat, scan(BlockScanner(MANY)))))
    else:
        print("the C block scan is not built: Python rows only", file=sys.stderr)
    rows.append(("Python scan, seed rule", best(args.repeat, scan(seed, python=True))))

    print(
        f"\n{lines:,} lines, {sum(map(len, data)) / 1e6:,.0f} MB, {machine()}, Python {sys.version.split()[0]}\n"
    )
    print(f"{'run':<42} {'µs/line':>8} {'x floor':>8}")
    for label, seconds in rows:
        print(f"{label:<42} {seconds / lines * 1e6:>8.3f} {floor / seconds:>8.2f}")


if __name__ == "__main__":
    main()
