"""Windows a run searches: [now - from, now], catch-up after downtime, gaps."""

from __future__ import annotations

import pytest

from vigil.errors import VigilError
from vigil.scheduler.windows import MAX_CATCHUP, duration_ms, plan

M = 60_000


def test_durations():
    assert duration_ms("5m") == 5 * M
    assert duration_ms("now-6m") == 6 * M
    assert duration_ms("2s") == 2000
    assert duration_ms("1h") == 60 * M
    for bad in ("5", "m", "-5m", "0s", "5y", ""):
        with pytest.raises(VigilError):
            duration_ms(bad)


def test_first_run_and_on_time_run_search_one_window():
    p = plan(100 * M, 5 * M, 6 * M, None)
    assert [(w.start_ms, w.end_ms) for w in p.windows] == [(94 * M, 100 * M)]
    # The next run, on time: the 1m look-back overlaps the previous window.
    p = plan(105 * M, 5 * M, 6 * M, 100 * M)
    assert [(w.start_ms, w.end_ms) for w in p.windows] == [(99 * M, 105 * M)]
    assert p.gap_from_ms is None


def test_short_downtime_is_caught_up_without_gap():
    # Last run started at 100m; next at 117m: gap 11m, ceil(11/5) = 3 catch-ups.
    p = plan(117 * M, 5 * M, 6 * M, 100 * M)
    assert [w.catch_up for w in p.windows] == [True, True, True, False]
    assert p.windows[0].start_ms <= 100 * M
    assert p.windows[-1].end_ms == 117 * M
    assert p.gap_from_ms is None
    starts = [w.start_ms for w in p.windows]
    assert starts == sorted(starts)


def test_long_downtime_leaves_a_reported_gap():
    p = plan(160 * M, 5 * M, 6 * M, 100 * M)
    assert len(p.windows) == 1 + MAX_CATCHUP
    assert p.gap_from_ms == 100 * M
    assert p.gap_to_ms == p.windows[0].start_ms == 160 * M - MAX_CATCHUP * 5 * M - 6 * M
    # Kibana's numbers: gap = 60m - 6m = 54m, 4 catch-ups cover 20m, 34m remain.
    assert p.gap_to_ms - p.gap_from_ms == 34 * M
    # Consecutive windows leave no hole between them.
    for a, b in zip(p.windows, p.windows[1:], strict=False):
        assert b.start_ms <= a.end_ms
