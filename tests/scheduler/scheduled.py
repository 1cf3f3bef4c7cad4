"""A scheduler over a store file for tests: a manual clock, restarts, events built from a
rule's own query (tests/engine/shaped_events.py)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

from vigil.events.model import Event
from vigil.scheduler.clock import ManualClock
from vigil.scheduler.runner import Scheduler
from vigil.store.alerts import AlertStore
from vigil.store.events import EventStore, Write, iso_millis
from vigil.store.runs import RunStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from shaped_events import put, satisfy  # noqa: E402

T = 1_780_000_020_000 - 1_780_000_020_000 % 3_600_000  # on the hour
SECOND = 1000


def _put(doc: dict, dotted: str, value) -> None:
    put(doc, tuple(dotted.split(".")), value)


def _of_type(rules, kind: str, every: int = 1) -> list:
    found = [r for r in rules if r.type == kind and r.runnable]
    return found[::every]


def _base(rule) -> dict | None:
    q = rule.compiled()
    return satisfy(q.statement.query.condition, {}, q.matches)


def _index(rule) -> str:
    return rule.index[0].replace("*", "vigil") if rule.index else "logs-vigil"


def _doc(rule, base: dict, ms: int, **fields) -> dict:
    doc = copy.deepcopy(base)
    for f, v in fields.items():
        trial = copy.deepcopy(doc)
        _put(trial, f, v)
        if rule.compiled().matches(trial):
            doc = trial
    doc["@timestamp"] = iso_millis(ms)
    return doc


class Serve:
    """The scheduler over one store file; ``restart`` opens a new one on the same file."""

    def __init__(self, tmp_path, rule, now: int) -> None:
        self.db = tmp_path / "vigil.db"
        self.rule = rule
        self.clock = ManualClock(now)
        self.runs: list = []
        self.start()

    def start(self) -> None:
        db = self.db
        self.s = Scheduler(
            [self.rule], EventStore(db), AlertStore(db), RunStore(db), clock=self.clock, workers=1
        )
        # Prebuilt rules ship disabled: enabled as a user does (PUT /api/rules/<id>/enabled).
        self.s.set_enabled(self.rule.rule_id, True)

    def restart(self) -> None:
        self.s.close()
        self.start()

    def write(self, docs: list[tuple[dict, int]]) -> None:
        # Each event arrives at its own time (event.ingested: a rule's timestamp_override).
        for doc, ms in docs:
            self.s.events.write([Write(_index(self.rule), doc)], ms)

    def tick_at(self, ms: int) -> None:
        self.clock.now = ms
        self.runs += self.s.tick()

    def alerts(self) -> list[dict]:
        return self.s.alerts.list(rule=self.rule.rule_id)

    def stored_events(self) -> list[Event]:
        return [Event(d, i, x) for i, x, d in self.s.events.search(0, 2**62, timestamp_field="@timestamp")]
