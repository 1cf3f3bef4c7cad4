"""Sequence matching with Elasticsearch's semantics, over plain callables.

Events are fed one at a time in Elasticsearch order (timestamp, tiebreaker).
The rules follow x-pack/plugin/eql ``execution.sequence``:

* ``SequenceMatcher.match`` / ``KeyToSequences``: per positive stage and join
  key, an event of the next positive stage takes the latest in-flight sequence
  before it and drops the older ones, so one in-flight sequence per stage and
  key is enough when events arrive in order. maxspan is measured from the first
  positive event to the current one (``exceedsMaxSpan``: strictly greater).
* ``until``: a sequence is dropped when an until event of its key lies between
  its last event (inclusive) and the next event (exclusive) (``Ordinal.between``
  with ``UntilGroup.before``), so an until event never cancels the sequence that
  the same event completes.
* Missing-event stages ``![...]`` (``TumblingWindow.checkMissingEvents``): a
  sequence is first matched on its positive stages, then checked with the
  missing stages' filters and the same key. A missing stage between two
  positive ones discards the sequence when an event of it has a timestamp
  strictly between its neighbours' timestamps. Leading missing stages look for
  the latest such event strictly before the first positive event, trailing
  ones for the earliest strictly after the last positive event; the sequence is
  kept when none exists or when it lies more than maxspan away
  (``doCheckMissingEvents``). A trailing check needs later events, so those
  sequences wait until one arrives, until time passes beyond maxspan, or until
  :meth:`SequenceMatcher.flush` at the end of the data.
* Results come out in Elasticsearch order: ``SequenceMatcher.completed`` is
  sorted by ``Sequence.ordinal()``, the ordinal of the last positive event.
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


# How often (in events) a stream with maxspan drops state that can no longer matter.
PRUNE_EVERY = 4096


class _Seq:
    """One in-flight sequence (Elasticsearch's ``Sequence``)."""

    __slots__ = ("key", "events", "start", "last", "ordinal", "poison", "dead", "lead")

    def __init__(self, key: tuple, n: int, stage: int, item: Any, ts: int | None, ordinal: Any, lead) -> None:
        self.key = key
        self.events: list = [None] * n
        self.events[stage] = item
        self.start = ts
        self.last = ts
        self.ordinal = ordinal
        # Earliest event of a missing stage after ``last`` (the gap the sequence waits in).
        self.poison: int | None = None
        # A missing stage between two matched events had an event: dropped on completion.
        self.dead = False
        # Latest event of a leading missing stage before the first positive event.
        self.lead = lead


def _order(ordinal: Any) -> Any:
    return (1,) if ordinal is None else (0, ordinal)


class SequenceMatcher:
    """Feed (item, doc, timestamp_ms, ordinal) in order; collect completed sequences.

    ``ordinal`` is any sortable value giving the event's place in Elasticsearch
    order; completed sequences are sorted by the ordinal of their last positive
    event (input order when it is not given).
    """

    def __init__(self, stages: list[Stage], until: Stage | None, maxspan_ms: int | None) -> None:
        expanded: list[Stage] = []
        # origin[i]: the query stage that matcher stage i comes from (``runs`` repeat a stage).
        origin: list[int] = []
        for q, s in enumerate(stages):
            expanded.extend([s] * max(1, s.runs))
            origin.extend([q] * max(1, s.runs))
        self.origin = origin
        # The until stage's number among the query's stages (see :meth:`feed`'s ``known``).
        self.until_index = len(stages)
        self.stages = expanded
        self.until = until
        self.maxspan = maxspan_ms if maxspan_ms else None
        n = len(expanded)
        self.missing = [s.missing for s in expanded]
        positive = [i for i in range(n) if not self.missing[i]]
        self.first = positive[0] if positive else 0
        self.last = positive[-1] if positive else n - 1
        prev: list[int] = []
        p = -1
        for i in range(n):
            prev.append(p)
            if not self.missing[i]:
                p = i
        self.prev = prev
        self.positive_desc = sorted(positive, reverse=True)
        self.leading = [i for i in range(n) if self.missing[i] and i < self.first]
        self.trailing = [i for i in range(n) if self.missing[i] and i > self.last]
        self.middle = [i for i in range(n) if self.missing[i] and self.first < i < self.last]
        # pending[i][key]: the in-flight sequence whose last positive event matched stage i.
        self.pending: dict[int, dict] = {i: {} for i in positive}
        # Leading missing stages: key -> (latest timestamp, latest timestamp before it).
        self.lead_seen: dict[tuple, tuple] = {}
        # Sequences waiting for their trailing missing stages.
        self.awaiting: list[_Seq] = []
        self.positive_origins = frozenset(origin[i] for i in positive)
        self.done: list[tuple[list, list]] = []
        self._done_order: list = []
        # False: completed sequences are only handed out (a stream), not kept for close().
        self.keep_done = True
        self._n = 0

    # --- public -------------------------------------------------------------------

    def stores(self, known) -> bool:
        """Whether an event matching exactly the query stages ``known`` can be kept in a
        sequence (only positive stages keep events; missing and until stages never do)."""
        return not self.positive_origins.isdisjoint(known)

    def idle(self, known) -> bool:
        """Whether an event matching at most the query stages ``known`` (until: the number
        after the last stage) would change nothing if fed now: each positive stage it may
        match extends a sequence, and none is in flight at the stage before; it matches
        no missing stage; an until finds nothing to drop; no sequence waits for time.

        Most events that reach a sequence match one of its later stages only, while
        sequences start rarely: those need no join key, no copy and no exact filter.
        Completed sequences are ordered by the places of the events fed, so leaving out
        idle events keeps their order."""
        if self.awaiting:
            return False
        for i, origin in enumerate(self.origin):
            if origin in known and (self.missing[i] or i == self.first or self.pending[self.prev[i]]):
                return False
        return self.until_index not in known or not any(self.pending.values())

    def feed(
        self, item: Any, doc: dict, ts: int | None, ordinal: Any = None, known=None
    ) -> list[tuple[list, list]]:
        """Match one event; return the sequences it completes (or releases).

        ``known``, when given, is the set of the query's stage numbers (until: the
        number after the last stage) whose filters the event matches, already
        evaluated by the caller: the filters are not evaluated again.
        """
        self._n += 1
        if ordinal is None:
            ordinal = self._n
        if self.maxspan is not None and ts is not None and self._n % PRUNE_EVERY == 0:
            self.prune(ts)
        out: list[_Seq] = []
        if self.awaiting and ts is not None:
            self._release(ts, out)
        if self.leading or self.middle or self.trailing:
            self._missing(doc, ts, out, known)
        origin = self.origin
        for i in self.positive_desc:
            if known is None:
                if not _safe(self.stages[i].filter, doc):
                    continue
            elif origin[i] not in known:
                continue
            for k in join_keys(self.stages[i], doc):
                self._advance(i, k, item, ts, ordinal, out)
        if self.until is not None and (
            _safe(self.until.filter, doc) if known is None else self.until_index in known
        ):
            for k in join_keys(self.until, doc):
                for p in self.pending.values():
                    p.pop(k, None)
        return self._emit(out)

    def prune(self, now: int) -> None:
        """Forget state that can no longer change a result once time has reached ``now``.

        An in-flight sequence older than maxspan can never advance (each later
        event is rejected as Elasticsearch rejects it), and a leading missing
        event older than maxspan keeps every later sequence, as no event would.
        A live stream calls this every few thousand events, so memory follows
        the keys seen within maxspan, not all keys ever seen.
        """
        if self.maxspan is None:
            return
        horizon = now - self.maxspan
        for p in self.pending.values():
            old = [k for k, s in p.items() if s.start is not None and s.start < horizon]
            for k in old:
                del p[k]
        old = [k for k, seen in self.lead_seen.items() if seen[0] is not None and seen[0] < horizon]
        for k in old:
            del self.lead_seen[k]

    def tick(self, ts: int | None) -> list[tuple[list, list]]:
        """Time has reached ``ts`` (an event no stage takes): release what can no longer change."""
        out: list[_Seq] = []
        if self.awaiting and ts is not None:
            self._release(ts, out)
        return self._emit(out)

    def flush(self) -> list[tuple[list, list]]:
        """End of data: sequences still waiting for a trailing missing stage are kept."""
        out = [s for s in self.awaiting if self._keep(s.lead, None, s)]
        self.awaiting = []
        return self._emit(out)

    def close(self) -> list[tuple[list, list]]:
        """Every sequence, in Elasticsearch order (after :meth:`flush`)."""
        self.flush()
        order = sorted(range(len(self.done)), key=lambda n: _order(self._done_order[n]))
        return [self.done[n] for n in order]

    # --- matching -----------------------------------------------------------------

    def _emit(self, seqs: list[_Seq]) -> list[tuple[list, list]]:
        res = []
        for s in seqs:
            r = (list(s.events), list(s.key))
            if self.keep_done:
                self.done.append(r)
                self._done_order.append(s.ordinal)
            res.append(r)
        return res

    def _advance(self, i: int, k: tuple, item: Any, ts: int | None, ordinal: Any, out: list) -> None:
        if i == self.first:
            lead = self._lead(k, ts) if self.leading else None
            seq = _Seq(k, len(self.stages), i, item, ts, ordinal, lead)
        else:
            seq = self.pending[self.prev_positive(i)].pop(k, None)
            if seq is None:
                return
            if (
                self.maxspan is not None
                and ts is not None
                and seq.start is not None
                and ts - seq.start > self.maxspan
            ):
                return
            if seq.poison is not None and ts is not None and seq.poison < ts:
                seq.dead = True
            seq.poison = None
            seq.events = list(seq.events)
            seq.events[i] = item
            seq.last = ts
            seq.ordinal = ordinal
        if i == self.last:
            self._complete(seq, out)
        else:
            self.pending[i][k] = seq

    def prev_positive(self, i: int) -> int:
        return self.prev[i]

    # --- missing events -----------------------------------------------------------

    def _hit(self, j: int, doc: dict, known) -> bool:
        if known is None:
            return _safe(self.stages[j].filter, doc)
        return self.origin[j] in known

    def _missing(self, doc: dict, ts: int | None, out: list, known=None) -> None:
        if ts is None:
            return
        for j in self.middle:
            st = self.stages[j]
            if not self._hit(j, doc, known):
                continue
            waiting = self.pending[self.prev[j]]
            for k in join_keys(st, doc):
                seq = waiting.get(k)
                if seq is not None and seq.poison is None and seq.last is not None and ts > seq.last:
                    seq.poison = ts
        for j in self.trailing:
            st = self.stages[j]
            if not self.awaiting or not self._hit(j, doc, known):
                continue
            keys = set(join_keys(st, doc))
            still = []
            for seq in self.awaiting:
                if seq.key in keys and seq.last is not None and ts > seq.last:
                    # The earliest trailing event decides.
                    if self._keep(seq.lead, ts, seq):
                        out.append(seq)
                else:
                    still.append(seq)
            self.awaiting = still
        for j in self.leading:
            st = self.stages[j]
            if not self._hit(j, doc, known):
                continue
            for k in join_keys(st, doc):
                seen = self.lead_seen.get(k)
                if seen is None:
                    self.lead_seen[k] = (ts, None)
                elif ts > seen[0]:
                    self.lead_seen[k] = (ts, seen[0])

    def _lead(self, k: tuple, ts: int | None) -> int | None:
        """The latest leading-stage event of key ``k`` strictly before ``ts``."""
        seen = self.lead_seen.get(k)
        if seen is None or ts is None:
            return None
        return seen[0] if seen[0] < ts else seen[1]

    def _beyond(self, a: int | None, b: int | None) -> bool:
        """``biggerThanMaxSpan``: true when either end is unknown or b - a exceeds maxspan."""
        if a is None or b is None:
            return True
        return self.maxspan is not None and b - a > self.maxspan

    def _keep(self, lead: int | None, trail: int | None, seq: _Seq) -> bool:
        """Elasticsearch's decision for a sequence with leading/trailing missing stages."""
        has_lead, has_trail = bool(self.leading), bool(self.trailing)
        return (
            (trail is None and lead is None)
            or (lead is None and has_lead)
            or (trail is None and has_trail)
            or (has_lead and has_trail and self._beyond(lead, trail))
            or (has_lead and not has_trail and self._beyond(lead, seq.last))
            or (not has_lead and has_trail and self._beyond(seq.start, trail))
        )

    def _complete(self, seq: _Seq, out: list) -> None:
        if seq.dead:
            return
        if not self.trailing:
            if not self.leading or self._keep(seq.lead, None, seq):
                out.append(seq)
            return
        if self.leading and seq.lead is None:
            out.append(seq)  # kept whatever follows (no leading event)
            return
        self.awaiting.append(seq)

    def _release(self, ts: int, out: list) -> None:
        """Waiting sequences that any later trailing event would keep anyway."""
        if self.maxspan is None:
            return
        still = []
        for seq in self.awaiting:
            ref = seq.lead if self.leading else seq.start
            if ref is not None and ts - ref > self.maxspan:
                out.append(seq)
            else:
                still.append(seq)
        self.awaiting = still
