"""Output shared by every command: ``--format table|ndjson`` and progress on a terminal."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from vigil.sinks.terminal import json_line, safe_console, visible


def add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("table", "ndjson"),
        default=None,
        help="table for people, ndjson (one JSON object per line) for programs "
        "(default: table on a terminal, ndjson otherwise)",
    )


def resolve_format(args: argparse.Namespace, stream: IO | None = None) -> str:
    if getattr(args, "format", None):
        return args.format
    stream = stream or sys.stdout
    return "table" if stream.isatty() else "ndjson"


def dumps(obj: Any) -> bytes:
    """One JSON line, the way Vigil writes every machine-readable record."""
    return json_line(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS, default=str))


def write_ndjson(records: Iterable[Any], stream: IO | None = None) -> int:
    out = (stream or sys.stdout).buffer if hasattr(stream or sys.stdout, "buffer") else None
    n = 0
    for rec in records:
        line = dumps(rec) + b"\n"
        if out is not None:
            out.write(line)
        else:
            (stream or sys.stdout).write(line.decode())
        n += 1
    (stream or sys.stdout).flush()
    return n


# Width of tables written to a file or a pipe (a terminal gives its own; COLUMNS wins).
PIPE_WIDTH = 120


def console(stream: IO | None = None):
    """A console for people: values are shown, never obeyed (see :mod:`vigil.sinks.terminal`)."""
    import os

    stream = stream or sys.stdout
    width = None
    if "COLUMNS" not in os.environ and not (hasattr(stream, "isatty") and stream.isatty()):
        width = PIPE_WIDTH
    return safe_console(file=stream, highlight=False, soft_wrap=False, width=width)


def error_console():
    return safe_console(file=sys.stderr, highlight=False)


def say(text: str, stream: IO | None = None) -> None:
    """One line for a person on standard error (or ``stream``): controls in it shown visibly."""
    print(visible(text, lines=True), file=stream or sys.stderr)


@contextlib.contextmanager
def progress(description: str, total: int | None = None, *, enabled: bool | None = None) -> Iterator[Any]:
    """A progress bar on standard error when it is a terminal; a no-op otherwise.

    Yields an object with ``advance(n=1)`` and ``update(description=...)``.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _NoProgress()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=error_console(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield _RichProgress(bar, task)


def advancing(items: Iterable[Any], bar: Any, every: int = 10_000) -> Iterator[Any]:
    """Pass items through, advancing ``bar`` every ``every`` items and at the end."""
    n = 0
    for n, item in enumerate(items, 1):
        if n % every == 0:
            bar.advance(every)
        yield item
    bar.advance(n % every)


class _NoProgress:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, **kwargs: Any) -> None:
        pass


class _RichProgress:
    def __init__(self, bar, task) -> None:
        self._bar = bar
        self._task = task

    def advance(self, n: int = 1) -> None:
        self._bar.advance(self._task, n)

    def update(self, **kwargs: Any) -> None:
        self._bar.update(self._task, **kwargs)


# --- reading reports ------------------------------------------------------------------------

MAX_PROBLEMS_SHOWN = 20


def report_reading(stats: Any, result: str) -> None:
    """On standard error: each skipped input with its place (the first few), then the counts."""
    report_problems(stats.problems)
    if stats.skipped or stats.problems:
        say(f"vigil: {stats.events} events read, {stats.skipped} skipped, {result}")


def report_problems(problems: Iterable[Any], what: str = "skipped") -> None:
    """Each problem with its place (the first few, then how many more), on standard error."""
    problems = list(problems)
    for problem in problems[:MAX_PROBLEMS_SHOWN]:
        say(f"vigil: {what}: {problem.render()}")
    if len(problems) > MAX_PROBLEMS_SHOWN:
        say(f"vigil: ... and {len(problems) - MAX_PROBLEMS_SHOWN} more problems")


def exit_status(paths: Iterable[str], stats: Any) -> int:
    """0 when every input was read whole; 1 when some lines or events were skipped (the
    run went on and reported each); 2 when a named input could not be read at all."""
    if unreadable_inputs(paths, stats):
        return 2
    return 1 if getattr(stats, "skipped", 0) else 0


def unreadable_inputs(paths: Iterable[str], stats: Any) -> int:
    """How many named inputs could not be read at all (a typo in a file name must not pass quietly)."""
    failed = getattr(stats, "files_failed", None)
    if failed is not None:
        return int(failed)
    from pathlib import Path

    return sum(1 for p in paths if p != "-" and not Path(p).exists())
