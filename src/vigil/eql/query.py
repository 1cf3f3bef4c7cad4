"""Compiled EQL queries: event queries, sequences and samples, with head/tail pipes.

A :class:`Query` runs over any items; ``doc(item)`` extracts the document.
Results follow Elasticsearch's order: events by timestamp, then tiebreaker, then
input order; sequences by their last positive event (a ``![...]`` stage holds
None); samples by join key (see :mod:`vigil.eql.sequence`, :mod:`vigil.eql.sample`).
A stream returns sequences as they are settled and, at ``close()``, those only
the end of the data settles (trailing missing stages) and every sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vigil.eql import ast
from vigil.eql.dates import to_epoch_millis
from vigil.eql.fields import lookup
from vigil.eql.sample import SampleRunner
from vigil.eql.sequence import SequenceMatcher, Stage


@dataclass
class QueryOptions:
    timestamp_field: str = "@timestamp"
    tiebreaker_field: str | None = None
    event_category_field: str = "event.category"
    size: int | None = None
    max_samples_per_key: int = 1
    # Match strings past their field's ignore_above, which Elasticsearch leaves
    # unindexed (so its queries never match them): more than Elastic gives.
    match_long_values: bool = False


@dataclass
class Match:
    kind: str
    events: list
    join_keys: list = field(default_factory=list)


def _identity(item: Any) -> Any:
    return item


def _first(values: list) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


class Query:
    """A compiled statement; see the module docstring."""

    def __init__(self, statement: ast.Statement, schema, options: QueryOptions) -> None:
        self.statement = statement
        self.options = options
        self._schema = schema
        q = statement.query
        self.kind = (
            "event"
            if isinstance(q, ast.EventQuery)
            else "sequence"
            if isinstance(q, ast.Sequence)
            else "sample"
        )
        self._built: tuple | None = None
        # What other layers derive from the statement alone (the engine's superset
        # filters), kept when the query is pickled into the rule cache.
        self.derived: dict[str, Any] = {}

    # The matchers are Python closures, built on first use: a rule set loaded from the
    # rule cache (vigil.rules.cache) holds checked statements, and a rule that no event
    # reaches never pays for its compilation. A query pickles as its statement.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_built"] = None
        return state

    def build(self) -> Query:
        """Compile the matchers now (a compile error is raised here, not at first match)."""
        if self._built is None:
            self._built = self._compile()
        return self

    @property
    def _filter(self) -> Callable[[dict], Any]:
        return (self._built or self.build()._built)[0]

    @property
    def _stages(self) -> list[Stage]:
        return (self._built or self.build()._built)[1]

    @property
    def _until(self) -> Stage | None:
        return (self._built or self.build()._built)[2]

    def _compile(self) -> tuple:
        from vigil.eql.compiler import compile_event_filter, compile_value

        schema, q = self._schema, self.statement.query
        cat = self.options.event_category_field
        if self.kind == "event":
            return compile_event_filter(q, schema, cat), [], None
        stages = []
        for s in q.stages:
            keys = [compile_value(k, schema) for k in s.keys]
            stages.append(
                Stage(
                    compile_event_filter(s.query, schema, cat),
                    keys,
                    runs=getattr(s, "runs", 1),
                    missing=getattr(s, "missing", False),
                    nullable=[isinstance(k, ast.Field) and k.optional for k in s.keys],
                )
            )
        until = None
        if isinstance(q, ast.Sequence) and q.until is not None:
            u = q.until
            until = Stage(
                compile_event_filter(u.query, schema, cat), [compile_value(k, schema) for k in u.keys]
            )
        filters = [s.filter for s in stages] + ([until.filter] if until else [])
        return (lambda d, fs=filters: any(f(d) for f in fs)), stages, until

    def matches(self, doc: dict) -> bool:
        """Event query: category and condition. Sequence/sample: any stage's filter."""
        test = (self._built or self.build()._built)[0]  # a compile error is raised, never "no match"
        try:
            return bool(test(doc))
        except Exception:  # noqa: BLE001 - a bad document never matches
            return False

    # ordering ---------------------------------------------------------------
    def _sort_key(self, doc: dict, order: int) -> tuple:
        ts = to_epoch_millis(_first(lookup(doc, self.options.timestamp_field)))
        tb = None
        if self.options.tiebreaker_field:
            tb = _first(lookup(doc, self.options.tiebreaker_field))
        # Missing timestamps sort last; None tiebreakers after present ones. A tiebreaker
        # is one mapped type in Elasticsearch; here values of mixed types (an attacker's
        # string beside numbers) sort by kind first, so they never fail to compare.
        return (ts is None, ts or 0, tb is None, _tiebreak(tb), order)

    def _pipes(self, results: list) -> list:
        for p in self.statement.pipes:
            results = results[: p.count] if p.name == "head" else results[-p.count :] if p.count else []
        if self.options.size is not None:
            results = results[: self.options.size]
        return results

    def run(self, items: Iterable, *, doc: Callable[[Any], dict] | None = None) -> Iterator[Match]:
        """All matches over ``items`` in Elasticsearch order, pipes applied."""
        get = doc or _identity
        kept = []
        for n, item in enumerate(items):
            d = get(item)
            if self.matches(d):
                kept.append((self._sort_key(d, n), item, d))
        kept.sort(key=lambda t: t[0])
        if self.kind == "event":
            results = [Match("event", [it]) for _, it, _ in kept]
        elif self.kind == "sequence":
            m = SequenceMatcher(self._stages, self._until, self.statement.query.maxspan_ms)
            for key, it, d in kept:
                m.feed(it, d, key[1] if not key[0] else None, key)
            results = [Match("sequence", evs, keys) for evs, keys in m.close()]
        else:
            r = SampleRunner(self._stages, self.options.max_samples_per_key)
            for _, it, d in kept:
                r.feed(it, d)
            results = [Match("sample", evs, keys) for evs, keys in r.results()]
        yield from self._pipes(results)

    def stream(self, doc: Callable[[Any], dict] | None = None) -> QueryStream:
        return QueryStream(self, doc or _identity)


class QueryStream:
    """Live matching for items arriving in timestamp order."""

    def __init__(self, query: Query, doc: Callable[[Any], dict]) -> None:
        self._q = query
        self._doc = doc
        self._n = 0
        self._seq = (
            SequenceMatcher(query._stages, query._until, query.statement.query.maxspan_ms)
            if query.kind == "sequence"
            else None
        )
        if self._seq is not None:
            self._seq.keep_done = False  # matches are handed out by feed(), not kept
        self._sample = (
            SampleRunner(query._stages, query.options.max_samples_per_key) if query.kind == "sample" else None
        )

    def feed(self, item: Any) -> list[Match]:
        d = self._doc(item)
        if not self._q.matches(d):
            if self._seq is not None and self._seq.awaiting:
                # Time moves on: sequences waiting on a trailing missing stage may be settled.
                key = self._q._sort_key(d, self._n)
                done = self._seq.tick(key[1] if not key[0] else None)
                return [Match("sequence", evs, keys) for evs, keys in done]
            return []
        self._n += 1
        if self._q.kind == "event":
            return [Match("event", [item])]
        if self._seq is not None:
            key = self._q._sort_key(d, self._n)
            done = self._seq.feed(item, d, key[1] if not key[0] else None, key)
            return [Match("sequence", evs, keys) for evs, keys in done]
        self._sample.feed(item, d)
        return []

    def idle(self, stages) -> bool:
        """A sequence that an event matching at most ``stages`` would not change now
        (:meth:`SequenceMatcher.idle`); never for samples and event queries."""
        return self._seq is not None and self._seq.idle(stages)

    def feed_matched(self, item: Callable[[], Any], doc: dict, ts: int | None, stages=None) -> list[Match]:
        """Feed an event already known to match: the matches it completes or releases.

        ``item`` is called for the item to keep only when a sequence may keep it (a
        positive stage matched), so an event that only meets a missing or until stage
        costs no copy. ``stages`` is the set of the query's stage numbers (until: the
        number after the last stage) whose filters ``doc`` matches, or None to let the
        matcher test every stage. ``ts`` is the event's timestamp in epoch
        milliseconds (None: missing); the caller keeps events in timestamp order.
        """
        self._n += 1
        if self._seq is not None:
            seq = self._seq
            if stages is None or seq.stores(stages):
                kept = item()
            else:
                kept = None
            done = seq.feed(kept, doc, ts, None, stages)
            return [Match("sequence", evs, keys) for evs, keys in done]
        if self._sample is not None:
            self._sample.feed(item(), doc)
            return []
        return [Match("event", [item()])]

    def close(self) -> list[Match]:
        if self._seq is not None:
            return [Match("sequence", evs, keys) for evs, keys in self._seq.flush()]
        if self._sample is not None:
            return [Match("sample", evs, keys) for evs, keys in self._sample.results()]
        return []


def compile_query(text_or_statement, schema=None, options: QueryOptions | None = None) -> Query:
    """Parse (if text), check and compile a statement."""
    from vigil.eql.parser import parse

    stmt = parse(text_or_statement) if isinstance(text_or_statement, str) else text_or_statement
    try:
        from vigil.eql.checker import check
    except ImportError:  # pragma: no cover - checker is optional
        check = None
    if check is not None:
        check(stmt, schema)
    options = options or QueryOptions()
    if options.match_long_values:
        from vigil.eql.schema import Schema

        schema = Schema(untyped=True) if schema is None else schema
        schema = schema.matching_long_values()
    return Query(stmt, schema, options).build()


def _tiebreak(value: Any) -> tuple:
    """A sort key for any tiebreaker value: numbers, then strings, then anything else."""
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, repr(value))
