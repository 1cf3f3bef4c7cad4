"""Elastic Endgame events.

Two shapes are read:

- **ECS documents** of ``endgame-*`` indices (an ``endgame`` object beside ECS
  fields; ``event.category`` a string, ``@timestamp`` in epoch milliseconds)
  pass as they are.
- **The flat legacy schema** (``event_type``, ``event_subtype_full``,
  ``file_path``, ``process_path``, ``pid``, ``timestamp`` as a Windows
  FILETIME, as in Elasticsearch's EQL spec data) gains the ECS fields that
  detection rules read. The legacy fields stay where they are, as
  Elasticsearch's ``endgame-*`` test index keeps them, so legacy EQL queries
  still run; the Endgame identifiers are also copied under ``endgame.*`` as ECS
  Endgame documents carry them.

``event.action`` keeps the Endgame subtype (``file_create_event``), as ECS
Endgame documents do: Elastic's rules test ``event.action in ("creation",
"file_create_event")``. ``@timestamp`` is epoch milliseconds, computed from the
FILETIME as Elasticsearch's EQL DataLoader does.

Index: ``endgame-<version>`` from ``endgame.version`` or ``agent.version``,
else ``endgame-3.0.0``.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
from typing import Any

from vigil.errors import VigilError

DEFAULT_VERSION = "3.0.0"
# FILETIME counts 100 ns ticks from 1601-01-01; epoch ms = ticks / 10^4 - this.
_FILETIME_EPOCH_MS = 11_644_473_600_000

# event_subtype_full -> ECS event.type
_TYPES = {
    "file_create_event": ["creation"],
    "file_modify_event": ["change"],
    "file_delete_event": ["deletion"],
    "file_rename_event": ["change"],
    "creation_event": ["start"],
    "exec_event": ["start"],
    "fork_event": ["start"],
    "termination_event": ["end"],
    "already_running": ["info"],
    "registry_create_event": ["creation"],
    "registry_modify_event": ["change"],
    "registry_delete_event": ["deletion"],
    "ipv4_connection_attempt_event": ["start"],
    "ipv6_connection_attempt_event": ["start"],
    "ipv4_connection_accept_event": ["start"],
    "ipv6_connection_accept_event": ["start"],
    "ipv4_disconnect_received_event": ["end"],
    "ipv6_disconnect_received_event": ["end"],
    "request_event": ["protocol", "info"],
    "image_load_event": ["start"],
}
# Endgame identifiers that ECS Endgame documents keep under ``endgame.*``.
_ENDGAME_FIELDS = (
    "event_type_full",
    "event_subtype_full",
    "serial_event_id",
    "unique_pid",
    "unique_ppid",
    "opcode",
    "subtype",
)
# legacy field -> ECS field, copied when present.
_COPIES = (
    ("command_line", "process.command_line"),
    ("pid", "process.pid"),
    ("ppid", "process.parent.pid"),
    ("parent_process_path", "process.parent.executable"),
    ("parent_process_name", "process.parent.name"),
    ("md5", "process.hash.md5"),
    ("exit_code", "process.exit_code"),
    ("original_file_name", "process.pe.original_file_name"),
    ("user_name", "user.name"),
    ("user_domain", "user.domain"),
    ("registry_path", "registry.path"),
    ("registry_key", "registry.key"),
    ("registry_value", "registry.value"),
    ("source_address", "source.ip"),
    ("source_port", "source.port"),
    ("destination_address", "destination.ip"),
    ("destination_port", "destination.port"),
    ("protocol", "network.transport"),
    ("query_name", "dns.question.name"),
)
_DRIVE = re.compile(r"^[A-Za-z]:\\")


def looks_like(doc: dict) -> bool:
    """True for an ECS Endgame document or a legacy flat one."""
    if isinstance(doc.get("endgame"), dict):
        return True
    return "event_type" in doc and ("serial_event_id" in doc or "timestamp" in doc)


def index_for(doc: dict) -> str:
    eg = doc.get("endgame") if isinstance(doc.get("endgame"), dict) else {}
    agent = doc.get("agent") if isinstance(doc.get("agent"), dict) else {}
    version = eg.get("version") or agent.get("version") or DEFAULT_VERSION
    return f"endgame-{version}"


def filetime_to_epoch_ms(value: Any) -> int | None:
    """Epoch milliseconds of a Windows FILETIME (100 ns ticks since 1601), None if not an integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value // 10_000 - _FILETIME_EPOCH_MS


def _os_of(path: Any) -> str | None:
    if not isinstance(path, str) or not path:
        return None
    if _DRIVE.match(path) or path.startswith("\\\\") or "\\" in path:
        return "windows"
    if path.startswith("/"):
        return "linux"
    return None


def _basename(path: str) -> str:
    return ntpath.basename(path) if _os_of(path) == "windows" else posixpath.basename(path)


def _extension(name: str) -> str | None:
    stem = name.lstrip(".")
    if "." not in stem:
        return None
    ext = stem.rsplit(".", 1)[1]
    return ext or None


def _put(doc: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def from_legacy(raw: dict) -> dict:
    """The legacy document with the ECS fields added (see module doc)."""
    if "event_type" not in raw:
        raise VigilError("not an Endgame event: no event_type or endgame object")
    doc: dict = dict(raw)
    doc["endgame"] = {k: raw[k] for k in _ENDGAME_FIELDS if k in raw}
    event: dict[str, Any] = {"kind": "event"}
    if isinstance(raw.get("event_type"), str):
        event["category"] = raw["event_type"]
    subtype = raw.get("event_subtype_full")
    if isinstance(subtype, str):
        event["action"] = subtype
        if subtype in _TYPES:
            event["type"] = list(_TYPES[subtype])
    if isinstance(raw.get("serial_event_id"), int):
        event["sequence"] = raw["serial_event_id"]
    doc["event"] = event
    stamp = filetime_to_epoch_ms(raw.get("timestamp"))
    if stamp is not None:
        doc["@timestamp"] = stamp
    path = raw.get("file_path")
    if isinstance(path, str) and path:
        _put(doc, "file.path", path)
        name = raw.get("file_name") if isinstance(raw.get("file_name"), str) else _basename(path)
        _put(doc, "file.name", name)
        ext = _extension(name)
        if ext:
            _put(doc, "file.extension", ext)
    exe = raw.get("process_path")
    if isinstance(exe, str) and exe:
        _put(doc, "process.executable", exe)
    name = raw.get("process_name")
    if not isinstance(name, str) and isinstance(exe, str) and exe:
        name = _basename(exe)
    if isinstance(name, str):
        _put(doc, "process.name", name)
    for legacy, ecs in _COPIES:
        value = raw.get(legacy)
        if value is not None and value != "":
            _put(doc, ecs, value)
    os_type = next(
        (t for t in map(_os_of, (path, exe, raw.get("parent_process_path"), raw.get("registry_path"))) if t),
        None,
    )
    if isinstance(raw.get("registry_path"), str) or isinstance(raw.get("key_path"), str):
        os_type = os_type or "windows"
    if os_type:
        _put(doc, "host.os.type", os_type)
    return doc


def normalize(doc: dict) -> tuple[dict, str]:
    """The ECS document and its ``endgame-<version>`` index."""
    if isinstance(doc.get("endgame"), dict):
        return doc, index_for(doc)
    return from_legacy(doc), index_for(doc)
