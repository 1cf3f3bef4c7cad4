"""Elastic Endgame events: ECS documents of ``endgame-*`` indices pass as they
are; the flat legacy schema is mapped to ECS with its fields kept under
``endgame.*``.

Index: ``endgame-<version>`` from ``endgame.version`` or ``agent.version``,
else ``endgame-3.0.0`` (the default when no version is written).
"""

from __future__ import annotations

import ntpath
import posixpath
from datetime import UTC, datetime, timedelta
from typing import Any

from vigil.errors import VigilError

DEFAULT_VERSION = "3.0.0"
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_ACTIONS = {
    "file_create_event": ("creation", "creation"),
    "file_modify_event": ("modification", "change"),
    "file_delete_event": ("deletion", "deletion"),
    "file_rename_event": ("rename", "change"),
    "creation_event": ("start", "start"),
    "termination_event": ("end", "end"),
}


def looks_like(doc: dict) -> bool:
    """True for an ECS Endgame document or a legacy flat one."""
    if isinstance(doc.get("endgame"), dict):
        return True
    return "event_type" in doc and ("serial_event_id" in doc or "timestamp" in doc)


def _index(doc: dict) -> str:
    eg = doc.get("endgame") if isinstance(doc.get("endgame"), dict) else {}
    agent = doc.get("agent") if isinstance(doc.get("agent"), dict) else {}
    version = eg.get("version") or agent.get("version") or DEFAULT_VERSION
    return f"endgame-{version}"


def _filetime(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    stamp = _FILETIME_EPOCH + timedelta(microseconds=value // 10)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def normalize(doc: dict) -> tuple[dict, str]:
    """The ECS document and its ``endgame-<version>`` index."""
    if isinstance(doc.get("endgame"), dict):
        return doc, _index(doc)
    if "event_type" not in doc:
        raise VigilError("not an Endgame event: no event_type or endgame object")
    out: dict = {"endgame": dict(doc)}
    category = doc.get("event_type")
    if isinstance(category, str):
        out["event"] = {"category": category}
    sub = doc.get("event_subtype_full")
    if isinstance(sub, str):
        out.setdefault("event", {})["action"] = sub
        if sub in _ACTIONS:
            out["event"]["type"] = [_ACTIONS[sub][1]]
            out["event"]["action"] = _ACTIONS[sub][0]
    stamp = _filetime(doc.get("timestamp"))
    if stamp:
        out["@timestamp"] = stamp
    path = doc.get("file_path")
    windows = isinstance(path, str) and ("\\" in path or path[1:3] == ":\\")
    linux = isinstance(path, str) and path.startswith("/")
    if isinstance(path, str):
        base = ntpath.basename(path) if windows else posixpath.basename(path)
        out["file"] = {"path": path, "name": base}
        if "." in base.strip("."):
            out["file"]["extension"] = base.rsplit(".", 1)[1]
    exe = doc.get("process_path")
    proc: dict = {}
    if isinstance(exe, str):
        proc["executable"] = exe
        proc["name"] = ntpath.basename(exe) if "\\" in exe else posixpath.basename(exe)
        linux = linux or exe.startswith("/")
        windows = windows or "\\" in exe
    if isinstance(doc.get("pid"), int):
        proc["pid"] = doc["pid"]
    if proc:
        out["process"] = proc
    if windows or linux:
        out["host"] = {"os": {"type": "windows" if windows else "linux"}}
    return out, _index(doc)
