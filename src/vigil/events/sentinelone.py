"""SentinelOne Cloud Funnel raw events to the ECS documents of Elastic's
``sentinel_one_cloud_funnel`` integration (its ``event`` data stream).

Hand-written after the integration's ingest pipeline; covers the fields the
file pipeline sets and the common endpoint and source-process fields.
"""

from __future__ import annotations

import ntpath
import posixpath
from datetime import UTC, datetime
from typing import Any

import orjson

from vigil.errors import VigilError

INDEX = "logs-sentinel_one_cloud_funnel.event-default"

# meta.event.name -> event.action / event.type, as the file pipeline sets them.
_FILE_ACTIONS = {
    "FILECREATION": ("creation", "creation"),
    "FILEMODIFICATION": ("modification", "change"),
    "FILEDELETION": ("deletion", "deletion"),
    "FILERENAME": ("rename", "change"),
    "FILESCAN": ("scan", "info"),
}
_OS = {"windows": "windows", "linux": "linux", "osx": "macos", "macos": "macos"}


def looks_like(doc: dict) -> bool:
    """True for a flat Cloud Funnel event."""
    if "meta.event.name" in doc:
        return True
    return any(isinstance(k, str) and k.startswith(("src.process.", "tgt.file.")) for k in doc)


def _epoch_ms(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        ms = int(value)
    except ValueError:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _basename(path: str, windows: bool) -> str:
    return ntpath.basename(path) if windows else posixpath.basename(path)


def _set(doc: dict, dotted: str, value: Any) -> None:
    if value is None:
        return
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def normalize(raw: dict) -> dict:
    """The ECS document the integration would index for one raw event."""
    name = raw.get("meta.event.name")
    if not isinstance(name, str) and "event.type" not in raw:
        raise VigilError("not a SentinelOne Cloud Funnel event: no meta.event.name or event.type")
    out: dict = {}
    os_name = str(raw.get("endpoint.os", "")).lower()
    windows = os_name == "windows"
    _set(out, "@timestamp", _epoch_ms(raw.get("event.time")))
    _set(out, "event.id", raw.get("event.id"))
    _set(out, "event.kind", "event")
    _set(out, "event.original", orjson.dumps(raw).decode())
    category = raw.get("event.category")
    if isinstance(category, str):
        _set(out, "event.category", [category])
    if isinstance(name, str) and name.upper() in _FILE_ACTIONS:
        action, etype = _FILE_ACTIONS[name.upper()]
        _set(out, "event.action", [action])
        _set(out, "event.type", [etype])
    _set(out, "host.name", raw.get("endpoint.name"))
    _set(out, "host.hostname", raw.get("endpoint.name"))
    _set(out, "host.id", raw.get("agent.uuid"))
    _set(out, "host.type", raw.get("endpoint.type"))
    _set(out, "host.os.platform", raw.get("endpoint.os"))
    _set(out, "process.entity_id", raw.get("src.process.uid"))
    for algo in ("md5", "sha1", "sha256"):
        _set(out, f"process.hash.{algo}", raw.get(f"src.process.image.{algo}"))
    _set(out, "host.os.type", _OS.get(os_name))
    path = raw.get("tgt.file.path")
    if isinstance(path, str):
        _set(out, "file.path", path)
        base = _basename(path, windows)
        _set(out, "file.name", base)
        if "." in base.strip("."):
            _set(out, "file.extension", base.rsplit(".", 1)[1])
    _set(out, "file.size", raw.get("tgt.file.size"))
    old = raw.get("tgt.file.oldPath")
    if isinstance(old, str):
        _set(out, "file.Ext.original.path", old)
    exe = raw.get("src.process.image.path")
    if isinstance(exe, str):
        _set(out, "process.executable", exe)
    _set(out, "process.name", raw.get("src.process.name"))
    _set(out, "process.pid", raw.get("src.process.pid"))
    _set(out, "process.command_line", raw.get("src.process.cmdline"))
    _set(out, "process.parent.executable", raw.get("src.process.parent.image.path"))
    _set(out, "process.parent.name", raw.get("src.process.parent.name"))
    user = raw.get("src.process.user")
    if isinstance(user, str) and "\\" in user:
        # DOMAIN\name, split as the integration's pipeline does.
        domain, name = user.split("\\", 1)
        _set(out, "user.domain", domain)
        _set(out, "user.name", name)
    else:
        _set(out, "user.name", user)
    _set(out, "data_stream.dataset", "sentinel_one_cloud_funnel.event")
    _set(out, "data_stream.namespace", "default")
    _set(out, "data_stream.type", "logs")
    return out
