"""Prebuilt rules whose patterns a hostile value can make a backtracking engine chew on
for seconds or hours: each runs once here (the bench measures the time)."""

from __future__ import annotations

import pytest

from vigil.engine import Engine
from vigil.events.model import Event
from vigil.rules import load_rules

BUSYBOX = "rules/linux/execution_busybox_unusual_execution.toml"


@pytest.fixture(scope="module")
def busybox(shared):
    return load_rules([shared / "detection-rules" / BUSYBOX]).rules


def _exec(command_line: str) -> Event:
    doc = {
        "@timestamp": "2026-11-27T09:14:00.000Z",
        "host": {"os": {"type": "linux"}},
        "event": {"category": ["process"], "type": ["start"], "action": "exec"},
        "process": {
            "name": "busybox",
            "args": ["busybox", "sh", "-c", command_line],
            "command_line": command_line,
            "parent": {"executable": "/tmp/stage", "name": "stage"},
        },
    }
    return Event(doc, index="logs-endpoint.events.process-default")


def test_busybox_rule_on_a_long_repetitive_command_line(busybox):
    # "*import*pty*spawn*" against 30 KB of "import pty ": 36 s on backtracking re.
    engine = Engine(busybox)
    assert engine.process(_exec("import pty " * 2727)) == []
    alerts = engine.process(_exec("import pty " * 2727 + "pty.spawn('/bin/sh')"))
    assert len(alerts) == 1


def test_busybox_rule_on_a_megabyte_value(busybox):
    assert Engine(busybox).process(_exec("import " * 150_000)) == []
