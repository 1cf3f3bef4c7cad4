"""The core's tuning of Python's cyclic collector (``few_collections``) holds while any
core runs, on any thread, and is undone when the last one stops."""

from __future__ import annotations

import gc
import threading

from vigil.engine.core import few_collections


def test_tuning_lasts_while_any_core_runs_and_is_undone_after():
    before = gc.get_threshold()
    entered, leave = threading.Event(), threading.Event()

    def other_core():
        with few_collections():
            entered.set()
            leave.wait(10)

    with few_collections():
        tuned = gc.get_threshold()
        assert tuned != before and gc.get_freeze_count() > 0
        thread = threading.Thread(target=other_core)
        thread.start()
        entered.wait(10)
    assert gc.get_threshold() == tuned  # the other core still runs
    leave.set()
    thread.join(10)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
