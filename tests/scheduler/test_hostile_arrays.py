"""An event from a hostile host holding thousands of values in each grouping field would give
billions of combinations (threshold buckets, new terms, suppression groups); Vigil takes the
first MAX_COMBINATIONS of them, so such an event costs seconds at most, never a stall."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from vigil.engine.replay import replay
from vigil.engine.threshold import MAX_COMBINATIONS
from vigil.events.model import Event

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scheduled import Serve, T, _base, _doc  # noqa: E402

MANY = [f"v{i}" for i in range(1000)]


def test_many_values_in_every_field_stay_bounded(tmp_path, prebuilt_rules):
    by_id = {r.rule_id: r for r in prebuilt_rules}
    new_terms = by_id["29ef5686-9b93-433e-91b5-683911094698"]  # host.id, user.id, command line
    overflow = by_id["b7c05aaf-78c2-4558-b069-87fa25973489"]  # event.kind, host.id >= 100
    s3 = next(r for r in prebuilt_rules if r.name == "AWS S3 Credential File Retrieved from Bucket")
    t0 = time.monotonic()

    doc = _doc(
        new_terms, _base(new_terms), T, **{"host.id": MANY, "user.id": MANY, "process.command_line": MANY}
    )
    alerts = list(replay([new_terms], [Event(doc, ".alerts-security.alerts-default", "e1")]))
    assert 0 < len(alerts) <= new_terms.max_signals

    doc = _doc(overflow, _base(overflow), T, **{"host.id": MANY, "event.kind": ["signal", *MANY]})
    events = [Event(dict(doc), ".alerts-security.alerts-default", f"e{i}") for i in range(100)]
    alerts = list(replay([overflow], events))
    assert 0 < len(alerts) <= overflow.max_signals
    assert all(a["kibana.alert.threshold_result"]["count"] == 100 for a in alerts)

    serve = Serve(tmp_path, s3, T)
    serve.write(
        [(_doc(s3, _base(s3), T + 60_000, **{"source.ip": MANY, "cloud.account.id": MANY}), T + 60_000)]
    )
    serve.tick_at(T + 300_000)
    assert [r.error for r in serve.runs] == [None]
    assert 0 < len(serve.alerts()) <= s3.max_signals <= MAX_COMBINATIONS
    assert time.monotonic() - t0 < 60
