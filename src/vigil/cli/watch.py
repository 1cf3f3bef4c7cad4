"""``vigil watch``: run the rules live on this host's file events (fanotify sensor).

Each event goes through :meth:`vigil.engine.Engine.process` as soon as it is read, so an
alert is written a few milliseconds after the file was created. Vigil's own writes (its
pid, and the files it writes) never come back as events.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import IO, Any

from vigil.cli.common import add_rule_options, load_detection
from vigil.cli.output import add_format_option, console, dumps, resolve_format
from vigil.eql.fields import lookup
from vigil.events.model import Event

# A queue overflow is repeated on standard error at most this often (seconds).
_LOSS_NOTICE_EVERY = 5.0
# At a stop, events already in the kernel queue are still read for at most this long (seconds).
_DRAIN_AT_STOP = 3.0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "watch",
        help="watch this Linux host live (fanotify) and raise alerts as files are created",
        description="Watch folders live with fanotify (root or CAP_SYS_ADMIN, Linux >= 5.9) and run the "
        "rules on every file event as it happens. Prints 'watching ...' on standard error when ready; "
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


def _engine(args: argparse.Namespace):
    """The engine, and how many rules or exception items were skipped (for the ready line)."""
    detection = load_detection(args)
    skipped = len(detection.ruleset.problems) + sum(detection.not_runnable().values())
    if detection.exceptions is not None:
        skipped += len(detection.exceptions.problems)
    return detection.engine, skipped


_TABLE_FIELDS = (
    "kibana.alert.original_time",
    "kibana.alert.severity",
    "kibana.alert.rule.name",
    "host.name",
    "process.executable",
    "file.path",
)


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
        if self._console is not None:
            for alert in alerts:
                style = "bold red" if alert.get("kibana.alert.severity") in ("high", "critical") else None
                self._console.print(table_line(alert), style=style, markup=False, soft_wrap=True)
            self._console.file.flush()
        else:
            assert self.out is not None
            self.out.write(b"".join(dumps(a) + b"\n" for a in alerts))
            self.out.flush()
        if self.store is not None:
            self.store.add(alerts)

    def record(self, docs: list[dict]) -> None:
        if self.events is not None and docs:
            self.events.write(b"".join(dumps(d) + b"\n" for d in docs))
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
    from vigil.sensor.fanotify import SensorUnavailable
    from vigil.sensor.watcher import DEFAULT_PATHS, Sensor

    # The process-connector thread reads /proc at each exec; a short switch interval lets it
    # run before a short-lived program (cp, touch) exits, so its arguments are caught.
    sys.setswitchinterval(0.001)
    missing = _preflight()
    if missing:
        print(f"vigil watch: {missing}", file=sys.stderr)
        return 1
    engine, skipped = _engine(args)
    fmt = resolve_format(args)
    try:
        outputs = _Outputs(args, fmt)
    except OSError as exc:
        print(f"vigil watch: cannot open {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    paths = args.path or list(DEFAULT_PATHS)
    ignore = [p for p in (args.output, args.events_out, args.store) if p]
    try:
        sensor = Sensor(paths, ignore_paths=ignore)
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
            f"lost={st.lost} unattributed={st.unattributed} proc-fallback={st.fallback}",
            file=sys.stderr,
            flush=True,
        )

    def stop(*_: Any) -> None:
        stopping.append(True)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    old[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, report)
    status = 0
    try:
        rules = f"{len(engine.rules)} rules" + (f" ({skipped} skipped)" if skipped else "")
        if sensor.connector is None:
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
        drain_until = None
        while True:
            if stopping and drain_until is None:
                # Stop cleanly: what the kernel already queued is still read (bounded in time).
                drain_until = time.monotonic() + _DRAIN_AT_STOP
            try:
                docs = sensor.poll(0 if drain_until else 0.5)
            except InterruptedError:
                continue
            if drain_until is not None and not docs:
                break
            alerts: list[dict] = []
            for doc in docs:
                if doc["event"]["kind"] != "event":
                    continue
                ds = doc["data_stream"]
                index = f"{ds['type']}-{ds['dataset']}-{ds['namespace']}"
                alerts += engine.process(Event(doc, index=index, id=doc["event"]["id"]))
            outputs.record(docs)
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
