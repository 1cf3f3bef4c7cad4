"""What the live tests of `vigil watch` share: whether eBPF loads here, and reading the
NDJSON files watch writes."""

from __future__ import annotations

import json
import os
from pathlib import Path


def ebpf_refusal() -> str | None:
    """Why the eBPF sensor cannot run here (not root, or the kernel refuses it), or None."""
    if os.geteuid() != 0:
        return "needs root"
    try:
        from vigil.sensor.bpf import Probes

        Probes(1 << 20).close()
    except Exception as exc:  # noqa: BLE001 - any refusal is the reason to skip
        return f"eBPF unavailable: {str(exc).splitlines()[0]}"
    return None


def read_ndjson(path: Path) -> list[dict]:
    """The whole lines of an NDJSON file watch writes (a partial last line is left out)."""
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().split("\n")[:-1] if x.strip()]


def alerted_rules(path: Path) -> set[str]:
    """The names of the rules with an alert in an NDJSON alerts file."""
    return {a["kibana.alert.rule.name"] for a in read_ndjson(path)}
