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
) -> list[dict]:
    """One run of an ES|QL rule over the events of its window; ``seen`` holds the alert ids
    already written (and takes this run's), ``excluded`` the documents already alerted on;
    ``kept``: the events already passed the query's leading WHERE (``Program.keeps``)."""
    now = datetime.fromtimestamp(to_ms / 1000, UTC)
    max_signals = max(int(rule.max_signals or 0), 0)
    aggregating = program.query.aggregating
    expands = bool(program.mv_expanded)
    if not aggregating and not expands and excluded:
        events = [e for e in events if (e.index or "", e.id or event_key(e)) not in excluded]
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


class EsqlReplay:
    """ES|QL rules over a stream of events, replayed on their schedules (see
    :mod:`vigil.engine.replay`)."""

    def __init__(
        self, rules: Iterable[Any], *, engine=None, start_ms: int | None = None, spill: Spill | None = None
    ) -> None:
        self.rules = list(rules)
        self.engine = engine
        self.start_ms = start_ms
        # Kept events on disk until their runs (vigil.engine.spill), else in memory.
        self.spill = spill
        self.programs = {r.rule_id: r.compiled() for r in self.rules}
        self.kept: dict[str, list[tuple[int, int, Event]]] = {r.rule_id: [] for r in self.rules}
        self.stats: dict[str, dict[str, int]] = {r.rule_id: {"runs": 0, "alerts": 0} for r in self.rules}
        self._arrival = 0
        self._readers: dict[str | None, list] = {}  # index -> the rules whose FROM reads it
        self._filtered = None  # the rules as filters over batches, built on first use

    def feed(self, event: Event) -> None:

        self._arrival += 1
        readers = self._readers.get(event.index)
        if readers is None:
            readers = [r for r in self.rules if takes_index(self.programs[r.rule_id], event.index)]
            if len(self._readers) < 4096:
                self._readers[event.index] = readers
        rows: dict[int, Any] = {}
        for rule in readers:
            self._take(rule, event, rows, 0, self._arrival)

    def _take(self, rule, event: Event, rows: dict[int, Any], row: int, arrival: int) -> None:
        """Keep ``event`` for ``rule`` if its leading WHERE and exceptions take it; ``rows``
        holds the events' rows (by ``row``), shared by the programs that read them."""
        from vigil.engine.replay import event_time

        program = self.programs[rule.rule_id]
        if program.leading_where:
            source = rows.get(row)
            if source is None:
                source = rows[row] = program.source_row(event)
            if not program.keeps(event, source):
                return
        if self.engine is not None and self.engine._suppressed(rule, event.doc):
            return
        ts = event_time(event.doc, rule.timestamp_override)
        if ts is not None:
            self.kept[rule.rule_id].append(
                (ts, arrival, event if self.spill is None else self.spill.park(event))
            )

    def feed_batch(self, events: list[Event], first: int) -> None:
        """:meth:`feed` each of ``events`` (arriving as numbers ``first``, ``first + 1``...),
        with each rule's leading WHERE run as a superset filter over the batch
        (:mod:`vigil.engine.esql_vector`); :meth:`Program.keeps` decides on the rows that pass."""

        if self._filtered is None:
            from vigil.engine.core import Filtered
            from vigil.engine.esql_vector import where_filter

            programs = self.programs
            for rid, program in programs.items():
                # A program read from the rule cache stands for itself until built: built
                # now, so that the calls per row do not go through its stand-in.
                build = getattr(program, "_program", None)
                if build is not None:
                    programs[rid] = build()
            self._filtered = Filtered(
                [(r, where_filter(programs[r.rule_id])) for r in self.rules],
                patterns=lambda r: tuple(programs[r.rule_id].indices),
                reads=lambda r, index: takes_index(programs[r.rule_id], index),
            )
        self._arrival += len(events)
        rows_of: dict[int, Any] = {}
        for k, rows in self._filtered.rows(events):
            rule = self._filtered.items[k][0]
            for row in rows:
                self._take(rule, events[row], rows_of, row, first + row)

    def alerts(self) -> Iterator[dict]:
        from vigil.engine.replay import schedule

        for rule in self.rules:
            kept = sorted(self.kept.pop(rule.rule_id), key=lambda t: (t[0], t[1]))
            times = [t[0] for t in kept]
            events = [t[2] for t in kept]
            program = self.programs[rule.rule_id]
            seen: set[str] = set()
            excluded: set[tuple[str, str]] = set()
            stats = self.stats[rule.rule_id]
            # alert_suppression (17 prebuilt ES|QL rules): Kibana's in-memory suppression over
            # each run's alerts, as the replay does for the other scheduled rules.
            suppressor = ReplaySuppressor.for_rule(rule)
            last: dict = {}  # the previous run's events, when they wait on disk
            for from_ms, to_ms in schedule(rule, times, self.start_ms):
                window = events[bisect.bisect_left(times, from_ms) : bisect.bisect_right(times, to_ms)]
                if self.spill is not None:
                    window = self.spill.window(window, last)
                found = run_esql(
                    rule,
                    program,
                    window,
                    from_ms=from_ms,
                    to_ms=to_ms,
                    seen=seen,
                    excluded=excluded,
                    kept=True,
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
