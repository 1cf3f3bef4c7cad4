"""Batch scans on a real Apache Spark in local mode give the alerts of one process.

Spark's executors rebuild the engine from the rule files' texts and read byte
ranges of the inputs; the driver merges their results in input order, so the
alert ids, their order, the events counted and the problems (file, line, column)
must all be those of the single-process scan.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from split_values import split_lines

from vigil.engine import Engine
from vigil.engine.batch import scan_paths
from vigil.events.readers import ReadStats
from vigil.rules.exceptions import parse_exceptions
from vigil.rules.loaders import bundled_rules, load_rules

pytest.importorskip("pyspark")
NOW = datetime(2026, 12, 1, tzinfo=UTC)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
gen_events = pytest.importorskip("gen_events")


@pytest.fixture(scope="module")
def sc():
    from vigil.engine.spark import spark_context

    with spark_context("local[2]") as context:
        yield context


def _write(path: Path, count: int, seed: int, extra: list[bytes] | None = None) -> Path:
    """Generated endpoint events with broken lines among them, a stretch out of time order
    (and ``extra`` lines among them)."""
    rng = random.Random(seed)
    lines = [orjson.dumps(d) for d in gen_events.generate(count, seed=seed)]
    for line in extra or []:
        lines.insert(rng.randrange(len(lines)), line)
    for bad in (b"not json", b'{"file": {"path": "/lib/dracut/modules.d/x', b"", b"[1, 2]"):
        lines.insert(rng.randrange(len(lines)), bad)
    lines[10:10] = lines[-40:]
    del lines[-40:]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _scan(ruleset, data, *, runner=None, exceptions=None, exceptions_all=False):
    engine = Engine(ruleset.rules, exceptions=exceptions, exceptions_all=exceptions_all, now=NOW)
    stats = ReadStats()
    ids = [a["kibana.alert.uuid"] for a in scan_paths(engine, [data], stats=stats, runner=runner)]
    problems = [(p.file, p.line, p.column, p.message) for p in stats.problems]
    return ids, stats.events, problems


def _runner(sc, ruleset, exceptions=None, exceptions_all=False):
    from vigil.engine.spark import EngineRecipe, SparkRunner

    recipe = EngineRecipe.of(ruleset, exceptions, exceptions_all=exceptions_all, now=NOW)
    return SparkRunner(sc, recipe)


@pytest.fixture(scope="module")
def prebuilt(shared):
    base = shared / "detection-rules"
    ruleset = load_rules([base / "rules", base / "rules_building_block"])
    ruleset.extend(bundled_rules())
    return ruleset


@pytest.mark.parametrize("split", ["rule-shares", "byte-ranges"])
def test_prebuilt_rules_on_spark_give_the_alerts_of_one_process(sc, prebuilt, tmp_path, monkeypatch, split):
    """Many rules: each executor runs a share of the rules over all inputs. Forced to
    byte ranges, executors run the event rules on ranges and the driver the sequences."""
    from vigil.engine import batch, spark

    monkeypatch.setattr(batch, "CHUNK", 96 << 10)  # many byte ranges from a small file
    monkeypatch.setattr(batch, "MIN_CHUNK", 32 << 10)
    monkeypatch.setattr(spark, "WAVE", 1)  # results fetched in many waves
    if split == "byte-ranges":
        monkeypatch.setattr(batch, "RULE_SPLIT_MIN", 10**6)
    # With the prebuilt rules' events whose same-field comparisons are split across arrays.
    data = _write(tmp_path / "events.ndjson", 1500, seed=31, extra=split_lines(prebuilt.rules))
    one = _scan(prebuilt, data)
    seen = []
    runner = _runner(sc, prebuilt)
    runner.alert_block = 4096  # each share's alerts fetched in many blocks
    runner.on_ranges = lambda done, total: seen.append((done, total))
    on_spark = _scan(prebuilt, data, runner=runner)
    assert len(one[0]) > 50, "the data must raise alerts for the comparison to mean something"
    assert on_spark == one
    # Not JSON, cut short, and each number of the array; the blank line is no problem.
    assert len(one[2]) == 4
    if split == "byte-ranges":
        total = len(list(batch._tasks([str(data)], runner.workers, runner.largest_range)))
        assert total > 3 * runner.workers
    else:
        total = runner.workers
    assert seen[-1] == (total, total)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_exception_lists_reach_the_executors(sc, tmp_path):
    data = _write(tmp_path / "events.ndjson", 3000, seed=7)
    ruleset = bundled_rules()
    alerts = list(scan_paths(Engine(ruleset.rules, now=NOW), [data]))
    assert len(alerts) >= 2
    host = alerts[0]["host"]["name"]
    lines = [
        {"list_id": "ok", "namespace_type": "single", "type": "detection", "name": "ok"},
        {
            "item_id": "i",
            "list_id": "ok",
            "namespace_type": "single",
            "type": "simple",
            "entries": [{"field": "host.name", "operator": "included", "type": "match", "value": host}],
        },
    ]
    lists = parse_exceptions("\n".join(orjson.dumps(x).decode() for x in lines), "exceptions.ndjson")
    one = _scan(ruleset, data, exceptions=lists, exceptions_all=True)
    on_spark = _scan(
        ruleset, data, runner=_runner(sc, ruleset, lists, True), exceptions=lists, exceptions_all=True
    )
    assert on_spark == one
    assert 0 < len(one[0]) < len(alerts)


def test_match_long_values_reaches_the_executors(sc, tmp_path):
    """Executors rebuild the rules from their texts: --match-long-values, set on the
    driver's rules, must reach them (a path past file.path's ignore_above of 1,024)."""
    rng = random.Random(3)
    drops = [gen_events._dracut_event(rng, NOW, n) for n in range(40)]
    for doc in drops:
        doc["file"]["path"] = doc["file"]["path"].replace("/modules.d/", "/modules.d/" + "x" * 1100 + "/")
    data = _write(tmp_path / "events.ndjson", 500, seed=3, extra=[orjson.dumps(d) for d in drops])
    counts = []
    for long_values in (False, True):
        ruleset = bundled_rules()
        for rule in ruleset.rules:
            rule.match_long_values = long_values
        one = _scan(ruleset, data)
        assert _scan(ruleset, data, runner=_runner(sc, ruleset)) == one
        counts.append(len(one[0]))
    assert counts[0] < counts[1]


def test_an_unreadable_input_is_reported_and_the_rest_scanned(sc, tmp_path):
    data = _write(tmp_path / "events.ndjson", 3000, seed=7)
    missing = tmp_path / "missing.ndjson"
    ruleset = bundled_rules()
    engine = Engine(ruleset.rules, now=NOW)
    stats = ReadStats()
    got = list(scan_paths(engine, [data, missing], stats=stats, runner=_runner(sc, ruleset)))
    assert got and stats.files_failed == 1
    assert any(p.file == str(missing) for p in stats.problems)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """A Spark standalone cluster on this machine: a master and one worker, each its own JVM."""
    import os
    import subprocess
    import time

    import pyspark

    home = os.path.dirname(pyspark.__file__)
    logs = tmp_path_factory.mktemp("spark-cluster")
    env = dict(os.environ, SPARK_HOME=home, SPARK_LOCAL_IP="127.0.0.1", SPARK_LOG_DIR=str(logs))
    port = _free_port()
    master_url = f"spark://127.0.0.1:{port}"
    spark_class = os.path.join(home, "bin", "spark-class")
    procs = []
    try:
        for args, log in (
            (["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port)], "master"),
            (
                ["org.apache.spark.deploy.worker.Worker", "--cores", "2", "--memory", "1g", master_url],
                "worker",
            ),
        ):
            out = open(logs / f"{log}.log", "wb")  # closed after the process ends
            procs.append(
                (
                    subprocess.Popen(
                        [spark_class, *args, "--webui-port", str(_free_port())],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                    ),
                    out,
                )
            )
            deadline = time.monotonic() + 90
            ready = "Starting Spark master" if log == "master" else "Successfully registered with master"
            while ready not in (logs / f"{log}.log").read_text(errors="replace"):
                assert procs[-1][0].poll() is None, (logs / f"{log}.log").read_text(errors="replace")
                assert time.monotonic() < deadline, f"the Spark {log} did not start"
                time.sleep(0.3)
        yield master_url
    finally:
        for proc, out in reversed(procs):
            proc.terminate()
            proc.wait(30)
            out.close()


def test_a_standalone_cluster_reads_relative_inputs_from_the_driver_folder(standalone, tmp_path):
    """Executors of a standalone cluster run in their own folders: the user's relative input
    names must still be read, and reported, as the user wrote them."""
    import subprocess

    data = _write(tmp_path / "events.ndjson", 3000, seed=7)
    ruleset = bundled_rules()
    one = [a["kibana.alert.uuid"] for a in scan_paths(Engine(ruleset.rules, now=NOW), [data])]
    vigil = Path(sys.executable).with_name("vigil")
    run = subprocess.run(
        [str(vigil), "scan", "--spark", standalone, "--format", "ndjson", "events.ndjson"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr  # the broken lines: the input was not read whole
    got = [orjson.loads(line)["kibana.alert.uuid"] for line in run.stdout.splitlines()]
    assert got == one and len(got) >= 2
    assert "events.ndjson:" in run.stderr and "Traceback" not in run.stderr  # the broken lines
