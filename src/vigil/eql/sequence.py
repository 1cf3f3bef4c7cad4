"""Sequence matching with Elasticsearch's semantics, over plain callables.

Each stage has a filter and key getters. One pending sequence is kept per stage
and join key; a newer one replaces the older (as Elasticsearch's KeyToSequences).
maxspan is measured from the first event, inclusive. ``until`` drops the pending
sequences of its key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stage:
    filter: Callable[[dict], bool]
    keys: list = field(default_factory=list)
    runs: int = 1
    missing: bool = False
    # Per key: may it be null (an optional ``?field``)? Otherwise a null key drops the event.
    nullable: list = field(default_factory=list)


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


def join_keys(stage: Stage, doc: dict) -> list[tuple]:
    """Every join key of ``doc``: the product of multi-valued key fields, as Elasticsearch 8."""
    combos: list[tuple] = [()]
    for n, get in enumerate(stage.keys):
        try:
            v = get(doc)
        except Exception:  # noqa: BLE001 - an unreadable key is a null key
            v = None
        values = [x for x in v if x is not None] if isinstance(v, list) else [v]
        values = list(dict.fromkeys(_hashable(x) for x in values)) or [None]
        if values == [None] and not (n < len(stage.nullable) and stage.nullable[n]):
            return []
        combos = [c + (x,) for c in combos for x in values]
    return combos


def _safe(pred: Callable[[dict], bool], doc: dict) -> bool:
    try:
        return bool(pred(doc))
    except Exception:  # noqa: BLE001
        return False


class SequenceMatcher:
    """Feed (item, doc, timestamp_ms) in order; collect completed sequences."""

    def __init__(self, stages: list[Stage], until: Stage | None, maxspan_ms: int | None) -> None:
        expanded: list[Stage] = []
        for s in stages:
            expanded.extend([s] * max(1, s.runs))
        self.stages = expanded
        self.until = until
        self.maxspan = maxspan_ms
        # pending[i][key] = (events, start_ts) waiting for stage i+1
        self.pending: list[dict] = [{} for _ in expanded]
        self.done: list[tuple[list, list]] = []

    def feed(self, item: Any, doc: dict, ts: int | None) -> list[tuple[list, list]]:
        out: list[tuple[list, list]] = []
        if self.until is not None and _safe(self.until.filter, doc):
            for k in join_keys(self.until, doc):
                for p in self.pending:
                    p.pop(k, None)
        last = len(self.stages) - 1
        # Later stages first, so one event cannot advance a sequence twice.
        for i in range(last, -1, -1):
            st = self.stages[i]
            if not _safe(st.filter, doc):
                continue
            for k in join_keys(st, doc):
                self._advance(i, k, item, ts, out)
        self.done.extend(out)
        return out

    def _advance(self, i: int, k: tuple, item: Any, ts: int | None, out: list) -> None:
        last = len(self.stages) - 1
        if i == 0:
            if last == 0:
                out.append(([item], list(k)))
            else:
                self.pending[0][k] = ([item], ts)
            return
        prev = self.pending[i - 1].pop(k, None)
        if prev is None:
            return
        events, start = prev
        if self.maxspan is not None and ts is not None and start is not None and ts - start > self.maxspan:
            return
        if i == last:
            out.append((events + [item], list(k)))
        else:
            self.pending[i][k] = (events + [item], start)

    def close(self) -> list[tuple[list, list]]:
        return list(self.done)

    def flush(self) -> list[tuple[list, list]]:
        return []
