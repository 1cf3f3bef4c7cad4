"""``vigil watch``: run the rules live on this host's file, process and network events.

File events come from fanotify; process and network events from eBPF programs on kernel
tracepoints (:mod:`vigil.sensor.ebpf`), or, where eBPF cannot load, process attribution from
the process connector and /proc (lossy, and said so). Each event goes through
:meth:`vigil.engine.Engine.process` as soon as it is read, so an alert is written a few
milliseconds after the activity. Vigil's own writes and processes never come back as events.
"""

from __future__ import annotations

import argparse
import fnmatch
import signal
import sys
import time
from typing import IO, Any

import orjson

from vigil.cli.common import add_rule_options, load_detection
from vigil.cli.output import add_format_option, console, dumps, resolve_format
from vigil.eql.fields import lookup
from vigil.events.model import Event
from vigil.scheduler.live import LiveRules
from vigil.sinks.terminal import json_line

# A queue overflow is repeated on standard error at most this often (seconds).
_LOSS_NOTICE_EVERY = 5.0
# At a stop, events already in the kernel queue are still read for at most this long (seconds).
_DRAIN_AT_STOP = 3.0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "watch",
        help="watch this Linux host live (files, processes, network) and raise alerts as it happens",
        description="Watch folders live with fanotify, and processes and TCP connections with eBPF "
        "(root, Linux >= 5.9), and run the rules on every event as it happens. With --rules, only "
        "the rules that read Linux endpoint events run (--all-rules: all). "
        "Prints 'watching ...' on standard error when ready; "
        "SIGUSR1 prints counts; SIGTERM/SIGINT stop cleanly and print the final counts.",
    )
    add_rule_options(p)
    p.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="DIR",
        help="folder to watch (repeatable; default: the Dracut module folders)",
    )
    p.add_argument(
        "--files-only",
        action="store_true",
        help="file events only: no eBPF process and network events",
    )
    p.add_argument(
        "--all-rules",
        action="store_true",
        help="run every loaded rule, not only those that read Linux endpoint events",
    )
    p.add_argument("--events-out", metavar="FILE", help="also record every event as NDJSON")
    p.add_argument("--output", metavar="FILE", help="append alerts here instead of standard output")
    p.add_argument("--store", metavar="PATH", help="also keep alerts in this SQLite alert store")
    add_format_option(p)
    p.set_defaults(func=run)


def _preflight() -> str | None:
    """What stops fanotify here, in one line, before anything else is done (or None)."""
    from vigil.sensor.fanotify import SensorUnavailable, check_available

    try:
        check_available()
    except SensorUnavailable as exc:
        return str(exc)
    return None


# The indices the sensor writes (Defend's data streams on Linux).
SENSOR_INDICES = (
    "logs-endpoint.events.process-default",
    "logs-endpoint.events.network-default",
    "logs-endpoint.events.file-default",
)
_OTHER_OS = ("OS: Windows", "OS: macOS")


def for_this_host(rule) -> bool:
    """A rule that can match what the sensor writes: it reads an endpoint event index (or
    names none) and is not written for another operating system only."""
    tags = set(rule.tags)
    if tags & set(_OTHER_OS) and "OS: Linux" not in tags:
        return False
    patterns = [p.strip() for p in rule.index]
    if rule.type == "esql" and rule.query:
        head = rule.query.lstrip()
        if head[:4].lower() == "from":
            patterns = [p.strip() for p in head[4:].split("|", 1)[0].split(" metadata", 1)[0].split(",")]
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(index, pattern) for pattern in patterns for index in SENSOR_INDICES)


class ByCategory:
    """The engine's rules split by the event categories their queries can match
    (:func:`vigil.engine.routing.query_categories`), one engine each: an event is offered
    only to the rules that can match its category, so the file and network rules never
    test a process event. Each rule is in one engine, which sees every event it could
    match, in order: the alerts are the same as one engine's."""

    def __init__(self, engine) -> None:
        from vigil.engine import Engine
        from vigil.engine.routing import query_categories

        groups: dict[frozenset[str] | None, list] = {}
        for rule in engine.rules:
            try:
                cats = query_categories(rule.compiled().statement)
            except Exception:  # noqa: BLE001 - a shape routing does not know reaches every event
                cats = None
            groups.setdefault(cats, []).append(rule)
        self.rules = engine.rules
        # Threshold and new terms rules run beside, on their intervals (vigil.scheduler.live).
        self.scheduled = engine.scheduled
        self._suppressed = engine._suppressed
        self.parts = [
            (cats, Engine(rules, exceptions=engine.exceptions, exceptions_all=engine.exceptions_all))
            for cats, rules in groups.items()
        ]
        self._by_category: dict[tuple, list] = {}

    @property
    def stats(self) -> dict:
        out: dict = {}
        for _cats, part in self.parts:
            out.update(part.stats)
        return out

    def process(self, event: Event) -> list[dict]:
        key = tuple(event.doc.get("event", {}).get("category") or ())
        engines = self._by_category.get(key)
        if engines is None:
            engines = self._by_category[key] = [
                part for cats, part in self.parts if cats is None or not key or cats & set(key)
            ]
        out: list[dict] = []
        for part in engines:
            out += part.process(event)
        return out

    def process_batch(self, events: list[Event]) -> list[dict]:
        out: list[dict] = []
        for event in events:
            out += self.process(event)
        return out

    def finish(self) -> list[dict]:
        out: list[dict] = []
        for _cats, part in self.parts:
            out += part.finish()
        return out


def _engine(args: argparse.Namespace):
    """The engine, and how many rules or exception items were skipped (for the ready line).

    Many rules run in the engine core (vigil.engine.core.LiveCore): the event rules and
    the stages of sequences and samples as masks over each batch the sensor reads; few
    rules run event by event, by category (ByCategory)."""
    from vigil.engine.batch import CORE_MIN
    from vigil.engine.core import LiveCore

    detection = load_detection(args, keep=None if args.all_rules else for_this_host)
    skipped = len(detection.ruleset.problems) + sum(detection.not_runnable().values())
    if detection.exceptions is not None:
        skipped += len(detection.exceptions.problems)
    if len(detection.engine.rules) >= CORE_MIN:
        return LiveCore(detection.engine), skipped
    return ByCategory(detection.engine), skipped


_TABLE_FIELDS = (
    "kibana.alert.original_time",
    "kibana.alert.severity",
    "kibana.alert.rule.name",
    "host.name",
    "process.executable",
    "file.path",
)


# The first bytes of what vigil.sinks.terminal.json_line escapes: DEL and the UTF-8 of C1
# controls (0xC2), of U+061C (0xD8) and of the separators and bidirectional controls (0xE2).
_CONTROL_LEADS = (b"\x7f", b"\xc2", b"\xd8", b"\xe2")


def ndjson_lines(docs: list[dict]) -> bytes:
    """``docs`` (events or alerts) as NDJSON, byte for byte what
    :func:`vigil.cli.output.dumps` writes for each.

    The sensor's documents and their alerts have string keys and JSON's own types, so orjson
    writes them without the options for other keys and types (a batch that has others is
    written by ``dumps``); the scan for C1 and bidirectional controls (:func:`json_line`) runs only on
    a batch that holds a byte one of them starts with: it cost as much as orjson itself."""
    try:
        data = b"".join([orjson.dumps(d, option=orjson.OPT_APPEND_NEWLINE) for d in docs])
    except TypeError:
        return b"".join(dumps(d) + b"\n" for d in docs)
    # Each sequence json_line escapes starts with one of these bytes (a byte search each is
    # far cheaper than the pattern); none holds a newline, so the whole batch at once is
    # each line alone.
    if any(lead in data for lead in _CONTROL_LEADS):
        return json_line(data)
    return data


def table_line(alert: dict) -> str:
    """One alert as one line: a live stream cannot wait to lay out a table."""
    return "  ".join(", ".join(map(str, lookup(alert, f))) or "-" for f in _TABLE_FIELDS)


class _Outputs:
    """Where alerts and events go; opened before the sensor starts so a bad path is one line."""

    def __init__(self, args: argparse.Namespace, fmt: str) -> None:
        self.fmt = fmt
        self.store = None
        self.out: IO | None = None
        self.events: IO | None = None
        self._console = None
        try:
            if args.store:
                from vigil.store.alerts import AlertStore

                self.store = AlertStore(args.store)
            if fmt == "table":
                text = open(args.output, "a", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
                self._console = console(text)
            else:
                self.out = open(args.output, "ab") if args.output else sys.stdout.buffer  # noqa: SIM115
            self.events = open(args.events_out, "ab") if args.events_out else None  # noqa: SIM115
        except BaseException:
            self.close()
            raise

    def alerts(self, alerts: list[dict]) -> None:
        # Stored first: an alert a reader of the output sees is already in the store.
        if self.store is not None:
            self.store.add(alerts)
        if self._console is not None:
            for alert in alerts:
                style = "bold red" if alert.get("kibana.alert.severity") in ("high", "critical") else None
                self._console.print(table_line(alert), style=style, markup=False, soft_wrap=True)
            self._console.file.flush()
        else:
            assert self.out is not None
            self.out.write(ndjson_lines(alerts))
            self.out.flush()

    def record(self, docs: list[dict]) -> None:
        if self.events is not None and docs:
            self.events.write(ndjson_lines(docs))
            self.events.flush()

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
        stream = self._console.file if self._console is not None else self.out
        if stream is not None:
            if stream in (sys.stdout, sys.stdout.buffer):
                stream.flush()
            else:
                stream.close()
        if self.store is not None:
            self.store.close()


def run(args: argparse.Namespace) -> int:
    from vigil.engine.core import few_collections
    from vigil.sensor.fanotify import SensorUnavailable
    from vigil.sensor.watcher import DEFAULT_PATHS, Sensor

    # Without eBPF, the process-connector thread reads /proc at each exec; a short switch
    # interval lets it run before a short-lived program (cp, touch) exits.
    sys.setswitchinterval(0.001)
    missing = _preflight()
    if missing:
        print(f"vigil watch: {missing}", file=sys.stderr)
        return 1
    engine, skipped = _engine(args)
    live = LiveRules(engine)  # threshold and new terms rules, on their intervals
    fmt = resolve_format(args)
    try:
        outputs = _Outputs(args, fmt)
    except OSError as exc:
        print(f"vigil watch: cannot open {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    paths = args.path or list(DEFAULT_PATHS)
    ignore = [p for p in (args.output, args.events_out, args.store) if p]
    try:
        sensor = Sensor(paths, ignore_paths=ignore, processes=not args.files_only)
    except SensorUnavailable as exc:
        outputs.close()
        print(f"vigil watch: {exc}", file=sys.stderr)
        return 1
    counts = {"alerts": 0}
    stopping: list[bool] = []

    def report(*_: Any) -> None:
        st = sensor.stats
        suppressed = sum(c["suppressed"] for c in engine.stats.values())
        print(
            f"vigil watch: events={st.events} alerts={counts['alerts']} suppressed={suppressed} "
            f"lost={st.lost} unattributed={st.unattributed} proc-fallback={st.fallback} "
            f"process={st.process} network={st.network} kernel-lost={st.kernel_lost}"
            + (
                f" process-missed={st.process_missed}"
                if sensor.kernel is None and not args.files_only
                else ""
            ),
            file=sys.stderr,
            flush=True,
        )

    def stop(*_: Any) -> None:
        stopping.append(True)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    old[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, report)
    status = 0
    try:
        rules = f"{len(engine.rules) + len(live.rules) + len(live.esql_rules)} rules" + (
            f" ({skipped} skipped)" if skipped else ""
        )
        if not args.files_only:
            print(f"vigil watch: process events: {sensor.collection}", file=sys.stderr, flush=True)
        if sensor.connector is None and sensor.kernel is None:
            print(
                "vigil watch: process connector unavailable (needs CAP_NET_ADMIN): "
                "forked processes are attributed from /proc, which is less reliable",
                file=sys.stderr,
                flush=True,
            )
        print(
            f"vigil watch: watching {', '.join(sensor.prefixes)} with {rules} "
            f"(mounts: {', '.join(sensor.mounts)})",
            file=sys.stderr,
            flush=True,
        )
        lost_seen, lost_told = 0, 0.0
        kernel_seen = 0
        drain_until = None
        first: list[dict] | None = sensor.already_running()
        # The loaded rules are left out of Python's cyclic collections for the whole loop, and
        # young collections come less often (the engine core's setting, held from batch to
        # batch instead of set and undone around each): the sensor's documents of a batch are
        # many young objects, and each older collection walked them again.
        with few_collections():
            while True:
                if stopping and drain_until is None:
                    # Stop cleanly: what the kernel already queued is still read (bounded in time).
                    drain_until = time.monotonic() + _DRAIN_AT_STOP
                if first is not None:
                    docs, first = first, None
                else:
                    try:
                        docs = sensor.poll(0 if drain_until else 0.5)
                    except InterruptedError:
                        continue
                    if drain_until is not None and not docs:
                        break
                events: list[Event] = []
                for doc in docs:
                    if doc["event"]["kind"] != "event":
                        continue
                    ds = doc["data_stream"]
                    index = f"{ds['type']}-{ds['dataset']}-{ds['namespace']}"
                    events.append(Event(doc, index=index, id=doc["event"]["id"]))
                # What the sensor read since the last poll is one batch: a busy host gives larger
                # batches, which the engine core runs for less per event.
                alerts = engine.process_batch(events)
                # The events, then the engine's alerts, go out before the scheduled rules keep the
                # events (their feed adds nothing to this batch's alerts): the same order as
                # before, without the feed's latency.
                outputs.record(docs)
                if alerts:
                    counts["alerts"] += len(alerts)
                    outputs.alerts(alerts)
                live.feed_batch(events)
                alerts = live.tick(int(time.time() * 1000))
                if alerts:
                    counts["alerts"] += len(alerts)
                    outputs.alerts(alerts)
                if sensor.stats.lost != lost_seen and time.monotonic() - lost_told > _LOSS_NOTICE_EVERY:
                    lost_seen, lost_told = sensor.stats.lost, time.monotonic()
                    print(
                        f"vigil watch: kernel queue overflowed {lost_seen} times: file events were lost",
                        file=sys.stderr,
                        flush=True,
                    )
                if sensor.stats.kernel_lost != kernel_seen:
                    kernel_seen = sensor.stats.kernel_lost
                    print(
                        f"vigil watch: eBPF ring buffer full: {kernel_seen} process/network records lost",
                        file=sys.stderr,
                        flush=True,
                    )
                if drain_until is not None and time.monotonic() > drain_until:
                    break
        last = engine.finish()
        if last:
            counts["alerts"] += len(last)
            outputs.alerts(last)
    except BrokenPipeError:
        pass  # the reader went away (``vigil watch | head``): stop as asked
    except OSError as exc:
        # A full disk or a closed output: say so once, keep nothing half-written silent.
        where = exc.filename or "output"
        print(f"vigil watch: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
        status = 2
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        sensor.close()
        try:
            outputs.close()
        except BrokenPipeError:
            pass
        except OSError:
            status = 2
        report()
    return status
