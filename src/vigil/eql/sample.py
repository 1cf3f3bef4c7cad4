"""Samples: for each join key, events matching every stage (in any order).

Follows Elasticsearch's ``SampleIterator`` (x-pack/plugin/eql, execution.sample):

* Join keys come from composite aggregations, so samples come out in the order
  of their keys: ascending, a missing (null) key first.
* For each key and stage, the final query fetches the first
  ``stages + max_samples_per_key - 1`` matching events (``SampleQueryRequest.
  singleKeyPair``); we take them in input order.
* ``matchSamples`` then backtracks over those lists for up to
  ``max_samples_per_key`` samples. One event fills one stage of a sample, but
  the same event may appear in several samples of one key.
* A date key comes back as the composite aggregation's value: epoch
  milliseconds, not a formatted date.
"""

from __future__ import annotations

from typing import Any

from vigil.eql.semantics import DateValue, VersionValue
from vigil.eql.sequence import Stage, _safe, join_keys


def _key_order(key: tuple) -> tuple:
    """Composite aggregation order: null first, then values ascending."""
    out = []
    for v in key:
        if v is None:
            out.append((0,))
        elif isinstance(v, bool):
            out.append((1, 0, int(v)))
        elif isinstance(v, (int, float)):
            out.append((1, 1, v))
        elif isinstance(v, str):
            out.append((1, 2, v))
        elif isinstance(v, VersionValue):
            out.append((1, 3, v))
        else:
            out.append((1, 4, str(v)))
    return tuple(out)


def _key_value(v: Any) -> Any:
    return int(v) if isinstance(v, DateValue) else v


def match_samples(candidates: list[list], limit: int) -> list[list]:
    """Up to ``limit`` samples, each taking one distinct event per stage (depth first)."""
    result: list[list] = []
    partial: list = []

    def walk(stage: int) -> bool:
        for item in candidates[stage]:
            if any(item is p for p in partial):
                continue
            partial.append(item)
            if stage == len(candidates) - 1:
                result.append(list(partial))
            elif walk(stage + 1):
                return True
            partial.pop()
            if len(result) >= limit:
                return True
        return len(result) >= limit

    if candidates and all(candidates):
        walk(0)
    return result


class SampleRunner:
    def __init__(self, stages: list[Stage], max_per_key: int = 1) -> None:
        self.stages = stages
        self.max_per_key = max(1, max_per_key)
        self.per_stage = len(stages) + self.max_per_key - 1
        # key -> per-stage list of items
        self.buckets: dict[tuple, list[list]] = {}

    def feed(self, item: Any, doc: dict) -> None:
        for i, st in enumerate(self.stages):
            if not _safe(st.filter, doc):
                continue
            for k in join_keys(st, doc):
                b = self.buckets.get(k)
                if b is None:
                    b = self.buckets[k] = [[] for _ in self.stages]
                if len(b[i]) < self.per_stage:
                    b[i].append(item)

    def results(self) -> list[tuple[list, list]]:
        out = []
        for k in sorted(self.buckets, key=_key_order):
            keys = [_key_value(v) for v in k]
            for sample in match_samples(self.buckets[k], self.max_per_key):
                out.append((sample, keys))
        return out
