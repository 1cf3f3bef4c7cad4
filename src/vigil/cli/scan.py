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
from vigil.errors import VigilError
from vigil.events.readers import ReadStats
from vigil.sinks import AlertTable, NdjsonSink, StoreSink

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
    output.add_format_option(p)
    p.set_defaults(func=run)


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

        for alert in scan_paths(detection.engine, inputs, on_progress=advance, **kwargs):
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
    if not_runnable:
        rules += ", " + ", ".join(f"{n} {kind} not runnable yet" for kind, n in sorted(not_runnable.items()))
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
