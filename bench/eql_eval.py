"""Per-event cost of the compiled seed rule query against parsing the event.

    python bench/eql_eval.py [--count 200000] [--repeat 3]

Both are measured in the same run on the same generated ECS events: parsing
each NDJSON line with orjson (the floor any engine pays), evaluating the
compiled "Dracut Module Creation" query on the parsed document, and, for
reference, the tree-walking interpreter. The evaluation cost that counts is
the one a scan pays: (parse + evaluate each line) minus (parse each line),
with the document still in the CPU cache. Evaluating a list of documents
parsed long before is also shown; it is dominated by cache misses. The
target is evaluation < 1/5 of parsing.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "src"))

import gen_events  # noqa: E402

from vigil.eql import ast, interpreter  # noqa: E402
from vigil.eql.compiler import compile_event_filter  # noqa: E402
from vigil.eql.schema import Schema  # noqa: E402

SEED = REPO.parent / "shared" / "seed" / "dracut-module-creation.md"


def seed_query_text(path: Path = SEED) -> str:
    """The EQL of the seed rule, from the "Rule query" block of its page."""
    text = path.read_text(encoding="utf-8")
    m = re.search(r"## Rule query.*?```[a-z]*\n(.*?)```", text, re.S)
    if m is None:
        raise SystemExit(f"no rule query block in {path}")
    return m.group(1).strip()


def seed_query(text: str) -> ast.EventQuery:
    try:
        from vigil.eql import parse

        return parse(text).query
    except ImportError:
        return _seed_by_hand(text)


def _strings(block: str) -> tuple[ast.Literal, ...]:
    return tuple(ast.Literal(s) for s in re.findall(r'"([^"]*)"', block))


def _seed_by_hand(text: str) -> ast.EventQuery:
    """The seed query's tree built directly (used only while no parser is installed)."""

    def f(name: str) -> ast.Field:
        return ast.Field(tuple(name.split(".")))

    lists = re.findall(r"\(([^()]*)\)", text)
    file_paths, executables, exe_patterns, extensions = (_strings(b) for b in lists[:4])
    cond = ast.And(
        (
            ast.Comparison("==", f("host.os.type"), ast.Literal("linux")),
            ast.Comparison("==", f("event.type"), ast.Literal("creation")),
            ast.Comparison("!=", f("process.executable"), ast.Literal(None)),
            ast.Pattern("like~", f("file.path"), file_paths),
            ast.Not(
                ast.Or(
                    (
                        ast.In(f("process.executable"), executables),
                        ast.Pattern("like~", f("process.executable"), exe_patterns),
                        ast.In(f("file.extension"), extensions),
                        ast.And(
                            (
                                ast.Comparison("==", f("process.name"), ast.Literal("sed")),
                                ast.Pattern(":", f("file.name"), (ast.Literal("sed*"),)),
                            )
                        ),
                    )
                )
            ),
        )
    )
    return ast.EventQuery("file", cond)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    query = seed_query(seed_query_text())
    schema = Schema.ecs()
    compiled = compile_event_filter(query, schema)
    lines = [orjson.dumps(ev) for ev in gen_events.generate(args.count, seed=7)]
    docs = [orjson.loads(line) for line in lines]
    loads = orjson.loads

    def parse_all():
        for line in lines:
            loads(line)

    def parse_and_eval():
        # As a scan runs: each event is evaluated right after it is parsed.
        for line in lines:
            compiled(loads(line))

    def eval_cold():
        # Every document already parsed: a pass over memory that left the cache long ago.
        for doc in docs:
            compiled(doc)

    sample = docs[: max(1, len(docs) // 10)]

    def interp_sample():
        for doc in sample:
            interpreter.matches_event(query, doc, schema)

    hits = sum(1 for d in docs if compiled(d))
    ref_hits = sum(1 for d in sample if interpreter.matches_event(query, d, schema))
    assert ref_hits == sum(1 for d in sample if compiled(d)), "compiler and interpreter disagree"

    n = len(lines)
    # Interleaved, best of each: the difference of two runs is sensitive to drift.
    t_parse = t_both = float("inf")
    for _ in range(args.repeat):
        t_parse = min(t_parse, best(parse_all, 1) / n)
        t_both = min(t_both, best(parse_and_eval, 1) / n)
    t_eval = max(t_both - t_parse, 0.0)
    t_cold = best(eval_cold, args.repeat) / n
    t_interp = best(interp_sample, args.repeat) / len(sample)
    avg_bytes = sum(len(x) for x in lines) / n

    rows = [
        ("orjson.loads (baseline)", t_parse),
        ("loads + compiled query", t_both),
        ("compiled query (in pipe)", t_eval),
        ("compiled query (cold docs)", t_cold),
        ("interpreter (cold docs)", t_interp),
    ]
    print(f"events: {n:,}  avg line: {avg_bytes:.0f} B  matches: {hits}  (Python {sys.version.split()[0]})")
    print(f"{'step':<28}{'ns/event':>10}{'vs parse':>10}")
    for name, t in rows:
        print(f"{name:<28}{t * 1e9:>10.0f}{t / t_parse:>10.3f}")
    verdict = "meets" if t_eval < t_parse / 5 else "misses"
    print(f"evaluation / parse = {t_eval / t_parse:.3f} ({verdict} the < 0.2 target)")


if __name__ == "__main__":
    main()
