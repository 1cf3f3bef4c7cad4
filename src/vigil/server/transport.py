"""The bounded HTTP/1.1 transport under ``vigil serve``.

Python's ``http.server`` parses the request line and headers (with its own caps:
64 KiB a line, 100 headers); everything a hostile client could use to exhaust the
server is bounded here:

- connections: at most ``max_connections`` at once, each on one thread; one more is
  answered ``503`` and closed without a thread;
- time: a request head must arrive within ``head_timeout`` of the connection opening or
  of the previous answer (this is also the keep-alive idle time), a body within
  ``body_timeout``, and no single read or write may stall longer than ``io_timeout``;
  a watchdog closes connections past their deadline;
- framing: ``Content-Length`` must be one non-negative integer; ``Transfer-Encoding``
  must be ``chunked`` alone and never sent with ``Content-Length`` (RFC 9112 6.1 and
  6.3: such a message is an attack on framing, answered ``400`` and closed);
- size: the body on the wire and the body inflated from gzip or deflate are both capped
  at ``max_body`` (Elasticsearch's ``http.max_content_length``, 100 MB, applies to
  the decompressed content too), chunked or not.

Nothing here reads a body: the application decides first (authentication) and then
calls :func:`read_body`.
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

_REJECT = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
)


@dataclass(frozen=True, slots=True)
class Limits:
    max_body: int = 100 * 1024 * 1024
    max_connections: int = 64
    head_timeout: float = 30.0
    body_timeout: float = 120.0
    io_timeout: float = 30.0


class HttpError(Exception):
    """A request refused before the application sees it: status, Elasticsearch error type, reason."""

    def __init__(self, status: int, type_: str, reason: str, *, close: bool = True) -> None:
        super().__init__(reason)
        self.status = status
        self.type = type_
        self.reason = reason
        self.close = close


def body_length(headers: Any) -> int | None:
    """The body's framing: its length, or None for chunked; :class:`HttpError` if ambiguous."""
    lengths = headers.get_all("Content-Length") or []
    codings = headers.get_all("Transfer-Encoding") or []
    if codings:
        if lengths:
            raise HttpError(400, "illegal_argument_exception", "both Content-Length and Transfer-Encoding")
        names = [c.strip().lower() for value in codings for c in value.split(",") if c.strip()]
        if names != ["chunked"]:
            raise HttpError(501, "illegal_argument_exception", "only Transfer-Encoding: chunked is supported")
        return None
    if not lengths:
        return 0
    values = {v.strip() for value in lengths for v in value.split(",")}
    if len(values) != 1:
        raise HttpError(400, "illegal_argument_exception", "conflicting Content-Length values")
    (value,) = values
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise HttpError(400, "illegal_argument_exception", "Content-Length is not a non-negative integer")
    return int(value)


def read_body(rfile: Any, length: int | None, limits: Limits) -> bytes:
    """The body as sent (``length`` from :func:`body_length`), never more than ``max_body``."""
    if length is not None:
        if length > limits.max_body:
            raise _too_large(length, limits)
        data = rfile.read(length) if length else b""
        if len(data) != length:
            raise HttpError(400, "parse_exception", "request body ended early")
        return data
    out = bytearray()
    while True:
        line = rfile.readline(1026)
        if not line.endswith(b"\n"):
            raise HttpError(400, "parse_exception", "bad chunk size line")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16) if size_text and len(size_text) <= 16 else -1
        except ValueError:
            size = -1
        if size < 0 or not all(c in b"0123456789abcdefABCDEF" for c in size_text):
            raise HttpError(400, "parse_exception", "bad chunk size")
        if size == 0:
            _skip_trailers(rfile)
            return bytes(out)
        if len(out) + size > limits.max_body:
            raise _too_large(len(out) + size, limits)
        chunk = rfile.read(size)
        if len(chunk) != size or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise HttpError(400, "parse_exception", "chunk ended early")
        out += chunk


def _skip_trailers(rfile: Any) -> None:
    for _ in range(100):
        line = rfile.readline(8194)
        if line in (b"\r\n", b"\n", b""):
            return
    raise HttpError(400, "parse_exception", "too many trailer lines")


def inflate(data: bytes, encoding: str, limits: Limits) -> bytes:
    """``data`` decoded from its ``Content-Encoding``, stopping at ``max_body`` bytes out."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        # HTTP's "deflate" is the zlib format; some clients send raw deflate: tell them apart by the header.
        zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] * 256 + data[1]) % 31 == 0
        wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
    else:
        raise HttpError(
            415, "illegal_argument_exception", "Content-Encoding must be gzip or deflate", close=False
        )
    out = bytearray()
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(wbits)
            pending = rest
            while pending:
                out += d.decompress(pending, limits.max_body + 1 - len(out))
                if len(out) > limits.max_body:
                    raise _too_large(len(out), limits, inflated=True)
                pending = d.unconsumed_tail
            if not d.eof:
                raise HttpError(400, "parse_exception", "compressed body ended early", close=False)
            rest = d.unused_data if wbits > 0 and wbits & 16 else b""  # gzip: members may follow
    except zlib.error as exc:
        raise HttpError(400, "parse_exception", f"unreadable compressed body: {exc}", close=False) from None
    return bytes(out)


def _too_large(size: int, limits: Limits, *, inflated: bool = False) -> HttpError:
    what = "inflated request body" if inflated else "request body"
    more = "more than " if inflated else ""
    return HttpError(
        413, "content_too_long_exception", f"{what} of {more}{size} bytes is over {limits.max_body}"
    )


class BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most ``limits.max_connections`` of them, each with deadlines."""

    daemon_threads = True
    limits = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = threading.Lock()
        self._deadlines: dict[socket.socket, float | None] = {}
        self._closed = threading.Event()
        self.refused = 0
        threading.Thread(target=self._watch, name="vigil-http-watchdog", daemon=True).start()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._guard:
            full = len(self._deadlines) >= self.limits.max_connections
            if not full:
                self._deadlines[request] = time.monotonic() + self.limits.head_timeout
        if full:
            self.refused += 1
            body = b'{"error":{"type":"too_many_connections","reason":"server busy"},"status":503}'
            try:
                request.settimeout(1)
                request.sendall(_REJECT % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._guard:
                self._deadlines.pop(request, None)

    def deadline(self, conn: socket.socket, seconds: float | None) -> None:
        """Close ``conn`` if it is still in this state ``seconds`` from now (None: no deadline)."""
        with self._guard:
            if conn in self._deadlines:
                self._deadlines[conn] = None if seconds is None else time.monotonic() + seconds

    def connections(self) -> int:
        with self._guard:
            return len(self._deadlines)

    def _watch(self) -> None:
        while not self._closed.wait(0.25):
            now = time.monotonic()
            with self._guard:
                late = [c for c, d in self._deadlines.items() if d is not None and d < now]
                for conn in late:
                    # Its slot frees before the peer can see the close, so a client that
                    # reconnects on EOF is never refused for a connection already gone.
                    del self._deadlines[conn]
            for conn in late:
                try:
                    conn.shutdown(socket.SHUT_RDWR)  # the blocked read returns; its thread ends
                except OSError:
                    pass

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()
