"""Time for the scheduler and ingest, replaceable so tests can drive it.

``VIGIL_CLOCK_FILE`` names a file holding epoch milliseconds: when set, that is
"now" (re-read each time), so a test can jump hours ahead without waiting.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


class Clock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)


class FileClock(Clock):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def now_ms(self) -> int:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return super().now_ms()


class ManualClock(Clock):
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


def default_clock() -> Clock:
    path = os.environ.get("VIGIL_CLOCK_FILE")
    return FileClock(path) if path else Clock()
