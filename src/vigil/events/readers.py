"""Read events from files: NDJSON, JSON arrays, Elasticsearch search responses and exports.

Shapes are detected per file (and per line for NDJSON). Bad lines are recorded in
``ReadStats.problems`` with file, line and column, and reading goes on.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from vigil.errors import VigilError
from vigil.events.model import Event


@dataclass
class ReadStats:
    events: int = 0
    skipped: int = 0
    problems: list[VigilError] = field(default_factory=list)

    def problem(self, message: str, file: str, line: int | None = None, column: int | None = None) -> None:
        self.skipped += 1
        self.problems.append(VigilError(message, file=file, line=line, column=column))


def _event_index(doc: dict) -> str | None:
    """``data_stream.type-dataset-namespace`` as Fleet names its indices, when all three are present."""
    parts = []
    for key in ("type", "dataset", "namespace"):
        value = doc.get(f"data_stream.{key}")
        if value is None:
            ds = doc.get("data_stream")
            value = ds.get(key) if isinstance(ds, dict) else None
        if not isinstance(value, str) or not value:
            return None
        parts.append(value)
    return "-".join(parts)


def _normalize(doc: dict, source: str | None) -> tuple[dict, str | None]:
    try:
        from vigil.events import vendors
    except ImportError:  # vendor normalizers not installed: documents are taken as ECS
        return doc, None
    if source is None:
        source = vendors.detect(doc)
    if source == "ecs":
        return doc, None
    return vendors.normalize(doc, source)


class _Reader:
    def __init__(self, index: str | None, source: str | None, stats: ReadStats) -> None:
        self.index = index
        self.source = source
        self.stats = stats

    def make(self, value: Any, file: str, line: int | None) -> Iterator[Event]:
        """Turn one decoded JSON value (an event, a hit, or a search response) into events."""
        if isinstance(value, list):
            for item in value:
                yield from self.make(item, file, line)
            return
        if not isinstance(value, dict):
            self.stats.problem(f"expected a JSON object, found {type(value).__name__}", file, line)
            return
        hits = value.get("hits")
        if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
            for hit in hits["hits"]:
                yield from self.make(hit, file, line)
            return
        hit_index = hit_id = None
        if "_source" in value and isinstance(value["_source"], dict):
            hit_index = value.get("_index")
            hit_id = value.get("_id")
            value = value["_source"]
        try:
            doc, vendor_index = _normalize(value, self.source)
        except VigilError as exc:
            self.stats.problem(exc.message, file, line)
            return
        except Exception as exc:  # a vendor record we cannot read is one skipped event
            self.stats.problem(f"cannot normalize event: {exc}", file, line)
            return
        index = self.index or hit_index or vendor_index or _event_index(doc)
        self.stats.events += 1
        origin = f"{file}:{line}" if line is not None else file
        yield Event(doc, index, str(hit_id) if hit_id is not None else None, origin)

    def stream(self, raw: IO[bytes], file: str) -> Iterator[Event]:
        head = raw.read(1)
        while head and head in b" \t\r\n":
            head = raw.read(1)
        if head == b"[":
            yield from self._whole(head + raw.read(), file)
            return
        if head == b"{":
            # One pretty-printed object (a search response) or NDJSON: try lines first.
            rest = io.BufferedReader(raw) if not hasattr(raw, "peek") else raw
            yield from self._lines(head, rest, file)

    def _whole(self, data: bytes, file: str) -> Iterator[Event]:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self.stats.problem(f"invalid JSON: {exc.msg}", file, exc.lineno, exc.colno)
            return
        yield from self.make(value, file, None)

    def _lines(self, head: bytes, raw: IO[bytes], file: str) -> Iterator[Event]:
        first = head + raw.readline()
        try:
            value = orjson.loads(first)
        except orjson.JSONDecodeError:
            # The first line is not a whole object: the file is one multi-line JSON document.
            yield from self._whole(first + raw.read(), file)
            return
        yield from self.make(value, file, 1)
        for number, line in enumerate(raw, start=2):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                self.stats.problem(f"invalid JSON: {exc.msg}", file, number, exc.colno)
                continue
            yield from self.make(value, file, number)


def _files(paths: Iterable[str | Path]) -> Iterator[str]:
    for p in paths:
        p = str(p)
        if p != "-" and Path(p).is_dir():
            for child in sorted(Path(p).rglob("*")):
                if child.is_file():
                    yield str(child)
        else:
            yield p


def read_inputs(
    paths: Iterable[str | Path],
    *,
    index: str | None = None,
    source: str | None = None,
    stats: ReadStats | None = None,
) -> Iterator[Event]:
    """Events from files, folders (recursively, sorted), ``.gz`` files and ``-`` (standard input)."""
    stats = stats if stats is not None else ReadStats()
    reader = _Reader(index, source, stats)
    for name in _files(paths):
        try:
            if name == "-":
                raw: IO[bytes] = sys.stdin.buffer
                yield from reader.stream(raw, "<stdin>")
                continue
            with open(name, "rb") as fh:
                magic = fh.peek(2)[:2]
                raw = gzip.GzipFile(fileobj=fh) if magic == b"\x1f\x8b" else fh
                yield from reader.stream(raw, name)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            stats.problem(f"cannot read file: {getattr(exc, 'strerror', None) or exc}", name)
