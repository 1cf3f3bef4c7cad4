"""Read events from files: NDJSON, JSON arrays, Elasticsearch search responses and exports.

Shapes are detected per file (and per line for NDJSON). Bad lines are recorded in
``ReadStats.problems`` with file, line and column, and reading goes on. A file that
cannot be opened or decompressed is a problem too, and is counted in
``ReadStats.files_failed`` so that a command can exit non-zero when a named input
could not be read at all.

Limits (see docs/security.md): a line or a whole JSON document longer than
:data:`MAX_LINE_BYTES` is skipped and reported, as Elasticsearch refuses a body over
``http.max_content_length`` (100mb); an event nested deeper than Elasticsearch's
``index.mapping.depth.limit`` (20 objects) or than 128 levels of objects and arrays
(Vigil's own limit, as ``vigil serve`` keeps it) is skipped; a gzip file is read as far as its data goes, and a truncated or corrupt
end is reported with the lines before it kept (as ``zcat`` keeps them).
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from vigil.errors import VigilError
from vigil.events import vendors
from vigil.events.documents import MAX_OBJECT_DEPTH, DocumentError, check_dates, check_shape
from vigil.events.model import Event

# Elasticsearch's http.max_content_length default (100mb): no line or document is larger.
MAX_LINE_BYTES = 100 * 1024 * 1024


@dataclass
class ReadStats:
    """What reading gave: events read, items skipped (with the reasons), files that failed."""

    events: int = 0
    skipped: int = 0
    files_failed: int = 0
    problems: list[VigilError] = field(default_factory=list)
    # Of ``events``, the lines a batch scan did not parse because no rule's literal is
    # in them (a malformed one among them is not seen): said apart, never hidden.
    unparsed: int = 0
    # Every line parsed and the first problem ends the read (``--strict``).
    strict = False

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


def few_brackets(raw: bytes) -> bool:
    """True when a JSON text cannot be nested past the limits (too few brackets)."""
    return raw.count(b"{") + raw.count(b"[") <= MAX_OBJECT_DEPTH


def _normalize(doc: dict, source: str | None) -> tuple[dict, str | None]:
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

    def make(self, value: Any, file: str, line: int | None, deep: bool = True) -> Iterator[Event]:
        """Turn one decoded JSON value (an event, a hit, or a search response) into events.

        ``deep`` False says the value's text holds too few brackets to be nested past
        the limits, which spares the walk that checks them."""
        if deep:
            try:
                check_shape(value)
            except DocumentError as exc:
                self.stats.problem(exc.reason, file, line)
                return
        if isinstance(value, list):
            for item in value:
                yield from self.make(item, file, line, False)
            return
        if not isinstance(value, dict):
            self.stats.problem(f"expected a JSON object, found {type(value).__name__}", file, line)
            return
        hits = value.get("hits")
        if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
            for hit in hits["hits"]:
                yield from self.make(hit, file, line, False)
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
        try:
            # Every ECS index and data stream maps @timestamp as a date: a value that
            # is no date makes Elasticsearch reject the whole document.
            check_dates(doc)
        except DocumentError as exc:
            self.stats.problem(exc.reason, file, line)
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
            yield from self._document(blank + head, raw, file)
            return
        first = raw.readline(MAX_LINE_BYTES)
        if len(first) >= MAX_LINE_BYTES and not first.endswith(b"\n"):
            self._too_long(raw, file, line)
            yield from self._each_line(_lines_of(raw, line + 1), file)
            return
        yield from self._lines(blank + head + first, raw, file, line)

    def _too_long(self, raw: IO[bytes], file: str, line: int) -> None:
        """Skip the rest of an overlong line, and report it."""
        _skip_line(raw)
        self.stats.problem(f"line longer than {MAX_LINE_BYTES} bytes (the limit) skipped", file, line)

    def _document(self, start: bytes, raw: IO[bytes], file: str) -> Iterator[Event]:
        """One JSON document (an array, a search response, a pretty-printed event):
        ``start`` and the rest of ``raw``.

        When it does not parse as one document but some of its lines are whole JSON
        objects, it is NDJSON with bad lines: each bad line is reported and the rest read.
        """
        data = start + raw.read(MAX_LINE_BYTES + 1 - len(start))
        if len(data) > MAX_LINE_BYTES:
            self.stats.problem(
                f"JSON document longer than {MAX_LINE_BYTES} bytes (the limit) skipped", file, 1, 1
            )
            return
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
                yield from self._document(first, raw, file)
                return
            self.stats.problem(f"invalid JSON: {exc.msg}", file, number, exc.colno)
        else:
            yield from self.make(value, file, number, not few_brackets(first))
        yield from self._each_line(_lines_of(raw, number + 1), file)

    def _each_line(self, lines: Iterable[tuple[int, bytes | None]], file: str) -> Iterator[Event]:
        for number, line in lines:
            if line is None:
                self.stats.problem(
                    f"line longer than {MAX_LINE_BYTES} bytes (the limit) skipped", file, number
                )
                continue
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                self.stats.problem(f"invalid JSON: {exc.msg}", file, number, exc.colno)
                continue
            yield from self.make(value, file, number, not few_brackets(line))


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


def _lines_of(raw: IO[bytes], number: int) -> Iterator[tuple[int, bytes | None]]:
    """(number, line) of each line of ``raw``; None for a line over the limit (skipped)."""
    while True:
        line = raw.readline(MAX_LINE_BYTES)
        if not line:
            return
        if len(line) >= MAX_LINE_BYTES and not line.endswith(b"\n"):
            _skip_line(raw)
            line = None
        yield number, line
        number += 1


def _skip_line(raw: IO[bytes]) -> None:
    """Read past the end of the current line, a block at a time."""
    while True:
        piece = raw.readline(1 << 20)
        if not piece or piece.endswith(b"\n"):
            return


class GzipStream(io.RawIOBase):
    """The data of a gzip file, read as far as it goes.

    Python's ``GzipFile`` raises at a truncated or corrupt end and loses what it had
    decompressed in that read; here every byte that inflates is given, and the break
    (truncated, corrupt, bad CRC, trailing garbage) is kept in :attr:`error` for the
    reader to report, as ``zcat`` prints the data and then complains. Concatenated
    members are read one after the other. Output comes in bounded pieces, so a small
    file that inflates hugely costs no more memory than a large one.
    """

    IN = 1 << 16
    OUT = 1 << 20

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.buf = b""
        self.inflate: Any = None
        self.crc = 0
        self.size = 0
        self.done = False
        self.error: str | None = None
        self.position = 0  # bytes of data given

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.fh.close()
        super().close()

    def readinto(self, b) -> int:
        data = self._next(len(b))
        b[: len(data)] = data
        self.position += len(data)
        return len(data)

    def _fail(self, why: str) -> bytes:
        self.error = f"{why} after {self.position} bytes of data (the lines before are read)"
        self.done = True
        return b""

    def _more(self, n: int) -> bool:
        while len(self.buf) < n:
            chunk = self.fh.read(max(self.IN, n - len(self.buf)))
            if not chunk:
                return False
            self.buf += chunk
        return True

    def _header(self) -> bool:
        """Start the next member; False at the end of the file."""
        if not self._more(1):
            self.done = True
            return False
        while not self.buf.strip(b"\0"):  # zero padding after the last member
            self.buf = b""
            if not self._more(1):
                self.done = True
                return False
        if not self._more(10):
            self._fail("truncated gzip header")
            return False
        if self.buf[:3] != b"\x1f\x8b\x08":
            self._fail("not gzip data (trailing garbage)")
            return False
        flags, pos = self.buf[3], 10
        if flags & 4:  # FEXTRA
            if not self._more(pos + 2):
                self._fail("truncated gzip header")
                return False
            pos += 2 + struct.unpack("<H", self.buf[pos : pos + 2])[0]
        for flag in (8, 16):  # FNAME, FCOMMENT: zero-terminated
            if flags & flag:
                while (end := self.buf.find(b"\0", pos)) < 0:
                    if not self._more(len(self.buf) + 1):
                        self._fail("truncated gzip header")
                        return False
                pos = end + 1
        if flags & 2:  # FHCRC
            pos += 2
        if not self._more(pos):
            self._fail("truncated gzip header")
            return False
        self.buf = self.buf[pos:]
        self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self.crc = self.size = 0
        return True

    def _next(self, want: int) -> bytes:
        while not self.done:
            if self.inflate is None:
                if not self._header():
                    return b""
                continue
            if not self.buf and not self._more(1):
                return self._fail("truncated gzip data")
            try:
                out = self.inflate.decompress(self.buf, min(want, self.OUT))
            except zlib.error as exc:
                return self._fail(f"corrupt gzip data ({exc})")
            self.crc = zlib.crc32(out, self.crc)
            self.size += len(out)
            if self.inflate.eof:
                self.buf = self.inflate.unused_data
                self.inflate = None
                if not self._more(8):
                    self._fail("truncated gzip trailer")
                    return out
                crc, size = struct.unpack("<II", self.buf[:8])
                self.buf = self.buf[8:]
                if crc != self.crc or size != self.size & 0xFFFFFFFF:
                    self.error = (
                        f"gzip CRC or length check failed at {self.position + len(out)} bytes of data"
                    )
            else:
                self.buf = self.inflate.unconsumed_tail
            if out:
                return out
        return b""


def open_events(name: str) -> tuple[IO[bytes], GzipStream | None]:
    """A buffered binary stream of the file's data (gunzipped when it is gzip), and the
    gzip stream whose ``error`` tells whether it was read whole."""
    fh = open(name, "rb")  # noqa: SIM115 - closed with the stream
    if fh.peek(2)[:2] != b"\x1f\x8b":
        return fh, None
    gz = GzipStream(fh)
    return io.BufferedReader(gz, 1 << 20), gz


def _files(paths: Iterable[str | Path], stats: ReadStats | None = None) -> Iterator[str]:
    """Each named file; each file under a named folder, recursively and sorted, hidden ones
    left out. Symbolic links to folders are followed, each real folder once (no loops);
    a folder that cannot be read is a problem in ``stats``, never a silent gap."""
    for p in paths:
        p = str(p)
        if p != "-" and os.path.isdir(p):
            yield from (str(f) for f in sorted(_walk(Path(p), stats)))
        else:
            yield p


def _walk(root: Path, stats: ReadStats | None) -> list[Path]:
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def unreadable(exc: OSError) -> None:
        if stats is not None:
            stats.file_failed(f"cannot read folder: {exc.strerror or exc}", exc.filename or str(root))

    for folder, dirs, files in os.walk(root, onerror=unreadable, followlinks=True):
        try:
            st = os.stat(folder)
        except OSError as exc:
            unreadable(exc)
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []  # a link back to a folder already read
            continue
        seen.add((st.st_dev, st.st_ino))
        base = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            child = base / name
            if not name.startswith(".") and child.is_file():
                found.append(child)
    return found


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
    for name in _files(paths, stats):
        try:
            if name == "-":
                raw: IO[bytes] = sys.stdin.buffer
                yield from reader.stream(raw, "<stdin>")
                continue
            if is_parquet(name):
                from vigil.events.parquet import read_parquet  # needs the optional DuckDB

                yield from read_parquet(name, index=index, source=source, stats=stats)
                continue
            raw, gz = open_events(name)
            with raw:
                yield from reader.stream(raw, name)
            gzip_problem(gz, name, stats)
        except OSError as exc:
            stats.file_failed(f"cannot read file: {getattr(exc, 'strerror', None) or exc}", name)


def gzip_problem(gz: GzipStream | None, name: str, stats: ReadStats) -> None:
    """Report a gzip file that was not read whole (its lines before the break were read):
    an input not fully read, counted with the files that failed."""
    if gz is not None and gz.error is not None:
        stats.file_failed(f"cannot read file whole: {gz.error}", name)
