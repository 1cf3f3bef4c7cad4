"""A real ``vigil serve`` process on 127.0.0.1 with a free port and a clock the test drives.

Rules are real detection-rules TOML files written to the test's tmp dir (or, with
``rules=None``, the bundled rules), run by the real engine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parent.parent
T0 = 1_780_000_000_000  # a fixed "now" (ms) the tests move forward
MIN = 60_000


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def rule_toml(rule_id: str, name: str, query: str, **fields) -> str:
    """A detection-rules TOML file: an EQL rule over ``logs-*`` with Kibana's usual settings."""
    rule = {
        "rule_id": rule_id,
        "name": name,
        "type": "eql",
        "language": "eql",
        "index": ["logs-*"],
        "description": f"test rule {name}",
        "risk_score": 21,
        "severity": "low",
        "timestamp_override": "event.ingested",
        "query": query,
    }
    rule.update({k.rstrip("_"): v for k, v in fields.items()})
    lines = ["[metadata]", 'creation_date = "2026/01/01"', "", "[rule]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in rule.items() if v is not None]
    return "\n".join(lines) + "\n"


def action_rule(rule_id: str, action: str, **fields) -> dict:
    """A rule matching any event whose ``event.action`` is ``action``."""
    return dict(
        rule_id=rule_id,
        name=fields.pop("name", rule_id.upper()),
        query=f'any where event.action == "{action}"',
        **fields,
    )


class Server:
    def __init__(
        self, tmp: Path, rules: list[dict] | None, extra: list[str] | None = None, real_clock: bool = False
    ) -> None:
        self.real_clock = real_clock
        self.env_extra: dict[str, str] = {}
        self.tmp = tmp
        self.data = tmp / "data"
        self.rules_dir = tmp / "rules"
        self.rules_dir.mkdir(exist_ok=True)
        for rule in rules or []:
            rule = dict(rule)
            rid = rule.pop("rule_id")
            text = rule_toml(rid, rule.pop("name"), rule.pop("query"), **rule)
            (self.rules_dir / f"{rid}.toml").write_text(text)
        self.rules_args = [] if rules is None else ["--rules", str(self.rules_dir)]
        self.clock_file = tmp / "clock"
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.set_clock(T0)

    def set_clock(self, ms: int) -> None:
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(str(ms))
        tmp.replace(self.clock_file)
        self.now = ms

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        env.pop("VIGIL_CLOCK_FILE", None)
        env.pop("VIGIL_TOKEN", None)
        env.update(self.env_extra)
        if not self.real_clock:
            env["VIGIL_CLOCK_FILE"] = str(self.clock_file)
        cmd = [
            sys.executable,
            "-m",
            "vigil.cli",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            str(self.data),
            *self.rules_args,
            *self.extra,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        line = self.banner = self.proc.stdout.readline()
        m = re.search(r"http://[^\s\"]+", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.url = m.group(0)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def call(self, method: str, path: str, body: bytes | dict | None = None, headers: dict | None = None):
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        headers = dict(headers or {})
        if data is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"  # as Elasticsearch requires of a body
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else None), resp.headers
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, (json.loads(raw) if raw else None), exc.headers

    def get(self, path: str):
        status, body, _ = self.call("GET", path)
        assert status == 200, body
        return body

    def runs(self) -> list[dict]:
        return self.get("/api/runs?limit=1000")["runs"]

    def advance_and_wait(self, ms: int, runs_expected: int, timeout: float = 15) -> list[dict]:
        """Move the clock and wait until at least ``runs_expected`` runs are recorded in total."""
        self.set_clock(self.now + ms)
        return self.wait_runs(runs_expected, timeout)

    def wait_runs(self, n: int, timeout: float = 15) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs()
            if len(runs) >= n:
                return runs
            time.sleep(0.05)
        raise AssertionError(f"expected {n} runs, have {self.runs()}")

    def bulk(self, index: str, docs: list[dict]) -> dict:
        """Documents as Elastic Agent ships them to a data stream: a ``create`` line before each."""
        action = json.dumps({"create": {"_index": index}}).encode()
        body = b"".join(action + b"\n" + json.dumps(d).encode() + b"\n" for d in docs)
        status, resp, _ = self.call("POST", "/_bulk", body, {"Content-Type": "application/x-ndjson"})
        assert status == 200 and resp["errors"] is False, resp
        return resp

    def send(self, index: str, docs: list[dict]) -> dict:
        body = b"".join(json.dumps(d).encode() + b"\n" for d in docs)
        status, resp, _ = self.call("POST", f"/events/{index}", body)
        assert status == 200, resp
        return resp


@pytest.fixture
def make_server(tmp_path):
    servers: list[Server] = []

    def make(rules: list[dict] | None, extra: list[str] | None = None, real_clock: bool = False) -> Server:
        s = Server(tmp_path, rules, extra, real_clock)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()
