"""Batch scans: every rule of an engine over event files, folders or standard input.

This is the one entry point ``vigil scan`` uses, so whatever makes scanning
faster lives behind it and must give exactly the alerts of the plain path
(``Engine.scan`` over ``read_inputs``).

The fast path reads NDJSON files in blocks of about a megabyte. When the rules'
literals are few (the seed rule alone), it parses only the lines that hold one
(:mod:`vigil.engine.blockscan` finds them); otherwise it parses every line and
hands the engine the line's lower-cased text, so each rule is tested only on
lines holding its literals (see :mod:`vigil.eql.literals`). A line is always
parsed and offered to every rule when the literal test could be wrong for it: a
JSON escape, a non-ASCII byte, or a vendor shape that a normalizer rewrites.

``jobs > 1`` (or a Spark runner, :mod:`vigil.engine.spark`) splits the work:
with few rules into byte ranges of the inputs (at line ends; a gzip file is one
range), with many into shares of the rules, each over all the inputs. The
results are merged on their single-process place, so the alerts are those of a
single process, in the same order.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import orjson

from vigil.engine.blockscan import BlockScanner
from vigil.engine.engine import Engine
from vigil.errors import VigilError
from vigil.events import readers
from vigil.events.model import Event
from vigil.events.readers import (
    Reader,
    ReadStats,
    _files,
    few_brackets,
    gzip_problem,
    is_parquet,
    open_events,
    read_inputs,
)

PROGRESS_EVERY = 10_000
BLOCK = 1 << 20
# Above this many literals, finding each in every block costs more than parsing.
MAX_SCAN_LITERALS = 24
# From this many rules, one process runs the columnar core: per-event routing then
# costs more than filtering batches (with few, the raw-line scan skips most lines).
CORE_MIN = 64


def scan_paths(
    engine: Engine,
    paths: Iterable[str | Path],
    *,
    index: str | None = None,
    source: str | None = None,
    stats: ReadStats | None = None,
    on_progress: Callable[[int], None] | None = None,
    jobs: int = 1,
    fast: bool = True,
    runner=None,
    core: bool | None = None,
) -> Iterator[dict]:
    """Alerts of ``engine``'s rules over the events read from ``paths``.

    ``stats`` receives the events read and the lines skipped with their reasons;
    ``on_progress`` is called with the number of events read so far, now and then.
    ``jobs`` worker processes share the work (1: this process only); a ``runner``
    (:class:`ProcessRunner`, :class:`vigil.engine.spark.SparkRunner`) runs it elsewhere
    instead: byte ranges with few rules, shares of the rules with many. ``fast``
    False runs the plain path (every line parsed and offered to every rule).
    A line the fast path rules out is counted as one event without being parsed
    (``stats.unparsed`` says how many), so a malformed line that holds none of the
    rules' literals is not reported; with ``stats.strict`` every line is parsed.
    In one process, ``core`` (default: from ``CORE_MIN`` rules on) runs the columnar
    core of :mod:`vigil.engine.core` instead of the per-event routed path.
    """
    stats = stats if stats is not None else ReadStats()
    paths = [str(p) for p in paths]
    if not fast or source not in (None, "ecs"):
        events: Iterable[Event] = read_inputs(paths, index=index, source=source, stats=stats)
        if on_progress is not None:
            events = _counting(events, on_progress)
        yield from engine.scan(events)
        return
    names = list(_files(paths, stats))
    if any(is_parquet(n) for n in names):
        # Parquet files run their event rules as SQL inside DuckDB (vigil.events.parquet).
        from vigil.engine.columnar import scan_parquet

        for name in [n for n in names if is_parquet(n)]:
            yield from scan_parquet(engine, name, index=index, source=source, stats=stats)
        names = [n for n in names if not is_parquet(n)]
        if not names:
            if on_progress is not None:
                on_progress(stats.events)
            return
    if runner is not None and "-" in names:
        raise VigilError("standard input cannot be split into byte ranges: name files or folders")
    rescan = None if "-" in names else (lambda: read_inputs(names, index=index, source=source))
    if runner is None and jobs > 1 and "-" not in names and not stats.strict:
        # (--strict parses every line and stops at the first problem: one process.)
        runner = ProcessRunner(jobs)
    if runner is not None and len(engine.rules) >= RULE_SPLIT_MIN:
        yield from _rule_split(engine, names, index=index, source=source, stats=stats, runner=runner)
        if on_progress is not None:
            on_progress(stats.events)
        return
    if runner is not None:
        parts = parallel_items(engine, names, index=index, source=source, stats=stats, runner=runner)
        if on_progress is not None:
            parts = _counting_items(parts, stats, on_progress)
        yield from engine.merge_batch(parts, rescan=rescan)
        return
    if core if core is not None else len(engine.rules) >= CORE_MIN:
        # Many rules: the columnar core (vigil.engine.core) filters them over batches.
        from vigil.engine.core import EveryLine, scan_items

        items = _items(EveryLine, names, index=index, source=source, stats=stats)
        if on_progress is not None:
            items = _counting_items(items, stats, on_progress)
        yield from scan_items(engine, items, rescan=rescan)
        return
    items = _items(engine, names, index=index, source=source, stats=stats)
    if on_progress is not None:
        items = _counting_items(items, stats, on_progress)
    yield from engine.batch(items, rescan=rescan)


def _counting(events: Iterable[Event], on_progress: Callable[[int], None]) -> Iterator[Event]:
    n = 0
    for n, event in enumerate(events, 1):
        if n % PROGRESS_EVERY == 0:
            on_progress(n)
        yield event
    on_progress(n)


def _counting_items(items, stats: ReadStats, on_progress: Callable[[int], None]):
    mark = PROGRESS_EVERY
    for item in items:
        if stats.events >= mark:
            on_progress(stats.events)
            mark = stats.events + PROGRESS_EVERY
        yield item
    on_progress(stats.events)


class LineScanner:
    """Turns blocks of NDJSON into (event, lower-cased line or None) pairs."""

    def __init__(self, engine: Engine, index: str | None, source: str | None, stats: ReadStats) -> None:
        self.reader = Reader(index, source, stats)
        self.stats = stats
        lits = None if stats.strict else engine.line_literals()
        self.literals = sorted(lits) if lits is not None and len(lits) <= MAX_SCAN_LITERALS else None
        self.scanner = BlockScanner(self.literals or (), vendor=source is None)
        self.newlines = 0
        self.last_newlines = 0  # newlines of the last block

    def block(
        self, block: bytes | memoryview, file: str, first_line: int
    ) -> Iterator[tuple[Event, bytes | None]]:
        """Events of a block of whole lines whose first line is number ``first_line``."""
        lines = self.scanner.scan(block)
        unclean = lines.unclean
        self.last_newlines = lines.newlines
        if self.literals is None:
            data = bytes(block)
            yield from self._every_line(data, data.lower(), unclean, file, first_line)
            return
        for s, e, number in zip(lines.starts, lines.ends, lines.numbers, strict=True):
            raw = bytes(block[s:e])
            yield from self._parse(raw, None if s in unclean else raw.lower(), file, first_line + number)
        # Lines ruled out count as one event each, not parsed (blank ones are not
        # counted); parsed ones are counted by the reader.
        ruled_out = max(0, lines.count - len(lines.starts) - lines.blank)
        self.stats.events += ruled_out
        self.stats.unparsed += ruled_out

    def _every_line(self, block, low, unclean, file, first_line):
        s = 0
        line = first_line
        for raw, lraw in zip(block.split(b"\n"), low.split(b"\n"), strict=True):
            if raw and not raw.isspace():
                yield from self._parse(raw, None if s in unclean else lraw, file, line)
            s += len(raw) + 1
            line += 1

    def _parse(self, raw: bytes, low: bytes | None, file: str, line: int):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self.stats.problem(f"invalid JSON: {exc.msg}", file, line, exc.colno)
            return
        if type(value) is not dict or "_source" in value or "hits" in value:
            low = None  # hits, responses and arrays: read as the plain reader does
        for event in self.reader.make(value, file, line, not few_brackets(raw)):
            yield event, low


def _is_ndjson(head: bytes) -> bool:
    """The plain reader reads this file line by line: an object on its first line."""
    text = head.lstrip(b" \t\r\n")
    if not text.startswith(b"{"):
        return False
    end = text.find(b"\n")
    try:
        return isinstance(orjson.loads(text if end < 0 else text[:end]), dict)
    except orjson.JSONDecodeError:
        return False


# Handed on by :func:`blocks` in place of a line longer than the limit (skipped).
TOO_LONG = memoryview(b"\n")


def blocks(
    fh, start: int = 0, end: int | None = None, size: int = BLOCK, limit: int | None = None
) -> Iterator[bytes | memoryview]:
    """Blocks of whole lines from ``fh`` (already at ``start``), up to ``end`` bytes.

    Each read is handed on as a view, not copied: a line cut by the end of one read
    is joined with its rest from the next and handed on alone. A line longer than
    ``limit`` (at least ``size``: a line inside one read is never held) is not
    held: :data:`TOO_LONG` stands for it."""
    limit = readers.MAX_LINE_BYTES if limit is None else limit
    # The pieces of a line the reads so far cut, joined once: a long line costs linear time.
    head: list[bytes] = []
    held = 0
    skipping = False
    remaining = None if end is None else end - start
    while True:
        want = size if remaining is None else min(size, remaining)
        chunk = fh.read(want) if want > 0 else b""
        if remaining is not None:
            remaining -= len(chunk)
        if not chunk:
            if skipping:
                yield TOO_LONG
            elif head:
                yield b"".join(head)
            return
        first = 0
        if skipping or head:
            nl = chunk.find(b"\n")
            if nl < 0:
                if not skipping:
                    head.append(chunk)
                    held += len(chunk)
                    if held > limit:
                        head, held, skipping = [], 0, True
                continue
            first = nl + 1
            if skipping:
                skipping = False
                yield TOO_LONG
            elif held + first > limit:
                yield TOO_LONG
            else:
                head.append(chunk[:first])
                yield b"".join(head)
            head, held = [], 0
        last = chunk.rfind(b"\n") + 1
        if last > first:
            yield memoryview(chunk)[first:last] if first or last < len(chunk) else chunk
        rest = chunk[max(first, last) :]
        head = [rest] if rest else []
        held = len(rest)
        if held > limit:
            head, held, skipping = [], 0, True


def _items(engine: Engine, names: list[str], *, index, source, stats: ReadStats):
    scanner = LineScanner(engine, index, source, stats)
    for name in names:
        if name == "-":
            for event in read_inputs(["-"], index=index, source=source, stats=stats):
                yield event, None
            continue
        yield from file_items(scanner, name, index=index, source=source, stats=stats)


def file_items(scanner: LineScanner, name: str, *, index, source, stats: ReadStats, start=0, end=None):
    """(event, low line) pairs of one file, or of its byte range [start, end) (line-aligned)."""
    try:
        fh, gz = open_events(name)
    except OSError as exc:
        stats.file_failed(f"cannot read file: {getattr(exc, 'strerror', None) or exc}", name)
        return
    with fh:
        try:
            head = fh.peek(BLOCK) if hasattr(fh, "peek") else b""
            if start == 0 and not _is_ndjson(head[:BLOCK]):
                for event in read_inputs([name], index=index, source=source, stats=stats):
                    yield event, None
                return
            first_line = 1
            if start:
                fh.seek(start)
                first_line = None
            line = first_line or 1
            for block in blocks(fh, start, end, BLOCK):
                if block is TOO_LONG:
                    stats.problem(
                        f"line longer than {readers.MAX_LINE_BYTES} bytes (the limit) skipped", name, line
                    )
                    line += 1
                    scanner.newlines += 1
                    continue
                yield from scanner.block(block, name, line)
                line += scanner.last_newlines
                scanner.newlines += scanner.last_newlines
        except OSError as exc:
            stats.file_failed(f"cannot read file: {getattr(exc, 'strerror', None) or exc}", name)
            return
    gzip_problem(gz, name, stats)


CHUNK = 64 << 20
MIN_CHUNK = 4 << 20
# From this many rules, --jobs splits the rules rather than the bytes: rule work then
# outweighs reading, and every worker runs its sequences itself.
RULE_SPLIT_MIN = 64
_STATE: tuple | None = None


def _tasks(
    names: list[str], jobs: int = 2, largest: int | None = None
) -> Iterator[tuple[str, int, int | None]]:
    """Byte ranges of the inputs, split at line ends; a gzip or non-NDJSON file is one range.
    A file gives each worker about four ranges, of at most ``CHUNK`` (or ``largest``)
    bytes: few enough that each range's fixed cost is small, enough that no worker waits
    long at the end."""
    cap = min(CHUNK, largest or CHUNK)
    for name in names:
        try:
            size = os.path.getsize(name)
            chunk = min(cap, max(min(MIN_CHUNK, cap), size // (4 * jobs)))
            with open(name, "rb") as fh:
                head = fh.read(BLOCK)
                if head[:2] == b"\x1f\x8b" or size < 2 * chunk or not _is_ndjson(head):
                    yield name, 0, None
                    continue
                cuts = [0]
                for pos in range(chunk, size, chunk):
                    fh.seek(pos)
                    fh.readline()
                    if fh.tell() > cuts[-1] and fh.tell() < size:
                        cuts.append(fh.tell())
                cuts.append(size)
        except OSError:
            yield name, 0, None  # the worker reports it
            continue
        for a, b in zip(cuts, cuts[1:], strict=False):
            yield name, a, b


def range_result(engine: Engine, index: str | None, source: str | None, task: tuple[str, int, int | None]):
    """One byte range's share of the scan, in plain data that pickles: the event rules'
    alerts, the events sequences take, rule counts, events read, problems (line numbers
    counted from the range's start), the range's newlines, its unreadable files and
    its lines not parsed."""
    name, start, end = task
    stats = ReadStats()
    scanner = LineScanner(engine, index, source, stats)
    engine.stats = {r.rule_id: Counter() for r in engine.rules}
    engine._seen = set()  # ranges may run in any order on one worker; the merge de-duplicates
    items = file_items(scanner, name, index=index, source=source, stats=stats, start=start, end=end)
    alerts, taken = engine.split_batch(items)
    taken_out = [(orjson.dumps(e.doc), e.index, e.id, e.origin, pos) for e, pos in taken]
    counts = {rid: dict(c) for rid, c in engine.stats.items() if c}
    problems = [(p.message, p.file, p.line, p.column) for p in stats.problems]
    return (
        alerts,
        taken_out,
        counts,
        stats.events,
        problems,
        scanner.newlines,
        stats.files_failed,
        stats.unparsed,
    )


class ProcessRunner:
    """A ``runner`` of :func:`scan_paths` on ``jobs`` forked processes of this machine:
    byte ranges (:meth:`run`) or shares of the rules (:meth:`split_rules`)."""

    largest_range: int | None = None  # ranges of at most CHUNK bytes

    def __init__(self, jobs: int) -> None:
        self.workers = jobs

    def run(self, engine: Engine, tasks: list, *, index, source) -> Iterator:
        import multiprocessing

        global _STATE
        _ = engine.router  # built once, before the fork: workers share it without pickling
        _STATE = (engine, index, source)
        try:
            with multiprocessing.get_context("fork").Pool(self.workers) as pool:
                yield from pool.imap(_work, tasks)
        finally:
            _STATE = None

    def split_rules(self, engine: Engine, names: list[str], *, index, source, tmp: str) -> list:
        """:func:`rule_share` of each worker, its alerts written to a file in ``tmp``."""
        import multiprocessing

        global _STATE
        engines = [rule_share_engine(engine, k, self.workers) for k in range(self.workers)]
        _STATE = (engines, names, index, source, rule_positions(engine), tmp)
        try:
            with multiprocessing.get_context("fork").Pool(self.workers) as pool:
                return pool.map(_rule_work, range(self.workers))
        finally:
            _STATE = None


def _work(task: tuple[str, int, int | None]):
    return range_result(*_STATE, task)


def _rule_work(k: int):
    engines, names, index, source, position, tmp = _STATE
    path = os.path.join(tmp, f"alerts-{k}")
    with open(path, "wb") as out:
        return (path, *rule_share(engines[k], names, index, source, position, out))


def parallel_items(engine: Engine, names: list[str], *, index, source, stats: ReadStats, runner):
    """:meth:`Engine.split_batch` results over byte ranges of ``names``, in input order.

    ``runner`` (:class:`ProcessRunner`, or :class:`vigil.engine.spark.SparkRunner`) runs
    :func:`range_result` on each range and gives the results in the ranges' order.
    Line numbers in problems are made absolute here from each range's line count.
    """
    tasks = list(_tasks(names, runner.workers, runner.largest_range))
    lines_before: dict[str, int] = {}
    results = runner.run(engine, tasks, index=index, source=source)
    for task, result in zip(tasks, results, strict=True):
        alerts, taken, counts, events, problems, newlines, files_failed, unparsed = result
        stats.files_failed += files_failed
        stats.unparsed += unparsed
        offset = lines_before.get(task[0], 0)
        lines_before[task[0]] = offset + newlines
        stats.events += events
        for message, file, line, column in problems:
            stats.problem(message, file, line + offset if line is not None else None, column)
        for rid, c in counts.items():
            engine.stats[rid].update(c)
        events_out = [
            (Event(orjson.loads(doc), idx, eid, origin), pos) for doc, idx, eid, origin, pos in taken
        ]
        yield alerts, events_out


def _size(name: str) -> int:
    try:
        return os.path.getsize(name)
    except OSError:
        return 0


def rule_positions(engine: Engine) -> dict[str, int]:
    return {r.rule_id: n for n, r in enumerate(engine.rules)}


def rule_share_engine(engine: Engine, share: int, shares: int) -> Engine:
    """An engine over every ``shares``-th rule of ``engine``, from the ``share``-th on."""
    return Engine(
        engine.rules[share::shares],
        exceptions=engine.exceptions,
        exceptions_all=engine.exceptions_all,
        now=engine.now,
    )


def _rule_split(engine: Engine, names: list[str], *, index, source, stats: ReadStats, runner):
    """The runner's workers each read every input and run a share of the rules.

    Each share's alerts are tagged with where the single-process scan would give them
    (event rules: the event's position, then the rule's; sequences and samples: after
    all events, by rule) and written to a file; the files are merged on those tags, so
    the alerts come out as one process gives them.
    """
    import heapq
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vigil-scan-") as tmp:
        results = runner.split_rules(engine, names, index=index, source=source, tmp=tmp)
        for k, (_path, counts, events, problems, files_failed, unparsed) in enumerate(results):
            for rid, c in counts.items():
                engine.stats[rid].update(c)
            if k == 0:  # every worker read the same events
                stats.events += events
                stats.unparsed += unparsed
                stats.files_failed += files_failed
                for message, file, line, column in problems:
                    stats.problem(message, file, line, column)
        files = [open(path, "rb") for path, *_ in results]  # noqa: SIM115 - closed below
        try:
            streams = [(orjson.loads(line) for line in fh) for fh in files]
            for _, alert in heapq.merge(*streams, key=lambda t: t[0]):
                if alert["kibana.alert.uuid"] not in engine._seen:
                    engine._seen.add(alert["kibana.alert.uuid"])
                    yield alert
        finally:
            for fh in files:
                fh.close()


def rule_share(engine: Engine, names: list[str], index, source, position: dict[str, int], out):
    """``engine``'s rules over all of ``names``: alerts written to ``out`` as NDJSON, each
    with its merge tag (see :func:`_rule_split`). Returns the rule counts, events read,
    problems, unreadable files and lines not parsed, in plain data that pickles."""
    from vigil.engine.core import EveryLine, scan_items

    stats = ReadStats()
    engine.stats = {r.rule_id: Counter() for r in engine.rules}
    engine._seen = set()  # an engine may serve several scans (a Spark worker keeps it)
    rescan = lambda: read_inputs(names, index=index, source=source)  # noqa: E731
    # The columnar core, over every line (as every share reads the same lines).
    items = _items(EveryLine, names, index=index, source=source, stats=stats)
    n = 0
    for done, alert in scan_items(engine, items, rescan=rescan, ordinals=True):
        rule_pos = position[alert["kibana.alert.rule.rule_id"]]
        n += 1
        # Sequence alerts come after the last event, as in one process.
        tag = [0, done, rule_pos, n] if done is not None else [1, rule_pos, 0, n]
        out.write(orjson.dumps([tag, alert], default=str) + b"\n")
    counts = {rid: dict(c) for rid, c in engine.stats.items() if c}
    problems = [(p.message, p.file, p.line, p.column) for p in stats.problems]
    return counts, stats.events, problems, stats.files_failed, stats.unparsed
