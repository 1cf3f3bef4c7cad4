"""Putting ``vigil serve`` together: stores, scheduler thread, retention, HTTP server."""

from __future__ import annotations

import logging
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vigil.errors import VigilError
from vigil.scheduler.clock import Clock, default_clock
from vigil.scheduler.runner import Scheduler, eql_timestamp_field
from vigil.server.app import Service, make_server
from vigil.server.guard import allowed_hosts, check_token
from vigil.server.transport import Limits
from vigil.server.ui import UiState
from vigil.store.alerts import AlertStore
from vigil.store.events import INGESTED, EventStore
from vigil.store.runs import RunStore

log = logging.getLogger("vigil.serve")


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise VigilError(f"bad --listen {text!r}: use HOST:PORT, e.g. 127.0.0.1:9200")
    return host, int(port)


def check_exposure(host: str, token: str | None) -> None:
    """Off the loopback interface, events and alerts are only served with a strong token."""
    check_token(token, host)


def time_fields(rules: list[Any]) -> tuple[str, ...]:
    """The fields read as time: ``@timestamp`` and each rule's ``timestamp_override`` and
    EQL ``timestamp_field`` (``event.ingested`` is Vigil's own, stamped on arrival)."""
    fields = {"@timestamp"}
    for rule in rules:
        fields.add(getattr(rule, "timestamp_override", None) or "@timestamp")
        fields.add(eql_timestamp_field(rule))
    fields.discard(INGESTED)
    return tuple(sorted(fields))


def serve(
    *,
    rule_paths: list[str],
    exceptions_path: str | None,
    data_dir: Path,
    store: str | None = None,
    listen: str,
    token: str | None,
    retention_ms: int | None,
    exceptions_all: bool = False,
    match_long_values: bool = False,
    allow_hosts: list[str] | None = None,
    limits: Limits | None = None,
    run_timeout_s: float | None = None,
    clock: Clock | None = None,
    tick_seconds: float = 0.2,
    announce: Callable[[str, dict], None] | None = None,
) -> int:
    host, port = parse_listen(listen)
    check_exposure(host, token)
    from vigil.rules import bundled_rules, load_rules
    from vigil.rules.model import SCHEDULED_TYPES

    ruleset = load_rules(rule_paths) if rule_paths else bundled_rules()
    for rule in ruleset.rules:
        rule.match_long_values = match_long_values
    for problem in ruleset.problems:
        print(f"vigil: {problem.render()}", file=sys.stderr)
    from vigil.scheduler.stateful import SERVED

    runnable = sum(
        1 for r in ruleset.rules if r.runnable and (r.type not in SCHEDULED_TYPES or r.type in SERVED)
    )
    skipped = len(ruleset.rules) - runnable
    if ruleset.problems or skipped:
        print(
            f"vigil: {len(ruleset.rules)} rules loaded, {runnable} runnable, {skipped} not runnable "
            f"(EQL and KQL custom query, threshold and new terms rules run; other scheduled types in vigil scan only), "
            f"{len(ruleset.problems)} files or rules skipped",
            file=sys.stderr,
        )
    exceptions = None
    if exceptions_path:
        from vigil.rules.exceptions import load_exceptions

        exceptions = load_exceptions(exceptions_path)
        for problem in exceptions.problems:
            print(f"vigil: skipped exception: {problem.render()}", file=sys.stderr)
    elif exceptions_all:
        raise VigilError("--exceptions-all needs --exceptions FILE")

    db = Path(store) if store else data_dir / "vigil.db"
    try:
        events, alerts, runs = EventStore(db), AlertStore(db), RunStore(db)
        pages = UiState(db, retention_ms)  # the triage pages' exceptions, sessions and reads
    except (OSError, sqlite3.Error) as exc:
        raise VigilError(f"cannot open the store: {exc}", file=str(db)) from None
    clock = clock or default_clock()

    scheduler = Scheduler(
        ruleset.rules,
        events,
        alerts,
        runs,
        engine_factory=pages.engine_factory(exceptions, exceptions_all),
        clock=clock,
        **({"run_timeout_s": run_timeout_s} if run_timeout_s else {}),
    )
    svc = Service(
        events,
        alerts,
        scheduler,
        token=token,
        started_ms=clock.now_ms(),
        hosts=allowed_hosts(host, allow_hosts or ()),
        limits=limits or Limits(),
        time_fields=time_fields(ruleset.rules),
        ui=pages,
    )
    try:
        server = make_server(svc, host, port)
    except OSError as exc:
        raise VigilError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    stop = threading.Event()

    def loop() -> None:
        last_purge = 0
        while not stop.is_set():
            try:
                scheduler.tick(wait_s=tick_seconds)
                now = clock.now_ms()
                if retention_ms and now - last_purge >= 60_000:
                    dropped = events.purge(now - retention_ms)
                    last_purge = now
                    if dropped:
                        log.info("retention: dropped %d events", dropped)
            except Exception:
                log.exception("scheduler tick failed")
            stop.wait(tick_seconds)

    worker = threading.Thread(target=loop, name="vigil-scheduler", daemon=True)

    def shutdown(*_: Any) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    worker.start()
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}"
    facts = {
        "listening": url,
        "rules": len(scheduler.rules),
        "runnable": sum(1 for r in scheduler.rules.values() if scheduler.runnable(r)),
        "data": str(db),
    }
    line = (
        f"vigil serve: listening on {url} ({facts['rules']} rules, {facts['runnable']} runnable, data {db})"
    )
    (announce or (lambda text, _facts: print(text, flush=True)))(line, facts)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        worker.join(timeout=5)
        scheduler.close()
        server.server_close()
    return 0
