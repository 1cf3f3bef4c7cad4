"""Batch scans on Apache Spark: the split and the merge of ``--jobs``, with Spark tasks.

With few rules, the driver cuts the inputs into line-aligned byte ranges; each task
runs :func:`vigil.engine.batch.range_result` on one (event rules' alerts, and the
events that sequence and sample rules take) and the driver merges the results in
input order and runs the sequences. With many rules, each task runs a share of the
rules over all inputs (:func:`vigil.engine.batch.rule_share`) and the driver merges
the shares' alerts on their single-process place. Either way the alerts are those
of one process.

Executors read the inputs from the same paths as the driver: every input must be
visible to every executor at that path (a local or shared filesystem). Executors
rebuild the engine from the rule files' texts, once per Python worker process.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from vigil.engine.batch import range_result, rule_positions, rule_share, rule_share_engine
from vigil.engine.engine import Engine
from vigil.errors import VigilError

# Ranges fetched at a time, per worker: enough that workers rarely wait for the driver.
WAVE = 2
# The largest byte range: a range's results pass through the driver's JVM at once, and
# with many sequence rules they hold most of its events.
LARGEST_RANGE = 16 << 20
# Bytes of alerts per block the driver fetches from a share of the rules.
ALERT_BLOCK = 8 << 20
# Engines rebuilt in this Python worker, by recipe digest: Spark reuses its workers.
_ENGINES: dict[str, Engine] = {}


@dataclass(frozen=True)
class EngineRecipe:
    """What an executor needs to build the driver's engine: texts, not compiled objects."""

    rules: tuple[tuple[str, str], ...]
    exceptions: tuple[str, str] | None = None
    exceptions_all: bool = False
    now: datetime | None = None
    # --match-long-values: set on the driver's rules, which executors rebuild from texts.
    match_long_values: bool = False

    @classmethod
    def of(cls, ruleset, exceptions=None, *, exceptions_all: bool = False, now=None) -> EngineRecipe:
        """From a :class:`vigil.rules.loaders.RuleSet` and optional exception lists."""
        long_values = any(r.match_long_values for r in ruleset.rules)
        text = exceptions.text if exceptions else None
        return cls(tuple(ruleset.texts), text, exceptions_all, now, long_values)

    def digest(self) -> str:
        h = hashlib.sha256()
        for name, text in self.rules:
            h.update(f"{len(name)}:{name}{len(text)}:".encode() + text.encode())
        h.update(repr((self.exceptions, self.exceptions_all, self.now, self.match_long_values)).encode())
        return h.hexdigest()

    def build(self) -> Engine:
        from vigil.rules.exceptions import parse_exceptions
        from vigil.rules.loaders import load_texts

        exceptions = parse_exceptions(self.exceptions[1], self.exceptions[0]) if self.exceptions else None
        rules = load_texts(self.rules).rules
        for rule in rules:
            rule.match_long_values = self.match_long_values
        return Engine(rules, exceptions=exceptions, exceptions_all=self.exceptions_all, now=self.now)


def _engine(digest: str, recipe) -> Engine:
    engine = _ENGINES.get(digest)
    if engine is None:
        engine = _ENGINES[digest] = recipe.value.build()
    return engine


def _share_blocks(digest: str, recipe, cwd: str, names, index, source, size: int, shares: int, share: int):
    """One share of the rules over all inputs, as ``((share, n), block)`` records: the
    share's counts first (``n`` = -1), then its tagged alerts (:func:`rule_share`, in
    the share's order) in compressed blocks of whole lines. The alerts wait in a local
    file until the share is done, not in memory."""
    key = f"{digest}/{share}/{shares}"
    engine = _ENGINES.get(key)
    if engine is None:
        engine = _ENGINES[key] = rule_share_engine(_engine(digest, recipe), share, shares)
    full = _engine(digest, recipe)
    with tempfile.TemporaryFile() as spill:
        with _in_folder(cwd):
            counts = rule_share(engine, names, index, source, rule_positions(full), spill)
        yield (share, -1), counts
        spill.seek(0)
        n = 0
        while block := spill.read(size):
            block += spill.readline()  # to the end of the line
            yield (share, n), zlib.compress(block, 1)
            n += 1


def _run_range(digest: str, recipe, cwd: str, index, source, task):
    with _in_folder(cwd):
        return range_result(_engine(digest, recipe), index, source, task)


def _in_folder(cwd: str):
    """Input names are the user's, often relative: a task reads them from the driver's
    folder when this executor has it (a Python worker runs one task at a time, so the
    change of folder is its own)."""
    return contextlib.chdir(cwd) if os.path.isdir(cwd) else contextlib.nullcontext()


class SparkRunner:
    """A ``runner`` of :func:`vigil.engine.batch.scan_paths` on a Spark cluster: byte
    ranges (:meth:`run`) or shares of the rules (:meth:`split_rules`) as Spark tasks.

    ``on_ranges(done, total)`` is called now and then with the tasks done.
    """

    def __init__(self, sc, recipe: EngineRecipe, on_ranges: Callable[[int, int], None] | None = None) -> None:
        self.sc = sc
        self.recipe = recipe
        self.on_ranges = on_ranges
        self.workers = max(1, sc.defaultParallelism)
        self.largest_range = LARGEST_RANGE
        self.alert_block = ALERT_BLOCK

    def run(self, engine: Engine, tasks: list, *, index, source) -> Iterator:
        """The results of ``tasks``, in order, fetched a wave of ranges at a time: the
        driver holds two waves at most (the one merged, the one Spark computes)."""
        from concurrent.futures import ThreadPoolExecutor
        from functools import partial

        shipped = self.sc.broadcast(self.recipe)
        try:
            work = partial(_run_range, self.recipe.digest(), shipped, os.getcwd(), index, source)
            rdd = self.sc.parallelize(tasks, len(tasks)).map(work)
            size = WAVE * self.workers
            waves = [list(range(i, min(i + size, len(tasks)))) for i in range(0, len(tasks), size)]
            with ThreadPoolExecutor(1) as pool:
                fetch = partial(self.sc.runJob, rdd, lambda results: results)
                pending = pool.submit(fetch, waves[0]) if waves else None
                for k in range(len(waves)):
                    before = sum(len(w) for w in waves[:k])
                    results = self._wait(pending, before, len(waves[k]), len(tasks))
                    pending = pool.submit(fetch, waves[k + 1]) if k + 1 < len(waves) else None
                    yield from results
        except Exception as exc:
            raise _spark_error(exc) from None
        finally:
            shipped.unpersist()

    def split_rules(self, engine: Engine, names: list[str], *, index, source, tmp: str) -> list:
        """Each worker runs a share of the rules over every input (read at the same
        paths). The shares' alerts stay on the executors' disks, in blocks; the driver
        fetches them a block at a time into one file per share in ``tmp``, so it holds
        few of them however many there are."""
        from concurrent.futures import ThreadPoolExecutor
        from functools import partial

        from pyspark import StorageLevel

        shares = self.workers
        shipped = self.sc.broadcast(self.recipe)
        blocks = None
        counts: dict[int, tuple] = {}
        paths = [os.path.join(tmp, f"alerts-{k}") for k in range(shares)]
        try:
            work = partial(
                _share_blocks,
                self.recipe.digest(),
                shipped,
                os.getcwd(),
                names,
                index,
                source,
                self.alert_block,
                shares,
            )
            blocks = self.sc.parallelize(range(shares), shares).flatMap(work)
            blocks.persist(StorageLevel.DISK_ONLY)
            with ThreadPoolExecutor(1) as pool:
                keys = self._wait(pool.submit(blocks.keys().collect), 0, shares, shares)
            # One block per partition, in (share, block) order: fetched one at a time.
            place = {key: n for n, key in enumerate(sorted(keys))}
            ordered = blocks.partitionBy(len(place), place.__getitem__)
            files = [open(path, "wb") for path in paths]  # noqa: SIM115 - closed below
            try:
                for (share, n), value in ordered.toLocalIterator(True):
                    if n == -1:
                        counts[share] = value
                    else:
                        files[share].write(zlib.decompress(value))
            finally:
                for fh in files:
                    fh.close()
        except Exception as exc:
            raise _spark_error(exc) from None
        finally:
            if blocks is not None:
                blocks.unpersist()
            shipped.unpersist()
        return [(paths[k], *counts[k]) for k in range(shares)]

    def _wait(self, future, before: int, tasks: int, total: int):
        """The result of a job of ``tasks`` tasks, telling ``on_ranges`` meanwhile how
        many of ``total`` are done (``before`` of them before this job)."""
        from concurrent.futures import wait

        if self.on_ranges is not None:
            tracker = self.sc.statusTracker()
            shown = before
            while not wait([future], timeout=0.25).done:
                done = before
                for stage in tracker.getActiveStageIds():
                    info = tracker.getStageInfo(stage)
                    done += info.numCompletedTasks if info else 0
                # A stage that just finished is no longer active, so its tasks drop out
                # of the sum for a moment: progress only ever moves forward.
                shown = max(shown, min(done, total))
                self.on_ranges(shown, total)
        results = future.result()
        if self.on_ranges is not None:
            self.on_ranges(before + tasks, total)
        return results


def _spark_error(exc: Exception) -> Exception:
    """A failed Spark job as one line: the Python error an executor raised, when there is one."""
    if isinstance(exc, VigilError):
        return exc
    text = str(exc)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    cause = next((ln.strip() for ln in reversed(lines) if "Error:" in ln), lines[0] if lines else text)
    return VigilError(f"the Spark job failed: {cause}")


LOG_CONFIG = "spark-log4j2.properties"


@contextlib.contextmanager
def spark_context(master: str, app_name: str = "vigil scan") -> Iterator:
    """A SparkContext on ``master`` (``local[2]``, ``spark://host:7077``, ...), quiet but for errors.

    Raises :class:`VigilError` in one line when pyspark or Java is missing.
    """
    try:
        from pyspark import SparkConf, SparkContext
    except ImportError:
        raise VigilError("--spark needs pyspark: pip install 'vigil[spark]'") from None
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise VigilError("--spark needs Java 17 or later: install a JDK, or set JAVA_HOME to one")
    _check_standalone(master)
    # Executors run this Python (where vigil is installed) unless told otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with resources.as_file(resources.files("vigil") / "data" / LOG_CONFIG) as log_config:
        conf = (
            SparkConf()
            .setMaster(master)
            .setAppName(app_name)
            .set("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log_config.as_uri()}")
            .set("spark.ui.showConsoleProgress", "false")
            .set("spark.ui.enabled", "false")
        )
        try:
            sc = SparkContext(conf=conf, gateway=_gateway(conf, master))
        except VigilError:
            raise
        except Exception as exc:  # the master is wrong or unreachable
            why = _jvm_cause(str(exc)) or _first_line(exc)
            raise VigilError(f"cannot start Spark on {master}: {why}") from None
    sc.setLogLevel("ERROR")
    try:
        yield sc
    finally:
        sc.stop()


def _gateway(conf, master: str):
    """The JVM, started once per process, its own output (the JVM's warnings, Spark's log)
    kept in an unnamed file: the user sees it only when the JVM fails to start."""
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return None
    log = tempfile.TemporaryFile()
    try:
        return launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
    except Exception as exc:
        log.seek(0)
        why = _jvm_cause(log.read().decode(errors="replace"))
        raise VigilError(f"cannot start Spark on {master}: {why or _first_line(exc)}") from None


_JVM_EXCEPTION = re.compile(r"(?:Exception|Error)\b[^:\s]*: (.+)")


def _jvm_cause(log: str) -> str | None:
    """The message of the first Java exception in the JVM's output (not its stack frames)."""
    for line in log.splitlines():
        match = _JVM_EXCEPTION.search(line)
        if match and not line.lstrip().startswith("at "):
            return match.group(1).strip()
    return None


def _check_standalone(master: str) -> None:
    """A standalone master (``spark://h1:7077,h2:7077``) that answers on none of its
    addresses fails here at once: Spark itself would retry for a minute first."""
    if not master.startswith("spark://"):
        return
    import socket

    problems = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise VigilError(f"a Spark master URL is spark://HOST:PORT[,HOST:PORT...], not {master}")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
                return
        except OSError as exc:
            problems.append(f"{address}: {exc.strerror or exc}")
    raise VigilError(f"cannot reach the Spark master {master}: {'; '.join(problems)}")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
