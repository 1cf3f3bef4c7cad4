"""``vigil watch``: run the rules live on this host's file events (fanotify sensor)."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import IO, Any

from vigil.cli.output import add_format_option, dumps, resolve_format
from vigil.errors import VigilError
from vigil.events.model import Event


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "watch",
        help="watch this Linux host live (fanotify) and raise alerts as files are created",
        description="Watch folders live with fanotify (root, Linux >= 5.9) and run the rules on every "
        "file event as it happens. Prints 'watching ...' on standard error when ready; SIGUSR1 prints "
        "counts; SIGTERM/SIGINT stop cleanly.",
    )
    p.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="PATH",
        help="rule files or folders (default: bundled rules)",
    )
    p.add_argument("--exceptions", metavar="FILE", help="exception lists to apply")
    p.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="DIR",
        help="folder to watch (repeatable; default: the Dracut module folders)",
    )
    p.add_argument("--events-out", metavar="FILE", help="also record every event as NDJSON")
    p.add_argument("--output", metavar="FILE", help="write alerts here instead of standard output")
    p.add_argument("--store", metavar="PATH", help="also keep alerts in this SQLite alert store")
    add_format_option(p)
    p.set_defaults(func=run)


def _engine(args: argparse.Namespace):
    """The rule engine, or None (events only) when it is not part of this build."""
    try:
        from vigil.engine import Engine
        from vigil.rules import bundled_rules, load_rules
    except ImportError:
        print("vigil watch: rule engine not available; recording events only", file=sys.stderr)
        return None
    ruleset = load_rules(args.rules) if args.rules else bundled_rules()
    for problem in getattr(ruleset, "problems", []):
        print(f"vigil: {problem.render() if hasattr(problem, 'render') else problem}", file=sys.stderr)
    exceptions = None
    if args.exceptions:
        from vigil.rules.exceptions import load_exceptions

        exceptions = load_exceptions(args.exceptions)
    return Engine(ruleset.rules, exceptions=exceptions)


def _table_line(alert: dict) -> str:
    def get(path: str) -> Any:
        if path in alert:
            return alert[path]
        node: Any = alert
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    return "  ".join(
        str(v if v is not None else "-")
        for v in (
            get("@timestamp"),
            get("kibana.alert.severity"),
            get("kibana.alert.rule.name"),
            get("host.name"),
            get("process.executable"),
            get("file.path"),
        )
    )


def _open_outputs(args: argparse.Namespace) -> tuple[Any, IO, IO | None]:
    store = None
    if args.store:
        from vigil.store.alerts import AlertStore

        store = AlertStore(args.store)
    out: IO = open(args.output, "a", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    events_out: IO | None = open(args.events_out, "ab") if args.events_out else None  # noqa: SIM115
    return store, out, events_out


def run(args: argparse.Namespace) -> int:
    from vigil.sensor.fanotify import SensorUnavailable
    from vigil.sensor.watcher import DEFAULT_PATHS, Sensor

    paths = args.path or list(DEFAULT_PATHS)
    ignore = [p for p in (args.output, args.events_out, args.store) if p]
    try:
        sensor = Sensor(paths, ignore_paths=ignore)
    except SensorUnavailable as exc:
        print(f"vigil watch: {exc}", file=sys.stderr)
        return 1
    try:
        engine = _engine(args)
    except BaseException:
        sensor.close()
        raise
    try:
        store, out, events_out = _open_outputs(args)
    except OSError as exc:
        sensor.close()
        print(f"vigil watch: cannot open {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    fmt = resolve_format(args)
    counts = {"alerts": 0}
    stopping = []

    def report(*_: Any) -> None:
        st = sensor.stats
        print(
            f"vigil watch: events={st.events} alerts={counts['alerts']} lost={st.lost} "
            f"unattributed={st.unattributed} proc-fallback={st.fallback}",
            file=sys.stderr,
            flush=True,
        )

    def stop(*_: Any) -> None:
        stopping.append(True)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    old[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, report)

    def emit(alerts: list[dict]) -> None:
        if not alerts:
            return
        counts["alerts"] += len(alerts)
        for alert in alerts:
            if fmt == "ndjson":
                out.write(dumps(alert).decode() + "\n")
            else:
                out.write(_table_line(alert) + "\n")
        out.flush()
        if store is not None:
            store.add(alerts)

    try:
        print(
            f"vigil watch: watching {', '.join(sensor.prefixes)} (mounts: {', '.join(sensor.mounts)})",
            file=sys.stderr,
            flush=True,
        )
        while not stopping:
            try:
                docs = sensor.poll(0.5)
            except InterruptedError:
                continue
            for doc in docs:
                if events_out is not None:
                    events_out.write(dumps(doc) + b"\n")
                if engine is not None and doc["event"]["kind"] == "event":
                    emit(engine.process(Event(doc, index=f"logs-{doc['data_stream']['dataset']}-default")))
            if events_out is not None and docs:
                events_out.flush()
        if engine is not None:
            emit(engine.finish())
    except VigilError:
        raise
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        sensor.close()
        if events_out is not None:
            events_out.close()
        if args.output:
            out.close()
        else:
            out.flush()
        report()
    return 0
