"""Elastic's prebuilt threshold and new terms rules run by ``vigil serve``'s scheduler over
the store, several runs and a restart, against the scan's replay of the same events.

The scheduler runs these rules with the replay's code (vigil.engine.threshold,
vigil.engine.new_terms) and keeps their state in the store (vigil.scheduler.stateful):
a threshold rule's signal history (Kibana's ``threshold/build_signal_history.ts``,
kept in the rule's task state) and a new terms rule's history window, read from the
events (``new_terms/create_new_terms_alert_type.ts``). Each test ticks the schedule,
builds a fresh scheduler on the same store file half-way (a restart), and expects the
alerts the replay gives when started at the first tick.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vigil.engine.replay import replay
from vigil.eql.fields import lookup
from vigil.scheduler.windows import duration_ms
from vigil.store.alert_index import reads_alerts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scheduled import SECOND, Serve, T, _base, _doc, _of_type  # noqa: E402


def _replayed(rule, serve: Serve, start: int) -> list[dict]:
    return list(replay([rule], serve.stored_events(), start_ms=start))


def _threshold_needs(rule) -> tuple[int, int]:
    spec = rule.kibana_parameters()["threshold"]
    card = spec["cardinality"][0]["value"] if spec.get("cardinality") else 1
    return spec["value"], max(card, 1)


def _threshold_docs(rule, first_ms: int, n: int, card: int, step: int, group: str) -> list[tuple[dict, int]]:
    spec = rule.kibana_parameters()["threshold"]
    base = _doc(rule, _base(rule), first_ms, **{f: group for f in spec["field"]})
    cfield = spec["cardinality"][0]["field"] if spec.get("cardinality") else None
    out = []
    for i in range(n):
        ms = first_ms + i * step
        extra = {cfield: f"card-{i % card}"} if cfield else {}
        out.append((_doc(rule, base, ms, **extra), ms))
    return out


def _reaches(rule, docs: list[tuple[dict, int]], card: int) -> bool:
    """Whether the built events all match and hold the distinct values the cardinality needs."""
    spec = rule.kibana_parameters()["threshold"]
    if not all(rule.compiled().matches(d) for d, _ in docs):
        return False
    if not spec.get("cardinality"):
        return True
    cfield = spec["cardinality"][0]["field"]
    return len({str(lookup(d, cfield)) for d, _ in docs}) >= card


def test_prebuilt_threshold_rules_in_serve_alert_once_per_group_across_runs_and_a_restart(
    tmp_path, prebuilt_rules
):
    rules = [r for r in _of_type(prebuilt_rules, "threshold") if _base(r) is not None]
    assert len(rules) >= 26
    checked = 0
    for k, rule in enumerate(rules):
        interval = duration_ms(rule.interval, what="interval")
        span = duration_ms(rule.from_, what="from")
        value, card = _threshold_needs(rule)
        n = max(value, card)
        # The burst ends just before the third run, inside the look-back the fourth run
        # shares with it (when from is longer than the interval).
        step = max(1, min(SECOND, (span - interval) // (n + 1))) if span > interval else SECOND
        ticks = [T + i * interval for i in range(6)]
        burst = _threshold_docs(rule, ticks[2] - n * step, n, card, step, "group-a")
        again = _threshold_docs(rule, ticks[4] - n * step, n, card, step, "group-a")
        serve = Serve(tmp_path / str(k), rule, ticks[0])
        serve.write(burst + again)
        for i, t in enumerate(ticks):
            if i == 3:
                serve.restart()  # the signal history comes back from the store
            serve.tick_at(t)
        got = serve.alerts()
        want = _replayed(rule, serve, ticks[0])
        assert sorted(a["kibana.alert.uuid"] for a in got) == sorted(a["kibana.alert.uuid"] for a in want), (
            rule.name
        )
        assert [r.error for r in serve.runs] == [None] * len(ticks), rule.name
        # (A rule over alerts also counts its own earlier alert, as in Kibana: left out here.)
        if _reaches(rule, burst, card) and not reads_alerts(rule):
            # One alert per burst, though runs overlap and the scheduler restarted between them.
            assert len(got) == 2, rule.name
            assert sorted(a["kibana.alert.threshold_result"]["count"] for a in got) == [n, n], rule.name
            checked += 1
    assert checked >= 20


def _terms_doc(rule, base: dict, ms: int, tag: str) -> dict:
    return _doc(rule, base, ms, **{f: f"{tag}-{f}" for f in rule.kibana_parameters()["new_terms_fields"]})


def test_prebuilt_new_terms_rules_in_serve_read_their_history_from_the_store(tmp_path, prebuilt_rules):
    # Every 10th new terms rule: the same code runs them all (kept fast).
    rules = [r for r in _of_type(prebuilt_rules, "new_terms", 10) if _base(r) is not None]
    assert len(rules) >= 20
    checked = 0
    for k, rule in enumerate(rules):
        base = _base(rule)
        interval = duration_ms(rule.interval, what="interval")
        history = rule.kibana_parameters()["history_window_start"]
        h = duration_ms(history, what="history_window_start")
        mid = T + (h // 2 // interval) * interval
        late = T + (3 * h // interval) * interval
        a0, a1 = _terms_doc(rule, base, T, "a"), _terms_doc(rule, base, mid, "a")
        b1, a2 = _terms_doc(rule, base, mid, "b"), _terms_doc(rule, base, late, "a")
        serve = Serve(tmp_path / str(k), rule, T)
        serve.write([(a0, T), (a1, mid), (b1, mid + 1), (a2, late)])
        serve.tick_at(T)
        serve.tick_at(mid + interval)
        serve.restart()  # the history is the store's events, not the process's memory
        serve.tick_at(late)
        serve.tick_at(late + interval)
        got = serve.alerts()
        want = _replayed(rule, serve, T)
        assert sorted(a["kibana.alert.uuid"] for a in got) == sorted(a["kibana.alert.uuid"] for a in want), (
            rule.name
        )
        assert all(r.error is None for r in serve.runs), rule.name
        fields = rule.kibana_parameters()["new_terms_fields"]
        tagged = all(lookup(d, f) == [f"{t}-{f}"] for d, t in ((a0, "a"), (b1, "b")) for f in fields)
        if tagged and all(rule.compiled().matches(d) for d in (a0, a1, b1, a2)):
            # a is new, then seen in the history, b is new, a is new again once its last
            # sighting has left the history window.
            terms = sorted(a["kibana.alert.new_terms"][0] for a in got)
            assert len(got) == 3, rule.name
            assert terms[0].startswith("a-") and terms[1].startswith("a-") and terms[2].startswith("b-"), (
                rule.name
            )
            checked += 1
    assert checked >= 15
