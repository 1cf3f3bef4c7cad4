"""The eBPF process and network sensor against the real kernel (root; skipped where eBPF
cannot load, with the kernel's reason).

Event shapes follow Elastic Defend's Linux documentation (elastic/endpoint-package
``custom_documentation/src/endpoint/data_stream/process/linux/linux_process_fork_exec_exit.yaml``
and ``.../network/linux/linux_network_attempted_accepted_and_disconnect.yaml``).
"""

from __future__ import annotations

import base64
import itertools
import os
import socket
import subprocess
import threading
import time

import pytest

from vigil.sensor.ecs import HostInfo


def _load():
    try:
        from vigil.sensor.ebpf import KernelSensor

        counter = itertools.count()
        return KernelSensor(HostInfo.local(), lambda: f"t-{next(counter)}"), None
    except Exception as exc:  # noqa: BLE001 - any refusal is the reason to skip
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@pytest.fixture(scope="module")
def kernel():
    sensor, reason = _load()
    if sensor is None:
        pytest.skip(f"eBPF sensor unavailable here: {reason}")
    sensor.already_running()
    yield sensor
    sensor.close()


# 10,000 in the full run (VIGIL_EXEC_STORM=10000); a shorter default keeps the suite quick.
STORM = int(os.environ.get("VIGIL_EXEC_STORM", "2000"))


def _collect(kernel, until, timeout: float = 120.0) -> list[dict]:
    docs: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        docs += kernel.poll()
        if until(docs):
            # One more pass: what the kernel wrote meanwhile.
            docs += kernel.poll()
            return docs
        time.sleep(0.01)
    return docs


def test_exec_storm_loses_nothing(kernel):
    """Each of STORM `/bin/true` runs: one exec event with its argv, executable and parent."""
    marker = f"vigil-storm-{os.getpid()}-{time.time_ns()}"
    script = f'for i in $(seq 1 {STORM}); do /bin/true {marker} "$i"; done'
    driver = subprocess.Popen(["/bin/bash", "-c", script])
    docs: list[dict] = []

    def ends_of_driver(acc: list[dict]) -> bool:
        return any(d["event"]["action"] == "end" and d["process"]["pid"] == driver.pid for d in acc)

    try:
        docs = _collect(kernel, ends_of_driver, timeout=600)
    finally:
        driver.wait(timeout=600)
    execs = [
        d
        for d in docs
        if d["event"]["action"] == "exec" and d["process"].get("args", [None])[1:2] == [marker]
    ]
    numbers = sorted(int(d["process"]["args"][2]) for d in execs)
    assert numbers == list(range(1, STORM + 1))
    driver_exec = next(
        d for d in docs if d["event"]["action"] == "exec" and d["process"]["pid"] == driver.pid
    )
    for d in execs:
        p = d["process"]
        assert p["executable"] == os.path.realpath("/bin/true")
        assert p["name"] == "true"
        assert p["args_count"] == 3
        assert p["command_line"] == f"/bin/true {marker} {p['args'][2]}"
        assert p["parent"]["pid"] == driver.pid
        assert p["parent"]["executable"] == os.path.realpath("/bin/bash")
        assert p["parent"]["entity_id"] == driver_exec["process"]["entity_id"]
    assert kernel.stats.dropped == 0


def test_fork_exec_end_share_one_entity_id_from_the_kernel_start_time(kernel):
    proc = subprocess.Popen(["/bin/sh", "-c", "cd /tmp && exec /bin/sleep 0.2"])
    proc.wait()
    docs = _collect(
        kernel,
        lambda acc: any(d["event"]["action"] == "end" and d["process"]["pid"] == proc.pid for d in acc),
    )
    mine = [d for d in docs if d["process"]["pid"] == proc.pid]
    actions = [d["event"]["action"] for d in mine]
    assert actions[:1] == ["fork"] and "end" in actions and actions.count("exec") == 2
    assert len({d["process"]["entity_id"] for d in mine}) == 1
    sleep = [d for d in mine if d["event"]["action"] == "exec"][-1]
    assert sleep["process"]["working_directory"] == "/tmp"
    assert sleep["process"]["previous"][0]["executable"] == os.path.realpath("/bin/sh")
    assert sleep["event"]["type"] == ["start"] and sleep["event"]["category"] == ["process"]
    end = [d for d in mine if d["event"]["action"] == "end"][0]
    assert end["process"]["exit_code"] == 0 and end["event"]["type"] == ["end"]
    # Defend's form: base64 of "<agent.id>-<pid>-<start>", the start in boot clock ticks.
    agent, pid, start = base64.b64decode(sleep["process"]["entity_id"]).decode().rsplit("-", 2)
    assert agent == sleep["agent"]["id"] and int(pid) == proc.pid and int(start) > 0
    # This test's own process: its id from /proc at start equals the one the kernel gives.
    me = [d for d in docs if d["process"]["parent"]["pid"] == os.getpid()]
    assert me and me[0]["process"]["parent"]["entity_id"] == kernel.procs.get(os.getpid()).entity


def test_uid_gid_and_session_changes(kernel):
    proc = subprocess.Popen(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/setsid", "/bin/true"]
    )
    proc.wait()
    docs = _collect(
        kernel,
        lambda acc: (
            sum(d["event"]["action"] == "session_id_change" for d in acc) >= 1
            and any(d["event"]["action"] == "end" and d["process"]["pid"] == proc.pid for d in acc)
        ),
    )
    actions = {d["event"]["action"] for d in docs if d["process"]["pid"] == proc.pid}
    assert {"uid_change", "gid_change"} <= actions
    uid = [d for d in docs if d["process"]["pid"] == proc.pid and d["event"]["action"] == "uid_change"][-1]
    assert uid["user"]["id"] == "65534" and uid["event"]["type"] == ["change"]
    sid = [d for d in docs if d["event"]["action"] == "session_id_change"]
    assert any(d["process"]["session_leader"]["same_as_process"] for d in sid)


def test_connect_accept_and_disconnect(kernel):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    accepted: list[int] = []

    def serve():
        conn, peer = server.accept()
        accepted.append(peer[1])
        conn.recv(16)
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    client = subprocess.Popen(
        [
            "python3",
            "-c",
            f"import socket;s=socket.create_connection(('127.0.0.1',{port}));s.send(b'x');s.close()",
        ]
    )
    client.wait()
    t.join(timeout=30)
    server.close()
    net = lambda acc: [d for d in acc if d["event"]["category"] == ["network"]]  # noqa: E731
    docs = _collect(
        kernel,
        lambda acc: (
            {"connection_attempted", "connection_accepted"} <= {d["event"]["action"] for d in net(acc)}
            and sum(d["event"]["action"] == "disconnect_received" for d in net(acc)) >= 1
        ),
        timeout=30,
    )
    docs = net(docs)
    attempt = [
        d
        for d in docs
        if d["event"]["action"] == "connection_attempted" and d["process"]["pid"] == client.pid
    ]
    assert attempt, docs
    a = attempt[0]
    assert a["destination"] == {"address": "127.0.0.1", "ip": "127.0.0.1", "port": port}
    assert a["network"] == {"direction": "egress", "transport": "tcp", "type": "ipv4"}
    assert a["process"]["name"].startswith("python") and "args" not in a["process"]
    accept = [
        d for d in docs if d["event"]["action"] == "connection_accepted" and d["destination"]["port"] == port
    ]
    assert accept and accept[0]["process"]["pid"] == os.getpid()
    assert accept[0]["source"]["port"] == accepted[0]
    assert accept[0]["process"]["entity_id"] == kernel.procs.get(os.getpid()).entity
    closes = [d for d in docs if d["event"]["action"] == "disconnect_received"]
    assert {d["process"]["pid"] for d in closes} & {client.pid, os.getpid()}


def test_environment_variables_the_rules_ask_for(kernel):
    """Only the variables Defend is set to collect for the prebuilt rules (LD_LIBRARY_PATH, the
    proxies, GLIBC_TUNABLES, ...), as NAME=value; others stay out."""
    env = {
        "PATH": "/usr/bin:/bin",
        "LD_LIBRARY_PATH": "/opt/vigil-test",
        "https_proxy": "socks5h://x:1",
        "SECRET": "no",
    }
    proc = subprocess.Popen(["/bin/true", "vigil-env"], env=env)
    proc.wait()
    docs = _collect(
        kernel,
        lambda acc: any(d["event"]["action"] == "end" and d["process"]["pid"] == proc.pid for d in acc),
    )
    exe = [d for d in docs if d["event"]["action"] == "exec" and d["process"]["pid"] == proc.pid]
    assert exe and sorted(exe[0]["process"]["env_vars"]) == [
        "LD_LIBRARY_PATH=/opt/vigil-test",
        "https_proxy=socks5h://x:1",
    ]


def test_arguments_that_are_not_utf8_are_written_escaped(kernel):
    """An intruder picks argv bytes: what is not UTF-8 comes out as \\xNN, and the event
    still serializes (one bad argument never stops the sensor)."""
    from vigil.cli.output import dumps

    proc = subprocess.Popen([b"/bin/true", b"vigil-\xfe\xff", "caf\u00e9".encode()])
    proc.wait()
    docs = _collect(
        kernel,
        lambda acc: any(d["event"]["action"] == "end" and d["process"]["pid"] == proc.pid for d in acc),
    )
    exe = [d for d in docs if d["event"]["action"] == "exec" and d["process"]["pid"] == proc.pid]
    assert exe and exe[0]["process"]["args"] == ["/bin/true", "vigil-\\xfe\\xff", "caf\u00e9"]
    assert b"vigil-\\\\xfe\\\\xff" in dumps(exe[0])
