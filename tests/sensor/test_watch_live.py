"""`vigil watch` against the real kernel, the real engine and the bundled seed rule.

Files are dropped into the Dracut module folder by real programs (cp, install, a shell,
touch, a writer that then execs); the alerts `vigil watch` writes are checked field by
field. Needs root and fanotify with FAN_REPORT_DFID_NAME; skipped (with the sensor's own
reason) where that cannot be used.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from live_watch import read_ndjson

REPO = Path(__file__).resolve().parents[2]
MODULES = Path("/usr/lib/dracut/modules.d")
TEST_DIR = MODULES / "99vigil-test"
OTHER_DIR = MODULES / "98vigil-test"  # for the short-lived watchers of single tests
RULE_NAME = "Dracut Module Creation"  # the bundled seed rule
RULE_ID = "dc765fb2-0c99-4e57-8c11-dafdf1992b66"


def _fanotify_reason() -> str | None:
    if sys.platform != "linux":
        return "fanotify is Linux only"
    try:
        from vigil.sensor.fanotify import FAN_OPEN_EXEC, Group, SensorUnavailable
    except OSError as exc:
        return f"no libc for ctypes: {exc}"
    try:
        group = Group()
        try:
            group.mark_filesystem("/", FAN_OPEN_EXEC)
        finally:
            group.close()
    except SensorUnavailable as exc:
        return str(exc)
    return None


REASON = _fanotify_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"fanotify unusable here: {REASON}")


def _created_dirs() -> list[Path]:
    """The folders the test must make, outermost first (removed again afterwards)."""
    missing = []
    for d in (MODULES.parent, MODULES, TEST_DIR, OTHER_DIR):
        if not d.exists():
            missing.append(d)
    return missing


class Watch:
    def __init__(self, tmp: Path, *extra: str) -> None:
        self.events_path = tmp / "events.ndjson"
        self.alerts_path = tmp / "alerts.ndjson"
        self.store_path = tmp / "alerts.db"
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vigil.cli",
                "watch",
                "--format",
                "ndjson",
                "--events-out",
                str(self.events_path),
                "--store",
                str(self.store_path),
                *extra,
            ],
            stdout=open(self.alerts_path, "wb"),  # noqa: SIM115
            stderr=subprocess.PIPE,
            env=env,
        )
        line = b""
        deadline = time.monotonic() + 30
        while b"watching" not in line:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise AssertionError(f"vigil watch exited: {self.proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise AssertionError("vigil watch never said it was watching")
        self.ready_line = line.decode()

    def _read(self, path: Path) -> list[dict]:
        return read_ndjson(path)  # a line still being written is read next time

    def events_for(self, path: str, action: str = "creation", timeout: float = 15.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            found = [
                e
                for e in self._read(self.events_path)
                if e.get("file", {}).get("path") == path and e["event"]["action"] == action
            ]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def alerts_for(self, path: str, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            found = [a for a in self._read(self.alerts_path) if _get(a, "file.path") == path]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode()


def _get(doc: dict, path: str):
    if path in doc:
        return doc[path]
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@pytest.fixture(scope="module")
def watch(tmp_path_factory):
    made = _created_dirs()
    w = Watch(tmp_path_factory.mktemp("watch"))
    try:
        TEST_DIR.mkdir(parents=True, exist_ok=True)
        OTHER_DIR.mkdir(parents=True, exist_ok=True)
        yield w
    finally:
        w.summary = w.stop()
        shutil.rmtree(TEST_DIR, ignore_errors=True)
        shutil.rmtree(OTHER_DIR, ignore_errors=True)
        for d in reversed(made):
            if d.exists():
                shutil.rmtree(d, ignore_errors=True)


def _expect(watch: Watch, path: Path, executable: str, alert: bool) -> dict:
    """The creation event of ``path`` is attributed to ``executable``; an alert is raised or not."""
    events = watch.events_for(str(path))
    assert events, f"no creation event for {path}"
    ev = events[0]
    assert ev["process"]["executable"] == executable
    assert ev["process"]["name"] == os.path.basename(executable)
    if not alert:
        # The event went through the engine before the next one was read: a later marker's
        # alert proves this event's (absent) alert is not merely late.
        marker = path.parent / f"marker-after-{path.name}.sh"
        subprocess.run(["/usr/bin/touch", str(marker)], check=True)
        assert watch.alerts_for(str(marker)), "the marker raised no alert"
        assert watch.alerts_for(str(path), timeout=0) == []
        return ev
    alerts = watch.alerts_for(str(path))
    assert len(alerts) == 1, alerts
    _check_alert(alerts[0], ev)
    return ev


def _check_alert(a: dict, ev: dict) -> None:
    """An alert as Kibana writes it for the seed rule, on the event the sensor read."""
    assert a["kibana.alert.rule.name"] == RULE_NAME
    assert a["kibana.alert.rule.rule_id"] == RULE_ID
    assert a["kibana.alert.severity"] == "low"
    assert a["kibana.alert.risk_score"] == 21
    assert a["kibana.alert.status"] == "active"
    assert a["kibana.alert.workflow_status"] == "open"
    assert a["event"]["kind"] == "signal"
    assert a["kibana.alert.original_event.action"] == "creation"
    assert a["kibana.alert.original_time"][:23] == ev["@timestamp"][:23]  # same instant, to the ms
    assert _get(a, "process.executable") == ev["process"]["executable"]
    assert _get(a, "process.pid") == ev["process"]["pid"]
    assert _get(a, "file.path") == ev["file"]["path"]
    assert _get(a, "host.os.type") == "linux"
    (ancestor,) = a["kibana.alert.ancestors"]
    assert ancestor["index"] == "logs-endpoint.events.file-default"
    assert ancestor["id"] == ev["event"]["id"]
    assert a["kibana.alert.reason"] == (
        f"file event with process {ev['process']['name']}, file {ev['file']['name']},"
        f" by {ev['user']['name']} on {ev['host']['name']} created low alert {RULE_NAME}."
    )


def test_cp_is_attributed_to_cp(watch, tmp_path):
    src = tmp_path / "module-setup.sh"
    src.write_text("#!/bin/sh\n")
    subprocess.run(["/usr/bin/cp", str(src), str(TEST_DIR / "module-setup.sh")], check=True)
    ev = _expect(watch, TEST_DIR / "module-setup.sh", "/usr/bin/cp", alert=True)
    assert ev["file"]["extension"] == "sh"
    assert ev["file"]["size"] == len("#!/bin/sh\n")
    assert ev["event"]["type"] == ["creation"]
    assert ev["process"]["parent"]["pid"] == os.getpid()
    assert ev["user"]["id"] == os.getuid()
    assert ev["group"]["id"] == os.getgid()
    if os.getuid() == 0:
        assert ev["user"]["name"] == "root"


def test_arguments_are_caught_at_exec_time(watch, tmp_path):
    # cp is gone when its event is read; its arguments were read from /proc by the
    # process-connector thread when it exec'ed. (A copy of some megabytes gives that thread,
    # on a loaded machine, the few milliseconds it needs: a 1 ms program may be missed.)
    src = tmp_path / "big.sh"
    src.write_bytes(b"#" * (16 << 20))
    dest = TEST_DIR / "big.sh"
    subprocess.run(["/usr/bin/cp", str(src), str(dest)], check=True)
    ev = _expect(watch, dest, "/usr/bin/cp", alert=True)
    assert ev["process"]["args"] == ["/usr/bin/cp", str(src), str(dest)]
    assert ev["process"]["args_count"] == 3
    assert ev["process"]["command_line"] == f"/usr/bin/cp {src} {dest}"


def test_install_is_excluded_by_the_rule(watch, tmp_path):
    src = tmp_path / "x.sh"
    src.write_text("x\n")
    subprocess.run(["/usr/bin/install", "-m", "0755", str(src), str(TEST_DIR / "installed.sh")], check=True)
    _expect(watch, TEST_DIR / "installed.sh", "/usr/bin/install", alert=False)


def test_shell_redirect_is_the_shells_real_executable(watch):
    target = TEST_DIR / "redirect.sh"
    subprocess.run(["sh", "-c", f"echo x > {target}"], check=True)
    _expect(watch, target, os.path.realpath(shutil.which("sh")), alert=True)


@contextlib.contextmanager
def _paused(watch: Watch):
    """Hold the watcher still, so what happens inside is read only after it is over."""
    watch.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        watch.proc.send_signal(signal.SIGCONT)


def test_process_that_exits_at_once(watch):
    target = TEST_DIR / "touched.sh"
    subprocess.run(["/usr/bin/touch", str(target)], check=True)
    _expect(watch, target, "/usr/bin/touch", alert=True)


def test_writer_gone_before_its_event_is_read(watch):
    # /proc/<pid> no longer exists when the event is read: attribution came from the exec.
    target = TEST_DIR / "gone.sh"
    with _paused(watch):
        res = subprocess.run(["/usr/bin/dd", "of=" + str(target), "status=none"], input=b"x", check=True)
        assert res.returncode == 0
    ev = _expect(watch, target, "/usr/bin/dd", alert=True)
    assert not Path(f"/proc/{ev['process']['pid']}").exists()


def test_writer_that_then_execs_another_program(watch):
    # The writer is still alive (as sleep) when the event is read: /proc would say sleep.
    target = TEST_DIR / "then-exec.sh"
    code = f"open({str(target)!r}, 'w').write('x'); import os; os.execv('/usr/bin/sleep', ['sleep', '3'])"
    with _paused(watch):
        child = subprocess.Popen([sys.executable, "-c", code])
        deadline = time.monotonic() + 10
        while os.path.realpath(f"/proc/{child.pid}/exe") != "/usr/bin/sleep" and time.monotonic() < deadline:
            time.sleep(0.01)
    try:
        assert os.path.realpath(f"/proc/{child.pid}/exe") == "/usr/bin/sleep"
        ev = _expect(watch, target, os.path.realpath(sys.executable), alert=True)
        assert ev["process"]["pid"] == child.pid
    finally:
        child.kill()
        child.wait()


def test_fork_without_exec_inherits_the_parents_program(watch):
    target = TEST_DIR / "subshell.sh"
    subprocess.run(["sh", "-c", f"(echo x > {target}; true); true"], check=True)
    ev = _expect(watch, target, os.path.realpath(shutil.which("sh")), alert=True)
    assert ev["process"]["pid"] > 0


def test_swap_file_raises_no_alert(watch):
    target = TEST_DIR / ".module-setup.sh.swp"
    subprocess.run(["/usr/bin/touch", str(target)], check=True)
    ev = _expect(watch, target, "/usr/bin/touch", alert=False)
    assert ev["file"]["extension"] == "swp"


def test_file_outside_module_folders_is_not_seen(watch, tmp_path):
    outside = tmp_path / "module-setup.sh"
    subprocess.run(["/usr/bin/touch", str(outside)], check=True)
    marker = TEST_DIR / "marker-after-outside.sh"
    subprocess.run(["/usr/bin/touch", str(marker)], check=True)
    assert watch.events_for(str(marker))  # the sensor caught up past the outside write
    assert not watch.events_for(str(outside), timeout=0)
    assert not watch.alerts_for(str(outside), timeout=0)


def test_rename_and_deletion(watch):
    a, b = TEST_DIR / "a.sh", TEST_DIR / "b.sh"
    subprocess.run(["/usr/bin/touch", str(a)], check=True)
    subprocess.run(["/usr/bin/mv", str(a), str(b)], check=True)
    subprocess.run(["/usr/bin/rm", str(b)], check=True)
    ren = watch.events_for(str(b), "rename")
    assert ren and ren[0]["file"]["Ext"]["original"]["path"] == str(a)
    assert ren[0]["event"]["type"] == ["change"]
    assert ren[0]["process"]["executable"] == "/usr/bin/mv"
    gone = watch.events_for(str(b), "deletion")
    assert gone and gone[0]["event"]["type"] == ["deletion"]
    assert gone[0]["process"]["executable"] == "/usr/bin/rm"


def test_counts_on_sigusr1(watch):
    watch.proc.send_signal(signal.SIGUSR1)
    line = watch.proc.stderr.readline().decode()
    assert line.startswith("vigil watch: events=")
    assert "lost=0" in line


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_without_cap_sys_admin_one_clear_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    cmd = [
        "setpriv",
        "--inh-caps=-all",
        "--bounding-set=-sys_admin",
        sys.executable,
        "-m",
        "vigil.cli",
        "watch",
    ]
    res = subprocess.run([*cmd, "--path", str(tmp_path)], capture_output=True, env=env, timeout=30)
    assert res.returncode != 0
    lines = res.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "CAP_SYS_ADMIN" in lines[0]
    assert res.stdout == b""


def test_queue_overflow_is_counted_and_reported(tmp_path):
    """Lost events are never silent: a stopped sensor overflows the 16384-event kernel queue."""
    folder = tmp_path / "flood"
    folder.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    events = tmp_path / "events.ndjson"
    cmd = [sys.executable, "-m", "vigil.cli", "watch", "--format", "ndjson", "--events-out", str(events)]
    proc = subprocess.Popen(
        [*cmd, "--path", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    try:
        while b"watching" not in (line := proc.stderr.readline()):
            assert line, "vigil watch exited"
        proc.send_signal(signal.SIGSTOP)
        for n in range(17_000):
            os.close(os.open(f"{folder}/f{n}", os.O_WRONLY | os.O_CREAT, 0o644))
        proc.send_signal(signal.SIGCONT)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    summary = err.decode().strip().splitlines()[-1]
    lost = int(re.search(r"lost=(\d+)", summary).group(1))
    seen = int(re.search(r"events=(\d+)", summary).group(1))
    assert lost >= 1, err.decode()
    assert seen < 17_000
    docs = [json.loads(x) for x in events.read_text().splitlines()]
    health = [d for d in docs if d["event"]["action"] == "queue-overflow"]
    assert len(health) == lost
    assert health[0]["event"]["kind"] == "metric"


def test_unwritable_events_out_is_one_line_not_a_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    bad = tmp_path / "missing" / "events.ndjson"
    cmd = [sys.executable, "-m", "vigil.cli", "watch", "--path", str(tmp_path), "--events-out", str(bad)]
    res = subprocess.run(cmd, capture_output=True, env=env, timeout=30)
    assert res.returncode == 2
    err = res.stderr.decode()
    assert f"cannot open {bad}" in err
    assert "Traceback" not in err


def test_alerts_are_kept_in_the_store(watch):
    from vigil.store.alerts import AlertStore

    target = TEST_DIR / "stored.sh"
    subprocess.run(["sh", "-c", f"echo x > {target}"], check=True)
    ev = _expect(watch, target, os.path.realpath(shutil.which("sh")), alert=True)
    (alert,) = watch.alerts_for(str(target))
    with AlertStore(watch.store_path) as store:
        kept = store.get(alert["kibana.alert.uuid"])
    assert kept is not None
    assert _get(kept, "file.path") == str(target)
    assert _get(kept, "process.pid") == ev["process"]["pid"]
    assert kept["kibana.alert.rule.name"] == RULE_NAME


def _leaf_types(doc: dict, prefix: str = "") -> dict[str, type]:
    out: dict[str, type] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(_leaf_types(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = type(value)
    return out


def test_live_creation_has_the_shape_of_elastic_defend(watch, shared):
    """A creation read from the kernel against the Elastic Defend creations in conformance/."""
    samples = shared / "conformance" / "elastic-defend" / "events.ndjson"
    defend = [json.loads(x)["_source"] for x in samples.read_text().splitlines() if x.strip()]
    creations = [d for d in defend if d["event"]["action"] == "creation"]
    assert creations
    target = TEST_DIR / "shape.conf"
    subprocess.run(["/usr/bin/touch", str(target)], check=True)
    (ev,) = watch.events_for(str(target))
    ours = _leaf_types(ev)
    # What the Defend agent adds that a sensor of one host cannot know, or leaves to Fleet.
    not_ours = ("agent.", "elastic.", "host.ip", "host.mac", "host.os.Ext", "event.sequence")
    not_ours += (
        "event.agent_id_status",
        "event.outcome",
        "user.Ext",
        "group.Ext",
        "process.parent.entity_id",
    )
    compared = 0
    for sample in creations:
        for field, kind in _leaf_types(sample).items():
            if field.startswith(not_ours):
                continue
            assert field in ours, f"Defend has {field}, the live event does not"
            assert ours[field] is kind, field
            compared += 1
        for field in ("event.kind", "event.module", "event.dataset", "message", "ecs.version"):
            assert _get(ev, field) == _get(sample, field), field
        assert ev["event"]["category"] == sample["event"]["category"] == ["file"]
        assert ev["event"]["type"] == sample["event"]["type"] == ["creation"]
        assert ev["data_stream"] == sample["data_stream"]
    assert compared >= 20
    assert base64.b64decode(ev["process"]["entity_id"]).decode().startswith(ev["agent"]["id"] + "-")


def _short_watch(tmp: Path, *extra: str) -> Watch:
    return Watch(tmp, "--path", str(OTHER_DIR), *extra)


def test_exceptions_suppress_alerts(watch, tmp_path):
    lists = tmp_path / "exceptions.ndjson"
    lists.write_text(
        json.dumps({"list_id": "vigil-test", "namespace_type": "single", "type": "detection", "name": "t"})
        + "\n"
        + json.dumps(
            {
                "item_id": "no-touch",
                "list_id": "vigil-test",
                "namespace_type": "single",
                "name": "touch is fine",
                "entries": [
                    {
                        "field": "process.executable",
                        "operator": "included",
                        "type": "match",
                        "value": "/usr/bin/touch",
                    }
                ],
            }
        )
        + "\n"
    )
    short = _short_watch(tmp_path, "--exceptions", str(lists), "--exceptions-all")
    try:
        touched, copied = OTHER_DIR / "touched.sh", OTHER_DIR / "copied.sh"
        subprocess.run(["/usr/bin/touch", str(touched)], check=True)
        subprocess.run(["/usr/bin/cp", str(lists), str(copied)], check=True)
        assert short.events_for(str(touched)) and short.events_for(str(copied))
        assert short.alerts_for(str(copied))
        assert short.alerts_for(str(touched), timeout=0) == []
    finally:
        summary = short.stop()
    assert "suppressed=1 " in summary.strip().splitlines()[-1]


def test_exceptions_all_without_lists_is_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    cmd = [sys.executable, "-m", "vigil.cli", "watch", "--path", str(tmp_path), "--exceptions-all"]
    res = subprocess.run(cmd, capture_output=True, env=env, timeout=30)
    assert res.returncode == 2
    assert res.stderr.decode().strip() == "vigil: --exceptions-all needs --exceptions FILE"


def test_vigils_own_writes_never_feed_back(watch, tmp_path):
    """Alerts written into the watched folder itself raise no event, so no alert loop."""
    out = OTHER_DIR / "alerts-out.ndjson"
    short = _short_watch(tmp_path, "--output", str(out))
    try:
        target = OTHER_DIR / "loop.sh"
        subprocess.run(["/usr/bin/touch", str(target)], check=True)
        assert short.events_for(str(target))
        deadline = time.monotonic() + 5
        while str(target) not in (out.read_text() if out.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.05)
        marker = OTHER_DIR / "after.sh"
        subprocess.run(["/usr/bin/touch", str(marker)], check=True)
        assert short.events_for(str(marker))
    finally:
        short.stop()
    paths = {e["file"]["path"] for e in short._read(short.events_path) if "file" in e}
    assert str(target) in paths
    assert not {p for p in paths if p.startswith(str(out)) or p.startswith(str(tmp_path))}
    alerts = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(_get(a, "file.path") for a in alerts) == sorted([str(target), str(marker)])


def test_table_format_is_one_line_per_alert(watch, tmp_path):
    out = tmp_path / "table.txt"
    short = _short_watch(tmp_path, "--format", "table", "--output", str(out))
    try:
        target = OTHER_DIR / "tabled.sh"
        subprocess.run(["/usr/bin/touch", str(target)], check=True)
        assert short.events_for(str(target))
        deadline = time.monotonic() + 5
        while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        short.stop()
    (line,) = out.read_text().splitlines()
    fields = line.split()
    assert fields[1] == "low"
    assert " ".join(fields[2:5]) == RULE_NAME
    assert fields[-2:] == ["/usr/bin/touch", str(target)]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to nobody needs root to start from")
def test_as_nobody_one_clear_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "vigil.cli"]
    probe = subprocess.run([*cmd, "--help"], capture_output=True, env=env, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run this Python: {probe.stderr.decode().strip()[:200]}")
    res = subprocess.run([*cmd, "watch", "--path", str(tmp_path)], capture_output=True, env=env, timeout=30)
    assert res.returncode == 1
    lines = res.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("vigil watch: missing CAP_SYS_ADMIN")
    assert res.stdout == b""


def test_file_name_that_is_not_utf8_is_written_escaped(watch):
    """A file name is any bytes: what is not UTF-8 comes out as \\xNN, and the sensor goes on."""
    bad = os.fsencode(str(TEST_DIR)) + b"/vigil-\xff.sh"
    fd = os.open(bad, os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    try:
        assert watch.events_for(f"{TEST_DIR}/vigil-\\xff.sh")
        after = TEST_DIR / "after-bad-name.sh"
        subprocess.run(["/usr/bin/touch", str(after)], check=True)
        assert watch.events_for(str(after))
    finally:
        os.unlink(bad)
