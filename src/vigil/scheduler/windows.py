"""Which time windows a rule searches on a run, as Kibana's detection engine decides.

A rule with ``interval`` I and ``from: now-F`` searches ``[now - F, now]``: F - I
is the look-back that overlaps the previous run so late events are not missed.
After downtime, Kibana adds catch-up windows stepping back one interval at a
time, a bounded number of them, and reports the rest as a gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vigil.errors import VigilError

# Kibana's MAX_RULE_GAP_RATIO (security_solution detection_engine rule_types/utils):
# at most 4 missed runs are caught up; what is left is reported as a gap.
MAX_CATCHUP = 4

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")


def duration_ms(text: str | int, *, what: str = "duration") -> int:
    """``"5m"`` -> 300000. Accepts ``now-6m`` (a rule's ``from``) too."""
    if isinstance(text, int):
        return text
    s = str(text).strip()
    if s.startswith("now-"):
        s = s[4:]
    m = _DURATION.match(s)
    if not m or int(m.group(1)) <= 0:
        raise VigilError(f"bad {what} {text!r}: use a number and a unit (s, m, h, d), e.g. 5m")
    return int(m.group(1)) * _UNITS[m.group(2)]


@dataclass(slots=True, frozen=True)
class Window:
    start_ms: int
    end_ms: int
    catch_up: bool = False


@dataclass(slots=True, frozen=True)
class Plan:
    windows: list[Window]  # oldest first
    gap_from_ms: int | None = None  # time nothing will search
    gap_to_ms: int | None = None


def plan(
    now_ms: int,
    interval_ms: int,
    span_ms: int,
    previous_started_ms: int | None,
    max_catchup: int = MAX_CATCHUP,
) -> Plan:
    """The windows of the run starting at ``now_ms``, as Kibana's ``getRuleRangeTuples``.

    ``span_ms`` is the ``from`` distance; ``previous_started_ms`` when the last
    completed run started (None: first run). The gap is the time since that
    run beyond one span; each catch-up window is the current one moved back a
    whole interval (so catch-ups overlap like ordinary runs, which matters to
    sequences); what MAX_CATCHUP windows cannot cover is the remaining gap.
    """
    current = Window(max(0, now_ms - span_ms), now_ms)
    gap = 0 if previous_started_ms is None else (now_ms - previous_started_ms) - span_ms
    if gap <= 0 or interval_ms <= 0:
        return Plan([current])
    catchup = min(-(-gap // interval_ms), max_catchup)
    windows = [current]
    for k in range(1, catchup + 1):
        windows.append(
            Window(max(0, now_ms - span_ms - k * interval_ms), now_ms - k * interval_ms, catch_up=True)
        )
    windows.reverse()
    remaining = max(gap - catchup * interval_ms, 0)
    if remaining:
        oldest = windows[0].start_ms
        return Plan(windows, oldest - remaining, oldest)
    return Plan(windows)
