"""File events shaped as Elastic Defend writes them for Linux (``logs-endpoint.events.file-*``)."""

from __future__ import annotations

import base64
import datetime as dt
import grp
import os
import platform
import pwd
import socket
import uuid
from dataclasses import dataclass
from functools import lru_cache

from vigil import __version__
from vigil.sensor.procs import Proc

ECS_VERSION = "8.10.0"
DATASET = "endpoint.events.file"
INDEX = f"logs-{DATASET}-default"

# event.action -> event.type, as Defend reports them.
EVENT_TYPES = {
    "creation": ["creation"],
    "modification": ["change"],
    "rename": ["change"],
    "deletion": ["deletion"],
    "overwrite": ["change"],
}


@dataclass(slots=True)
class HostInfo:
    host: dict
    agent: dict

    @classmethod
    def local(cls) -> HostInfo:
        uname = os.uname()
        osrel = _os_release()
        os_id = osrel.get("ID", "linux")
        host_os = {
            "type": "linux",
            "name": "Linux",
            "family": osrel.get("ID_LIKE", os_id).split()[0]
            if os_id not in ("debian", "rhel", "fedora")
            else os_id,
            "platform": os_id,
            "version": osrel.get("VERSION_ID", ""),
            "full": osrel.get("PRETTY_NAME", ""),
            "kernel": f"{uname.release} {uname.version}",
        }
        hostname = socket.gethostname()
        host_id = _machine_id()
        host = {
            "name": hostname,
            "hostname": hostname,
            "id": host_id,
            "architecture": platform.machine(),
            "os": host_os,
        }
        agent_id = str(uuid.uuid5(uuid.NAMESPACE_OID, f"vigil-watch:{host_id}"))
        agent = {"type": "vigil", "version": __version__, "id": agent_id, "name": hostname}
        return cls(host, agent)


def _os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    key, sep, value = line.strip().partition("=")
                    if sep:
                        out[key] = value.strip().strip('"')
            return out
        except OSError:
            continue
    return out


def _machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path, encoding="ascii") as fh:
                value = fh.read().strip()
                if value:
                    return value
        except OSError:
            continue
    return socket.gethostname()


@lru_cache(maxsize=256)
def user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@lru_cache(maxsize=256)
def group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


@lru_cache(maxsize=4)
def _second(secs: int) -> str:
    return dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def timestamp(ns: int) -> str:
    """Nanosecond time as Defend prints it: UTC, up to 7 fraction digits without trailing zeros, Z."""
    secs, rem = divmod(ns, 1_000_000_000)
    frac = f"{rem // 100:07d}".rstrip("0")
    return f"{_second(secs)}.{frac}Z" if frac else f"{_second(secs)}Z"


def text(value: str) -> str:
    """A name, path or argument as valid UTF-8 (an intruder picks them): a byte that is not
    UTF-8 (kept by the file system decoding as a lone surrogate) is written ``\\xNN``."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value


def texts(values: list[str]) -> list[str]:
    return [text(v) for v in values]


@lru_cache(maxsize=4096)
def entity_id(agent_id: str, pid: int, start: float) -> str:
    """Defend's process.entity_id: base64 of agent id, pid and start time."""
    return base64.b64encode(f"{agent_id}-{pid}-{int(start)}".encode()).decode()


_ECS = {"version": ECS_VERSION}
_CONSTANT: dict[tuple[str, str], tuple[dict, list[str]]] = {}


def envelope(
    host: HostInfo,
    dataset: str,
    category: str,
    action: str,
    types: list[str],
    *,
    event_id: str,
    ts: str,
    message: str,
) -> dict:
    """What every Defend-shaped event carries besides its own fields. The parts that are the
    same in every event (agent, host, ecs, data_stream, event.category) are shared, not copied:
    no reader changes an event."""
    constant = _CONSTANT.get((dataset, category))
    if constant is None:
        constant = _CONSTANT[(dataset, category)] = (
            {"type": "logs", "dataset": dataset, "namespace": "default"},
            [category],
        )
    return {
        "@timestamp": ts,
        "agent": host.agent,
        "ecs": _ECS,
        "data_stream": constant[0],
        "event": {
            "kind": "event",
            "category": constant[1],
            "type": types,
            "action": action,
            "dataset": dataset,
            "module": "endpoint",
            "created": ts,
            "id": event_id,
        },
        "host": host.host,
        "message": message,
    }


def _file_fields(path: str) -> dict:
    directory, _, name = path.rpartition("/")
    fields: dict = {"path": path, "name": name, "directory": directory or "/"}
    stem, dot, ext = name.rpartition(".")
    if dot and stem and ext:
        fields["extension"] = ext
    return fields


def file_event(
    action: str,
    path: str,
    *,
    host: HostInfo,
    proc: Proc | None,
    pid: int,
    event_id: str,
    now_ns: int,
    old_path: str | None = None,
    stat: os.stat_result | None = None,
    parent_entity: str | None = None,
) -> dict:
    """One Defend-shaped Linux file event (``proc.start``: the kernel start time in boot ticks)."""
    ts = timestamp(now_ns)
    file = _file_fields(text(path))
    if stat is not None:
        file["inode"] = stat.st_ino
        file["size"] = stat.st_size
    if old_path is not None:
        file["Ext"] = {"original": _file_fields(text(old_path))}
    process: dict = {"pid": pid}
    doc = envelope(
        host,
        DATASET,
        "file",
        action,
        EVENT_TYPES[action],
        event_id=event_id,
        ts=ts,
        message="Endpoint file event",
    )
    doc["event"]["ingested"] = ts
    doc["file"] = file
    doc["process"] = process
    if proc is not None:
        process["entity_id"] = entity_id(host.agent["id"], pid, proc.start)
        if proc.executable:
            process["executable"] = text(proc.executable)
            process["name"] = process["executable"].rpartition("/")[2]
        if proc.args:
            process["args"] = texts(proc.args)
            process["args_count"] = len(proc.args)
            process["command_line"] = " ".join(process["args"])
        if proc.ppid is not None:
            process["parent"] = {"pid": proc.ppid}
            if parent_entity is not None:
                process["parent"]["entity_id"] = parent_entity
        process["Ext"] = {"attribution": proc.source}
        if proc.uid is not None:
            doc["user"] = {"id": proc.uid, "name": user_name(proc.uid)}
        if proc.gid is not None:
            doc["group"] = {"id": proc.gid, "name": group_name(proc.gid)}
    return doc


def health_event(message: str, *, host: HostInfo, event_id: str, now_ns: int, lost: int) -> dict:
    """A sensor-health record: the kernel queue overflowed and events were lost."""
    ts = timestamp(now_ns)
    return {
        "@timestamp": ts,
        "agent": dict(host.agent),
        "ecs": {"version": ECS_VERSION},
        "data_stream": {"type": "logs", "dataset": "vigil.sensor.health", "namespace": "default"},
        "event": {
            "kind": "metric",
            "category": ["host"],
            "type": ["info"],
            "action": "queue-overflow",
            "dataset": "vigil.sensor.health",
            "module": "vigil",
            "created": ts,
            "id": event_id,
        },
        "host": host.host,
        "message": message,
        "vigil": {"sensor": {"lost": lost}},
    }


def field_names(doc: dict, prefix: str = "") -> set[str]:
    """The dotted names of the leaves of a document (``process.parent.entity_id``, ...)."""
    out: set[str] = set()
    for key, value in doc.items():
        name = f"{prefix}{key}"
        out |= field_names(value, name + ".") if isinstance(value, dict) else {name}
    return out
