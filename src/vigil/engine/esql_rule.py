"""ES|QL rules, run as Kibana's ES|QL executor runs them, over a replayed schedule.

Sources: Kibana's x-pack/solutions/security/plugins/security_solution/server/lib/
detection_engine/rule_types/esql/ (``esql.ts``, ``build_esql_search_request.ts``,
``wrap_esql_alerts.ts``, ``utils/generate_alert_id.ts``, ``utils/row_to_document.ts``,
``utils/merge_esql_result_in_source.ts``) and
``kbn-securitysolution-utils/src/esql/compute_if_esql_query_aggregating.ts``.

- A run reads the documents of its FROM indices whose time (``timestamp_override``,
  ``@timestamp`` when that is missing) lies in ``[from, to]``: Kibana's range filter
  on the ``_query`` request. Exceptions filter the documents first. NOW() is the run's
  ``to``. The query ends with ``| LIMIT max_signals + 1`` and at most ``max_signals``
  alerts are made per run.
- A query without a (non-inline) STATS is non-aggregating: each row's source event is
  the alert, with the row's columns (null cells left out; ``_id``, ``_version``,
  ``_index`` split off) set over it as dotted fields, replacing the source's value
  (``mergeEsqlResultInSource``). Its id comes from ``_id``, ``_version``, ``_index``,
  the rule and the values of MV_EXPANDed columns, so overlapping runs never alert twice;
  documents already alerted are left out of later runs (``excludedDocuments``) unless
  the query expands multi-values.
- An aggregating query's alert holds the returned columns only; its id comes from the
  run's window, the query, the rule and the row's position, so a group seen again by an
  overlapping look-back alerts again, as Elastic documents.

Vigil's ids hash the same inputs as Kibana's (``alert_uuid``), not with Kibana's
object-hash: they are stable across scans, not equal to Kibana's.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from vigil.engine.alerts import alert_uuid, build_alert, event_key, rule_uuid
from vigil.engine.spill import Spill
from vigil.engine.suppression import ReplaySuppressor
from vigil.eql.dates import iso_from_millis
from vigil.events.model import Event
from vigil.rules.indices import matches_patterns

SPACE = "default"


def takes_index(program, index: str | None) -> bool:
    """Whether an event of ``index`` is read by a query FROM these patterns (an event
    of no known index is read by every rule, as everywhere in Vigil)."""
    if index is None:
        return True
    return any(matches_patterns(p, index) for p in program.indices)


def reads_index(rule, index: str) -> bool:
    """Whether a runnable ES|QL rule's FROM reads ``index`` (an ES|QL rule has no ``index``
    parameter: its query names its sources)."""
    return rule.runnable and takes_index(rule.compiled(), index)


def merge_columns(doc: dict, record: dict) -> dict:
    """The source document with the ES|QL columns set over it as dotted fields: a nested
    or dotted key of the same name is removed first (mergeEsqlResultInSource)."""
    out = copy.deepcopy(doc)
    for name, value in record.items():
        if name in ("_id", "_version", "_index"):
            continue
        _remove(out, name.split("."))
        out[name] = value
    return out


def _remove(obj: Any, parts: list[str]) -> None:
    if not isinstance(obj, dict):
        return
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in obj:
            if i == len(parts):
                del obj[key]
            else:
                _remove(obj[key], parts[i:])
            return


def run_esql(
    rule,
    program,
    events: list[Event],
    *,
    from_ms: int,
    to_ms: int,
    seen: set[str],
    excluded: set[tuple[str, str]],
    kept: bool = False,
    rows: list | None = None,
) -> list[dict]:
    """One run of an ES|QL rule over the events of its window; ``seen`` holds the alert ids
    already written (and takes this run's), ``excluded`` the documents already alerted on;
    ``kept``: the events already passed the query's leading WHERE (``Program.keeps``).
    ``rows``: an aggregating query's rows after its local prefix (``Program.prefix_rows``),
    in the window's order, instead of ``events``."""
    now = datetime.fromtimestamp(to_ms / 1000, UTC)
    max_signals = max(int(rule.max_signals or 0), 0)
    aggregating = program.query.aggregating
    expands = bool(program.mv_expanded)
    if not aggregating and not expands and excluded:
        events = [e for e in events if (e.index or "", e.id or event_key(e)) not in excluded]
    if rows is not None and aggregating:
        result = program.run_rows(rows, now=to_ms)
    else:
        result = program.run(events, limit=None, kept=kept, now=to_ms)
    alerts: list[dict] = []
    if aggregating:
        window = (iso_from_millis(from_ms), iso_from_millis(to_ms))
        for i, record in enumerate(list(result.records())[: max_signals + 1]):
            if len(alerts) >= max_signals:
                break
            alert_id = alert_uuid(*window, rule.query, f"{SPACE}:{rule_uuid(rule)}", i)
            if alert_id in seen:
                continue
            alert = build_alert(rule, Event(record, "", alert_id), now=now)
            alert["kibana.alert.uuid"] = alert_id
            seen.add(alert_id)
            alerts.append(alert)
        return alerts
    for record, meta in zip(result.records(), result.metas, strict=True):
        if len(alerts) >= max_signals:
            break
        event = meta.get("_event")
        if event is None:
            continue
        doc_id = record.get("_id") or event.id or event_key(event)
        index = record.get("_index") or event.index or ""
        expanded = [str(record.get(name)) for name in program.mv_expanded]
        alert_id = alert_uuid(
            doc_id, record.get("_version", ""), index, f"{SPACE}:{rule_uuid(rule)}", *expanded
        )
        if alert_id in seen:
            continue
        merged = merge_columns(event.doc, record)
        alert = build_alert(rule, Event(merged, event.index, event.id, event.origin), now=now)
        alert["kibana.alert.uuid"] = alert_id
        seen.add(alert_id)
        excluded.add((event.index or "", event.id or event_key(event)))
        alerts.append(alert)
    return alerts


def _event_time():
    global _EVENT_TIME
    if _EVENT_TIME is None:
        from vigil.engine.replay import event_time

        _EVENT_TIME = event_time
    return _EVENT_TIME


_EVENT_TIME = None


class _Rows(list):
    """An event's rows after a rule's local prefix, kept for its runs."""

    __slots__ = ()


# Rows of the local prefix kept in memory for the runs (all rules together), as the few
# columns their STATS reads; past it, the event waits (on disk) and its rows are made again
# in each run.
ROW_BUDGET = 400_000


class EsqlReplay:
    """ES|QL rules over a stream of events, replayed on their schedules (see
    :mod:`vigil.engine.replay`).

    A rule's runs are placed by the times of the events its leading WHERE and exceptions
    keep (as for the other scheduled rules). The commands before the first STATS, SORT or
    LIMIT work row by row (``Program.local``), so each kept event goes through them once,
    as it arrives, not in each of the ~2 overlapping runs that read it: an event that
    leaves no row keeps only its time (the runs stay where they were); an aggregating
    rule's event keeps its rows, reduced to the columns its STATS reads
    (``Program.project``), so its runs start at that STATS; any other rule's event waits
    for its runs, which give it the whole query.

    ``fast`` (default: when kept events wait in ``spill``, a scan's replay) turns this
    on; otherwise every kept event waits and each run gives the whole query to every
    event of its window, row by row (the evaluation the fast one is tested against),
    and :attr:`kept` holds ``(time, arrival, event)`` for the schedulers that run the
    rules themselves (:mod:`vigil.scheduler.live`, :mod:`vigil.scheduler.runner`).
    """

    def __init__(
        self,
        rules: Iterable[Any],
        *,
        engine=None,
        start_ms: int | None = None,
        spill: Spill | None = None,
        fast: bool | None = None,
    ) -> None:
        self.rules = list(rules)
        self.engine = engine
        self.start_ms = start_ms
        # Kept events on disk until their runs (vigil.engine.spill), else in memory.
        self.spill = spill
        self.fast = spill is not None if fast is None else fast
        self.programs = {r.rule_id: r.compiled() for r in self.rules}
        # Per rule: (time, arrival, item); the item is the event (its place in the spill), or
        # when fast, None (its time alone) or its projected rows (_Rows).
        self.kept: dict[str, list[tuple[int, int, Any]]] = {r.rule_id: [] for r in self.rules}
        self.stats: dict[str, dict[str, int]] = {r.rule_id: {"runs": 0, "alerts": 0} for r in self.rules}
        self._arrival = 0
        self._budget = ROW_BUDGET
        self._readers: dict[str | None, list] = {}  # index -> the rules whose FROM reads it
        self._filtered = None  # the rules as filters over batches, built on first use

    def _build(self) -> None:
        """Programs read from the rule cache stand for themselves until built: built now,
        so that the calls per row do not go through their stand-ins."""
        programs = self.programs
        for rid, program in programs.items():
            build = getattr(program, "_program", None)
            if build is not None:
                programs[rid] = build()

    def feed(self, event: Event) -> None:
        self._arrival += 1
        readers = self._readers.get(event.index)
        if readers is None:
            readers = [r for r in self.rules if takes_index(self.programs[r.rule_id], event.index)]
            if len(self._readers) < 4096:
                self._readers[event.index] = readers
        rows: dict[Any, Any] = {}
        for rule in readers:
            self._take(rule, event, rows, 0, self._arrival)

    def _take(self, rule, event: Event, rows: dict[Any, Any], row: int, arrival: int, narrowed=None) -> None:
        """Keep ``event`` for ``rule`` if its leading WHERE and exceptions take it; ``rows``
        holds what the programs that read the events share, by ``row``: the events' rows
        and times. ``narrowed``: the rows that pass the superset filter of the rule's local
        prefix (``esql_vector.prefix_filter``), when it has one: the others leave no row."""
        event_time = _event_time()
        program = self.programs[rule.rule_id]
        src = rows.get(row)
        if src is None:
            src = rows[row] = {}  # the event's fields read so far (Row.src)
        source = None
        if program.leading_where:
            source = rows.get((row,))
            if source is None:
                source = rows[(row,)] = program.source_row(event, src)
            if not program.keeps(event, source):
                return
        if self.engine is not None and self.engine._suppressed(rule, event.doc):
            return
        when = (row, rule.timestamp_override)
        ts = (
            rows[when]
            if when in rows
            else rows.setdefault(when, event_time(event.doc, rule.timestamp_override))
        )
        if ts is None:
            return
        item = None
        if not self.fast:
            item = event
        elif narrowed is not None and row not in narrowed:
            pass
        elif program.stats_reads is not None and program.aggregating and self._budget > 0:
            got = program.prefix_rows(event, kept=True, src=src, source=source)
            if got:
                item = _Rows(program.project(got))
                self._budget -= len(item)
        elif program.filter_end <= 1 or program.prefix_rows(
            event, kept=True, end=program.filter_end, src=src
        ):
            item = event
        if isinstance(item, Event) and self.spill is not None:
            item = self.spill.park(item)
        self.kept[rule.rule_id].append((ts, arrival, item))

    def feed_batch(self, events: list[Event], first: int) -> None:
        """:meth:`feed` each of ``events`` (arriving as numbers ``first``, ``first + 1``...),
        with each rule's leading WHERE run as a superset filter over the batch
        (:mod:`vigil.engine.esql_vector`); :meth:`Program.keeps` decides on the rows that pass."""

        if self._filtered is None:
            from vigil.engine.core import Filtered
            from vigil.engine.esql_vector import prefix_filter, where_filter

            self._build()
            programs = self.programs
            items = [(r, where_filter(programs[r.rule_id])) for r in self.rules]
            # Then, when fast, the filters of the local prefixes that narrow further.
            for r, lead in list(items):
                program = programs[r.rule_id]
                if self.fast and program.filter_end > 1:
                    narrow = prefix_filter(program)
                    if narrow != lead:
                        items.append((r, narrow))
            self._filtered = Filtered(
                items,
                patterns=lambda r: tuple(programs[r.rule_id].indices),
                reads=lambda r, index: takes_index(programs[r.rule_id], index),
            )
        self._arrival += len(events)
        rows_of: dict[Any, Any] = {}
        n = len(self.rules)
        items = self._filtered.items
        narrowed = {items[k][0].rule_id: set() for k in range(n, len(items))}
        taken = []
        for k, rows in self._filtered.rows(events):
            if k < n:
                taken.append((items[k][0], rows))
            else:
                narrowed[items[k][0].rule_id].update(rows)
        for rule, rows in taken:
            narrow = narrowed.get(rule.rule_id)
            for row in rows:
                self._take(rule, events[row], rows_of, row, first + row, narrow)

    def alerts(self) -> Iterator[dict]:
        from vigil.engine.core import few_collections

        # The runs allocate rows without pause while every kept event is alive: the
        # collector tuned as while reading (see few_collections).
        with few_collections():
            self._build()
            for rule in self.rules:
                yield from self._rule_alerts(rule)

    def _rule_alerts(self, rule) -> Iterator[dict]:
        from vigil.engine.replay import schedule

        kept = sorted(self.kept.pop(rule.rule_id), key=lambda t: (t[0], t[1]))
        times = [t[0] for t in kept]
        program = self.programs[rule.rule_id]
        by_rows = program.aggregating and program.stats_reads is not None and self.fast
        seen: set[str] = set()
        excluded: set[tuple[str, str]] = set()
        stats = self.stats[rule.rule_id]
        # alert_suppression (17 prebuilt ES|QL rules): Kibana's in-memory suppression over
        # each run's alerts, as the replay does for the other scheduled rules.
        suppressor = ReplaySuppressor.for_rule(rule)
        last: dict = {}  # the previous run's events, when they wait on disk
        for from_ms, to_ms in schedule(rule, times, self.start_ms):
            entries = kept[bisect.bisect_left(times, from_ms) : bisect.bisect_right(times, to_ms)]
            window = [t[2] for t in entries if t[2] is not None and type(t[2]) is not _Rows]
            if self.spill is not None:
                window = self.spill.window(window, last)
            rows = None
            if by_rows:
                rows = []
                waiting = iter(window)
                for t in entries:
                    if type(t[2]) is _Rows:
                        rows += t[2]
                    elif t[2] is not None:
                        rows += program.prefix_rows(next(waiting), kept=True)
            found = run_esql(
                rule,
                program,
                window,
                from_ms=from_ms,
                to_ms=to_ms,
                seen=seen,
                excluded=excluded,
                kept=True,
                rows=rows,
            )
            stats["runs"] += 1
            if suppressor is not None:
                suppressor.run(found, from_ms=from_ms, to_ms=to_ms)
                continue
            stats["alerts"] += len(found)
            yield from found
        if suppressor is not None:
            kept_alerts = suppressor.alerts()
            stats["alerts"] += len(kept_alerts)
            yield from kept_alerts
