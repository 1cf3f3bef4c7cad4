"""``vigil scan``: run detection rules over event files and report the alerts Kibana would raise."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from contextlib import ExitStack
from typing import Any

from vigil.cli import output
from vigil.cli.common import Detection, add_rule_options, load_detection
from vigil.engine.batch import scan_paths
from vigil.engine.replay import keep_stdin, replay_paths
from vigil.errors import VigilError
from vigil.events.readers import ReadStats
from vigil.rules.model import ML_REASON
from vigil.sinks import AlertTable, NdjsonSink, StoreSink
from vigil.store.alert_index import reads_alerts

SOURCES_HELP = """\
event sources (each event classified on its own unless --source is given):
  sentinelone  a raw SentinelOne Cloud Funnel event: a top-level key
               meta.event.name, or flat keys starting with src.process.,
               tgt.file. or tgt.process.; mapped as Elastic's integration
               pipeline maps it, index logs-sentinel_one_cloud_funnel.event-default
  endgame      an ECS document with an endgame object (taken as it is), or the
               flat legacy schema (event_type with serial_event_id or a FILETIME
               timestamp); index endgame-<version>
  ecs          anything else (Elastic Defend, Beats, exports), taken as it is

event index:
  --index NAME for every input, else an export hit's _index, else
  data_stream.type-data_stream.dataset-data_stream.namespace. A rule reads
  only the indices its index patterns match; an event with no index is
  offered to every rule.

on Spark:
  --spark MASTER runs the scan on Apache Spark (local[N], local[*],
  spark://host:7077, yarn, ...), with the alerts of a single process, in the
  same order: executors read byte ranges of the inputs (few rules) or run a
  share of the rules over all of them (64 rules or more). Executors read the
  input files at the same paths: inputs must be on a filesystem every
  executor sees (local mode, or a shared one). Not for standard input.
  Needs Java 17+ and pip install 'vigil[spark]'.

threshold and new terms rules (a replayed schedule):
  A file has no schedule, so these rules run as Kibana would have run them
  had they been enabled when the data begins: a run every interval (5m by
  default) over its look-back window (from, e.g. now-9m), from the first
  event to the last, each on the time of the rule's timestamp_override
  (event.ingested for Elastic's rules) with @timestamp as the fallback.
  A threshold rule counts each window, and an alerted group's events are not
  counted again by later runs. A new terms rule reads its history window
  (history_window_start, e.g. now-7d) from the same data: at the beginning
  of a file there is no history, so every term of the first runs is new.
  --replay-start TIME enables the rules at TIME instead: the events before
  it are history only (a new terms rule learns them, no rule alerts on
  them). The same data gives the same alerts and ids; an alert's @timestamp
  is the time of the replayed run.
  Indicator match (threat_match) rules run on the same replayed schedule:
  each run matches the events of its window against the indicator documents
  of the rule's threat_index (logs-ti_* for Elastic's rules) that its
  threat_query takes at the run's time (now-30d/d: the 30 days before the run)
  and that were written by then (event.ingested, else @timestamp). Indicators
  are any input event of those indices, and the documents of --indicators
  FILE (NDJSON, JSON or an Elasticsearch export; hits keep their _index, a
  document with no index is read by every such rule). See
  docs/indicator-match.md.
  Machine learning rules need Elastic's anomaly detection jobs (their
  scores come from models trained in Elasticsearch) and cannot run here.

exit status: 0 when every input was read whole (alerts or not); 1 when
some lines or events were skipped (each reported with file, line and
column); 2 when an input could not be read at all or an option is wrong.
--strict stops at the first problem.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "scan",
        help="run detection rules over event files",
        description="Run Elastic detection rules (the bundled ones by default) over event files, "
        "folders or standard input, and write the alerts Kibana would write.",
        epilog=SOURCES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        metavar="INPUT",
        nargs="*",
        help="NDJSON / JSON / .gz files or folders; '-' or none for stdin",
    )
    add_rule_options(p)
    p.add_argument("--index", metavar="NAME", help="index name for every input event")
    p.add_argument(
        "--source",
        choices=("ecs", "sentinelone", "endgame"),
        help="shape of the input events (detected per event when not given)",
    )
    p.add_argument("--output", metavar="FILE", help="write alerts here instead of standard output")
    p.add_argument("--store", metavar="PATH", help="also keep alerts in this embedded alert store")
    p.add_argument("--jobs", type=_jobs, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument(
        "--spark",
        metavar="MASTER",
        help="read the inputs on Apache Spark at this master URL, e.g. local[*] (see below)",
    )
    p.add_argument(
        "--replay-start",
        metavar="TIME",
        type=_replay_time,
        help="enable threshold, new terms and indicator match rules at this time (ISO 8601) in the replay: "
        "earlier events are history only (default: the first event; see below)",
    )
    p.add_argument(
        "--indicators",
        metavar="FILE",
        action="append",
        default=[],
        help="threat indicator documents for indicator match rules (repeatable; see below)",
    )
    output.add_format_option(p)
    p.set_defaults(func=run)


def _replay_time(text: str) -> int:
    from vigil.eql.dates import to_millis

    ms = to_millis(text)
    if ms is None:
        raise argparse.ArgumentTypeError(
            f"expected a date and time such as 2024-05-01T12:00:00Z, got {text!r}"
        )
    return ms


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


class _StrictStats(ReadStats):
    """With --strict, every line is parsed and the first skipped event or unreadable
    file ends the scan."""

    strict = True

    def problem(self, message: str, file: str, line: int | None = None, column: int | None = None) -> None:
        raise VigilError(f"{message} (--strict)", file=file, line=line, column=column)


def run(args: argparse.Namespace) -> int:
    fmt = output.resolve_format(args)
    inputs = args.inputs or ["-"]
    if args.spark is not None:
        if args.jobs > 1:
            raise VigilError("--spark and --jobs exclude each other: Spark decides the workers")
        if "-" in inputs:
            raise VigilError(
                "--spark reads files from Spark's executors, not standard input: name files or folders"
            )
    detection = load_detection(args)
    stats = _StrictStats() if args.strict else ReadStats()
    with ExitStack() as stack:
        sinks: list[Any] = []
        if args.output:
            try:
                fh = stack.enter_context(open(args.output, "wb"))
            except OSError as exc:
                raise VigilError(f"cannot write alerts: {exc.strerror}", file=args.output) from None
            sinks.append(NdjsonSink(fh))
        if fmt == "ndjson" and not args.output:
            sinks.append(NdjsonSink(sys.stdout.buffer))
        table = AlertTable(output.console()) if fmt == "table" else None
        if table is not None:
            sinks.append(table)
        store = None
        if args.store:
            from vigil.store.alerts import AlertStore

            store = StoreSink(stack.enter_context(AlertStore(args.store)))
            sinks.append(store)
        count = _scan(detection, inputs, args, stats, sinks)
        for sink in sinks:
            sink.close()
    _report(detection, stats, count, store, fmt)
    return output.exit_status(inputs, stats)


def _scan(detection: Detection, inputs: list[str], args, stats: ReadStats, sinks: list) -> int:
    count = 0
    kwargs: dict[str, Any] = {"index": args.index, "source": args.source, "stats": stats}
    if args.jobs > 1:
        kwargs["jobs"] = args.jobs
    with ExitStack() as stack:
        bar = stack.enter_context(output.progress("scanning events"))
        if args.spark is not None:
            kwargs["runner"] = _spark_runner(stack, detection, args.spark, bar)
        seen = 0

        def advance(n: int) -> None:
            nonlocal seen
            bar.advance(n - seen)
            seen = n

        copy = keep_stdin(stack) if detection.engine.scheduled and "-" in inputs else None
        # Rules over .alerts-security.* read the alerts written before them in the scan.
        earlier: list[dict] | None = [] if any(map(reads_alerts, detection.engine.scheduled)) else None
        for alert in scan_paths(detection.engine, inputs, on_progress=advance, **kwargs):
            count += 1
            if earlier is not None:
                earlier.append(alert)
            for sink in sinks:
                sink.write(alert)
        if detection.engine.scheduled:
            # Threshold and new terms rules: their schedule replayed over the same events.
            bar.update(description="replaying threshold and new terms rules")
            if copy is not None:
                copy.flush()
                inputs = [copy.name if name == "-" else name for name in inputs]
            start = getattr(args, "replay_start", None)
            for alert in replay_paths(
                detection.engine,
                inputs,
                index=args.index,
                source=args.source,
                start_ms=start,
                stats=stats,
                names={copy.name: "<stdin>"} if copy is not None else None,
                alerts=earlier or (),
                indicators=getattr(args, "indicators", None),
            ):
                count += 1
                for sink in sinks:
                    sink.write(alert)
    return count


def _spark_runner(stack: ExitStack, detection: Detection, master: str, bar):
    from vigil.engine.spark import EngineRecipe, SparkRunner, spark_context

    bar.update(description=f"starting Spark ({master})")
    sc = stack.enter_context(spark_context(master))
    bar.update(description="scanning events")
    recipe = EngineRecipe.of(
        detection.ruleset, detection.exceptions, exceptions_all=detection.engine.exceptions_all
    )

    def on_ranges(done: int, total: int) -> None:
        bar.update(description=f"scanning events on Spark: {done}/{total} tasks")

    return SparkRunner(sc, recipe, on_ranges=on_ranges)


def _report(detection: Detection, stats: ReadStats, count: int, store, fmt: str) -> None:
    """The summary on standard error: what was read, skipped, run, raised; rules over their cap."""
    sys.stdout.flush()
    err = sys.stderr
    output.report_problems(stats.problems)
    engine = detection.engine
    for rule in engine.rules:
        raised = engine.stats[rule.rule_id]["alerts"]
        if raised > rule.max_signals:
            output.say(
                f"vigil: rule {rule.name!r} raised {raised} alerts, over its max_signals of "
                f"{rule.max_signals}: run on a schedule, it would be capped at {rule.max_signals} per run"
            )
    reasons = Counter(p.message.split(":")[0] for p in stats.problems)
    skipped = f"{stats.skipped} skipped"
    if reasons:
        skipped += " (" + ", ".join(f"{n} {why}" for why, n in reasons.most_common()) + ")"
    not_runnable = detection.not_runnable()
    rules = f"{detection.runnable} rules run"
    ml = not_runnable.pop("machine_learning", 0)
    if not_runnable:
        rules += ", " + ", ".join(f"{n} {kind} not runnable yet" for kind, n in sorted(not_runnable.items()))
    if ml:
        rules += f", {ml} not runnable ({ML_REASON})"
    threat = [r for r in engine.scheduled if r.type == "threat_match"]
    if threat and not any(engine.stats[r.rule_id]["indicators"] for r in threat):
        output.say(
            f"vigil: {len(threat)} indicator match rule{'s' if len(threat) > 1 else ''} had no indicators: "
            "scan the documents of their threat_index (logs-ti_*) with the events, or give --indicators FILE"
        )
    if stats.unparsed:
        # Lines no rule's literal is in are not parsed: a malformed one among them is not seen.
        output.say(
            f"vigil: {stats.unparsed} of {stats.events} events not parsed: no rule could match them "
            "(--strict parses every line)"
        )
    line = f"{stats.events} events read, {skipped}, {rules}, {count} alerts"
    if store is not None:
        line += f" ({store.new} new in {store.store.path})"
    if fmt == "table":
        output.error_console().print(line, highlight=False)
    else:
        output.say(f"vigil: {line}", err)
