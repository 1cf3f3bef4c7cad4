"""Wildcard and regex matching: time against value length, to show it is linear.

    python bench/matching_bench.py [--sizes 1000,10000,100000,1000000] [--repeat 3]

For each pattern and value length (1 KB to 1 MB) it prints the best time of one
match, and its ratio to a baseline measured in the same run on the same value:
``str.find`` of a character the value lacks, one pass of C over the whole value.
Linear matching keeps the ratio flat as the value grows ten-fold; a quadratic or
exponential engine makes it grow with each size.

Patterns: the prebuilt corpus's worst (most ``*`` segments, a ``?`` inside
segments, its regexes with nested repetition and long alternations, the busybox
rule's ``*import*pty*spawn*``) and adversarial ones (``*a*b``, ``*a*a*b``,
``(a+)+$``), each against a value built to make a backtracking engine try every
split. A last table shows what Python's backtracking ``re`` cost on the same
patterns at the lengths it can finish.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vigil.lucene.regexp import compile_regexp  # noqa: E402
from vigil.lucene.wildcard import compile_wildcard  # noqa: E402

# (name, kind, pattern, case-insensitive, unit of the value: repeated to length)
CASES = [
    ("adversarial *a*b", "wildcard", "*a*b", False, "a"),
    ("adversarial *a*a*b", "wildcard", "*a*a*b*", False, "a"),
    ("adversarial *a?a*a?b*", "wildcard", "*a?a*a?b*", False, "a"),
    ("busybox *import*pty*spawn*", "wildcard", "*import*pty*spawn*", False, "import pty "),
    ("hex payload: 15 segments", "wildcard", "*\\x*" * 7 + "*\\x*", True, "\\X"),
    ("powershell *^*^*^*^*^*^*^*^*^*", "wildcard", "*^*^*^*^*^*^*^*^*^*", True, "^ "),
    ("sql injection case when", "wildcard", "*case when (*=*) then*else*end*", True, "case when (a=b) then "),
    ("adversarial (a+)+$", "regex", "(a+)+$", False, "a"),
    ("adversarial .*a.*a.*b", "regex", ".*a.*a.*b", False, "a"),
    ("corpus ([^ ]+[ ]{3,}[^ ]*){3,}.*", "regex", "([^ ]+[ ]{3,}[^ ]*){3,}.*", False, "ab   "),
    (
        "corpus dotted quad with port",
        "regex",
        ".*[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]{1,5})?\\/[^ ]+.*",
        False,
        "1.2.3.",
    ),
    (
        "corpus host:port path",
        "regex",
        ".*[A-Za-z0-9][A-Za-z0-9\\-]*(\\.[A-Za-z0-9][A-Za-z0-9\\-]*)+(:[0-9]{1,5})?\\/[^ ]+.*",
        False,
        "a.b-c.",
    ),
    (
        "corpus s3 ransom note (regex~)",
        "regex",
        "arn:aws:s3:::[^/]+/.*?(how|decrypt|restor|help|instruct|read|get|recov|save|encrypt|delet|info|ransom).*",
        True,
        "arn:aws:s3:::b/x",
    ),
]


def _value(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _best(fn, value: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(value)
        best = min(best, time.perf_counter() - t)
    return best


def _matcher(kind: str, pattern: str, fold: bool):
    if kind == "wildcard":
        return compile_wildcard(pattern, fold)
    return compile_regexp(pattern, fold).fullmatch


def _backtracking(kind: str, pattern: str, fold: bool) -> re.Pattern:
    if kind == "wildcard":
        text = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    else:
        text = pattern
    return re.compile(text, re.DOTALL | (re.IGNORECASE if fold else 0))


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms" if seconds >= 1e-4 else f"{seconds * 1e6:9.1f} us"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    base = {n: _best(lambda v: v.find("\x00"), _value("ab", n), args.repeat) for n in sizes}
    print("baseline: str.find of an absent character over the value")
    print("  " + "  ".join(f"{n:>9,} B: {_fmt(base[n])}" for n in sizes))
    print()
    print(f"{'pattern':<36}" + "".join(f"{n:>22,} B" for n in sizes) + "   growth per 10x")
    for name, kind, pattern, fold, unit in CASES:
        match = _matcher(kind, pattern, fold)
        times = [_best(match, _value(unit, n), args.repeat) for n in sizes]
        cells = "".join(f"{_fmt(t)} ({t / base[n]:6.0f}x)" for t, n in zip(times, sizes, strict=True))
        growth = (times[-1] / times[0]) ** (1 / max(1, len(sizes) - 1)) if times[0] > 0 else 0.0
        print(f"{name:<36}{cells}   {growth:5.1f}")
    print()
    print("before: Python's backtracking re on the same patterns (lengths it finishes in seconds)")
    before = [
        ("adversarial *a*b", "wildcard", "*a*b", False, "a", (1000, 10000)),
        ("adversarial *a*a*b", "wildcard", "*a*a*b*", False, "a", (300, 1000)),
        ("busybox *import*pty*spawn*", "wildcard", "*import*pty*spawn*", False, "import pty ", (1000, 3000)),
        ("adversarial (a+)+$", "regex", "(a+)+$", False, "a", (18, 22)),
    ]
    for name, kind, pattern, fold, unit, lengths in before:
        rx = _backtracking(kind, pattern, fold)
        cells = []
        for n in lengths:
            value = _value(unit, n) + ("!" if kind == "regex" else "")
            t = _best(lambda v, rx=rx: rx.fullmatch(v), value, 1)
            mine = _best(_matcher(kind, pattern, fold), value, args.repeat)
            cells.append(f"{n:>6,} B: re {_fmt(t)}, vigil {_fmt(mine)}")
        print(f"{name:<36}" + "   ".join(cells))


if __name__ == "__main__":
    main()
