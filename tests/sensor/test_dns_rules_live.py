"""Elastic's prebuilt DNS rules for Linux endpoints, run under `vigil watch` on real DNS
queries sent on this host: each raises its alert from the sensor's ``lookup_requested`` events.

* ``command_and_control_dns_query_to_sus_top_level_domain`` (EQL, ``dns.question.name like~
  "*.xyz"``), ``rules/linux``;
* ``command_and_control_dns_to_commonly_abused_webservices`` (EQL, a building block);
* ``command_and_control_uncommon_dns_request_via_bun_or_nodejs`` (new terms on ``host.id`` and
  ``dns.question.name``, ``event.action:lookup_requested`` by ``node``), ``rules/cross-platform``.

Needs root and eBPF; skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from live_watch import alerted_rules, ebpf_refusal, read_ndjson

REPO = Path(__file__).resolve().parents[2]
RULES = {
    "rules/linux/command_and_control_dns_query_to_sus_top_level_domain.toml": "Suspicious DNS Query",
    "rules_building_block/command_and_control_dns_to_commonly_abused_webservices.toml": "DNS",
    "rules/cross-platform/command_and_control_uncommon_dns_request_via_bun_or_nodejs.toml": "Node",
}
SINK = ("127.0.0.79", 53)

# Queries a program called `node` sends (a copy of this Python), as a poisoned package would.
QUERIES = r"""
import socket, struct, sys
def query(name, qtype=1):
    labels = b"".join(bytes([len(x)]) + x for x in name.split(b".") if x)
    return struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", qtype, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for name in sys.argv[3:]:
    s.sendto(query(name.encode()), (sys.argv[1], int(sys.argv[2])))
"""


@pytest.fixture(scope="module")
def dns_run(shared, tmp_path_factory):
    reason = ebpf_refusal()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("dns")
    rules = tmp / "rules"
    rules.mkdir()
    names = {}
    for rel in RULES:
        src = shared / "detection-rules" / rel
        text = src.read_text()
        if 'type = "new_terms"' in text:
            # watch runs a new terms rule on its interval (5 minutes): every 2 s here.
            text = text.replace("\n[rule]\n", '\n[rule]\ninterval = "2s"\n', 1)
        (rules / src.name).write_text(text)
        names[rel] = _rule_name(src)
    node = tmp / "node"
    shutil.copy(os.path.realpath(sys.executable), node)
    events, alerts = tmp / "events.ndjson", tmp / "alerts.ndjson"
    cmd = [sys.executable, "-m", "vigil.cli", "watch", "--format", "ndjson", "--events-out", str(events)]
    cmd += ["--output", str(alerts), "--rules", str(rules), "--path", str(tmp)]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sink.bind(SINK)
    except OSError as exc:
        pytest.skip(f"cannot bind {SINK}: {exc}")
    watch = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = b""
    try:
        deadline = time.monotonic() + 300
        while b"watching" not in (line := watch.stderr.readline()):
            err += line
            assert line and time.monotonic() < deadline, f"vigil watch did not start: {err.decode()}"
        subprocess.run(
            [
                str(node),
                "-c",
                QUERIES,
                SINK[0],
                str(SINK[1]),
                "c2.vigil-test.xyz",
                "pastebin.com",
                "localhost",
            ],
            timeout=60,
            check=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not set(names.values()) <= alerted_rules(alerts):
            time.sleep(0.5)
    finally:
        sink.close()
        watch.send_signal(signal.SIGTERM)
        try:
            _, rest = watch.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            watch.kill()
            _, rest = watch.communicate()
    return names, read_ndjson(events), read_ndjson(alerts), (err + rest).decode()


def _rule_name(path: Path) -> str:
    import tomllib

    return tomllib.loads(path.read_text())["rule"]["name"]


def test_each_prebuilt_dns_rule_raises_its_alert(dns_run):
    names, _events, alerts, err = dns_run
    raised = {a["kibana.alert.rule.name"] for a in alerts}
    assert set(names.values()) <= raised, f"raised: {sorted(raised)}\n{err}"
    assert "kernel-lost=0" in err.strip().splitlines()[-1]


def test_alerts_name_the_query_and_the_process(dns_run):
    names, _events, alerts, _err = dns_run
    by_rule = {a["kibana.alert.rule.name"]: a for a in alerts}

    def question(alert: dict) -> str:
        dns = alert.get("dns") or {}
        return dns.get("question", {}).get("name") or alert.get("dns.question.name")

    tld = by_rule[names["rules/linux/command_and_control_dns_query_to_sus_top_level_domain.toml"]]
    assert question(tld) == "c2.vigil-test.xyz"
    web = by_rule[names["rules_building_block/command_and_control_dns_to_commonly_abused_webservices.toml"]]
    assert question(web) == "pastebin.com"
    node = [
        a
        for a in alerts
        if a["kibana.alert.rule.name"]
        == names["rules/cross-platform/command_and_control_uncommon_dns_request_via_bun_or_nodejs.toml"]
    ]
    assert {question(a) for a in node} == {"c2.vigil-test.xyz", "pastebin.com"}  # not localhost


def test_lookup_events_are_written_out(dns_run):
    _names_, events, _alerts, _err = dns_run
    lookups = [
        e for e in events if e["event"]["action"] == "lookup_requested" and e["process"]["name"] == "node"
    ]
    assert {e["dns"]["question"]["name"] for e in lookups} == {
        "c2.vigil-test.xyz",
        "pastebin.com",
        "localhost",
    }
