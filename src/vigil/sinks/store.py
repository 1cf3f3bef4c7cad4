"""Alerts into the embedded store, in batches; each alert is kept once by its uuid."""

from __future__ import annotations

from vigil.store.alerts import AlertStore

BATCH = 500


class StoreSink:
    def __init__(self, store: AlertStore, *, batch: int = BATCH) -> None:
        self.store = store
        self.batch = batch
        self.pending: list[dict] = []
        self.new = 0

    def write(self, alert: dict) -> None:
        self.pending.append(alert)
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.new += self.store.add(self.pending)
            self.pending = []

    def close(self) -> None:
        self.flush()
