"""Samples: for each join key, events matching every stage (in any order).

Per key, up to ``max_samples_per_key`` samples are built, each taking for every
stage the earliest unused event of that stage.
"""

from __future__ import annotations

from typing import Any

from vigil.eql.sequence import Stage, _safe, join_keys


class SampleRunner:
    def __init__(self, stages: list[Stage], max_per_key: int = 1) -> None:
        self.stages = stages
        self.max_per_key = max(1, max_per_key)
        # key -> per-stage list of items
        self.buckets: dict[tuple, list[list]] = {}

    def feed(self, item: Any, doc: dict) -> None:
        for i, st in enumerate(self.stages):
            if not _safe(st.filter, doc):
                continue
            for k in join_keys(st, doc):
                b = self.buckets.setdefault(k, [[] for _ in self.stages])
                # Extra room: an event filling one stage cannot fill another of the same sample.
                if len(b[i]) < self.max_per_key + len(self.stages):
                    b[i].append(item)

    def results(self) -> list[tuple[list, list]]:
        out = []
        for k in sorted(self.buckets, key=lambda x: tuple(str(v) for v in x)):
            used: set[int] = set()
            for _ in range(self.max_per_key):
                sample = []
                for cands in self.buckets[k]:
                    pick = next((c for c in cands if id(c) not in used), None)
                    if pick is None:
                        break
                    sample.append(pick)
                    used.add(id(pick))
                if len(sample) < len(self.stages):
                    break
                out.append((sample, list(k)))
        return out
