"""One alert document per line, flushed as it is written."""

from __future__ import annotations

from typing import IO

import orjson

from vigil.sinks.terminal import json_line


class NdjsonSink:
    def __init__(self, stream: IO[bytes], *, flush_each: bool = False) -> None:
        self.stream = stream
        self.flush_each = flush_each
        self.written = 0

    def write(self, alert: dict) -> None:
        self.stream.write(json_line(orjson.dumps(alert, default=str, option=orjson.OPT_APPEND_NEWLINE)))
        self.written += 1
        if self.flush_each:
            self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
