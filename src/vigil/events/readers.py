"""Read events from files: NDJSON, JSON arrays, Elasticsearch search responses and exports.

Shapes are detected per file (and per line for NDJSON). Bad lines are recorded in
``ReadStats.problems`` with file, line and column, and reading goes on. A file that
cannot be opened or decompressed is a problem too, and is counted in
``ReadStats.files_failed`` so that a command can exit non-zero when a named input
could not be read at all.
"""

from __future__ import annotations

import gzip
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from vigil.eql.dates import to_epoch_millis
from vigil.errors import VigilError
from vigil.events.model import Event


@dataclass
class ReadStats:
    """What reading gave: events read, items skipped (with the reasons), files that failed."""

    events: int = 0
    skipped: int = 0
    files_failed: int = 0
    problems: list[VigilError] = field(default_factory=list)

    def problem(self, message: str, file: str, line: int | None = None, column: int | None = None) -> None:
        self.skipped += 1
        self.problems.append(VigilError(message, file=file, line=line, column=column))

    def file_failed(self, message: str, file: str) -> None:
        """A file that could not be opened or read through: one problem, counted apart."""
        self.files_failed += 1
        self.problem(message, file)


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


def timestamp_problem(doc: dict) -> str | None:
    """Why Elasticsearch would reject ``doc`` for its ``@timestamp``, or None.

    Every ECS index and data stream maps ``@timestamp`` as ``date``: a value that
    field cannot parse (past a Java long, ``1e30``, an object, text that is no date)
    makes Elasticsearch reject the whole document, so Vigil skips the event.
    """
    value = doc.get("@timestamp")
    if value is None:
        return None
    for one in value if isinstance(value, list) else (value,):
        if one is not None and to_epoch_millis(one) is None:
            shown = (
                orjson.dumps(one, option=orjson.OPT_NON_STR_KEYS) if not isinstance(one, float) else repr(one)
            )
            text = shown.decode() if isinstance(shown, bytes) else shown
            if len(text) > 80:
                text = text[:77] + "..."
            return f"failed to parse field [@timestamp] of type [date]: {text}"
    return None


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


class Reader:
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
        if "_source" in value:
            if not isinstance(value["_source"], dict):
                self.stats.problem("search hit whose _source is not an object", file, line)
                return
            hit_index = value.get("_index")
            hit_id = value.get("_id")
            value = value["_source"]
        elif "_index" in value and "_id" in value:
            # A hit exported without its document (stored fields only): nothing to run rules on.
            self.stats.problem("search hit without _source", file, line)
            return
        try:
            doc, vendor_index = _normalize(value, self.source)
        except VigilError as exc:
            self.stats.problem(exc.message, file, line)
            return
        except Exception as exc:  # a vendor record we cannot read is one skipped event
            self.stats.problem(f"cannot normalize event: {exc}", file, line)
            return
        bad = timestamp_problem(doc)
        if bad is not None:
            self.stats.problem(bad, file, line)
            return
        index = self.index or hit_index or vendor_index or _event_index(doc)
        self.stats.events += 1
        origin = f"{file}:{line}" if line is not None else file
        yield Event(doc, index, str(hit_id) if hit_id is not None else None, origin)

    def stream(self, raw: IO[bytes], file: str) -> Iterator[Event]:
        head = raw.read(1)
        column = 1
        if head == _BOM[:1]:
            if raw.read(2) != _BOM[1:]:
                self.stats.problem(_NOT_JSON, file, 1, 1)
                return
            head = raw.read(1)
        line = 1
        while head and head in b" \t\r\n":
            if head == b"\n":
                line, column = line + 1, 0
            column += 1
            head = raw.read(1)
        if not head:
            return  # an empty file holds no events
        if head not in b"[{":
            self.stats.problem(_NOT_JSON, file, line, column)
            return
        blank = b"\n" * (line - 1)  # keep line numbers of what follows leading blank lines
        if head == b"[":
            yield from self._document(blank + head + raw.read(), file)
            return
        yield from self._lines(blank + head + raw.readline(), raw, file, line)

    def _document(self, data: bytes, file: str) -> Iterator[Event]:
        """One JSON document (an array, a search response, a pretty-printed event).

        When it does not parse as one document but some of its lines are whole JSON
        objects, it is NDJSON with bad lines: each bad line is reported and the rest read.
        """
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            lines = data.split(b"\n")
            if not any(_parses(text) for text in lines):
                self.stats.problem(f"invalid JSON: {exc.msg}", file, exc.lineno, exc.colno)
                return
            yield from self._each_line(enumerate(lines, start=1), file)
            return
        yield from self.make(value, file, None)

    def _lines(self, first: bytes, raw: IO[bytes], file: str, number: int) -> Iterator[Event]:
        try:
            value = orjson.loads(first)
        except orjson.JSONDecodeError as exc:
            if exc.msg == "unexpected end of data":
                # The first line is the start of one multi-line document (a pretty-printed
                # search response), or a truncated NDJSON line: settle it on the whole file.
                yield from self._document(first + raw.read(), file)
                return
            self.stats.problem(f"invalid JSON: {exc.msg}", file, number, exc.colno)
        else:
            yield from self.make(value, file, number)
        yield from self._each_line(enumerate(raw, start=number + 1), file)

    def _each_line(self, lines: Iterable[tuple[int, bytes]], file: str) -> Iterator[Event]:
        for number, line in lines:
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                self.stats.problem(f"invalid JSON: {exc.msg}", file, number, exc.colno)
                continue
            yield from self.make(value, file, number)


_BOM = b"\xef\xbb\xbf"
_NOT_JSON = "not JSON events: expected an object per line, an array or a search response"


def _parses(text: bytes) -> bool:
    """True for a line that is one whole JSON object: the mark of NDJSON."""
    if not text.strip():
        return False
    try:
        return isinstance(orjson.loads(text), dict)
    except orjson.JSONDecodeError:
        return False


def _files(paths: Iterable[str | Path]) -> Iterator[str]:
    """Each named file; each file under a named folder, recursively and sorted, hidden ones left out."""
    for p in paths:
        p = str(p)
        if p != "-" and Path(p).is_dir():
            root = Path(p)
            for child in sorted(root.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(root).parts)
                if child.is_file() and not hidden:
                    yield str(child)
        else:
            yield p


def is_parquet(name: str) -> bool:
    """Parquet files are told by their name: their rows are read through DuckDB."""
    return name.endswith(".parquet")


def read_inputs(
    paths: Iterable[str | Path],
    *,
    index: str | None = None,
    source: str | None = None,
    stats: ReadStats | None = None,
) -> Iterator[Event]:
    """Events from files, folders (recursively, sorted), ``.gz`` and ``.parquet`` files and ``-``
    (standard input).

    Every event gets ``index`` when given, else its hit's ``_index``, else the
    ``data_stream.type-dataset-namespace`` it carries, else None (read by every rule).
    """
    stats = stats if stats is not None else ReadStats()
    reader = Reader(index, source, stats)
    for name in _files(paths):
        try:
            if name == "-":
                raw: IO[bytes] = sys.stdin.buffer
                yield from reader.stream(raw, "<stdin>")
                continue
            if is_parquet(name):
                from vigil.events.parquet import read_parquet  # needs the optional DuckDB

                yield from read_parquet(name, index=index, source=source, stats=stats)
                continue
            with open(name, "rb") as fh:
                magic = fh.peek(2)[:2]
                raw = gzip.GzipFile(fileobj=fh) if magic == b"\x1f\x8b" else fh
                yield from reader.stream(raw, name)
        except (OSError, EOFError, zlib.error) as exc:
            stats.file_failed(f"cannot read file: {getattr(exc, 'strerror', None) or exc}", name)
