"""Elastic Common Schema field types for the fields detection rules use.

Only what changes how a value is read matters here: numbers, dates, IPs,
booleans. Every other ECS string field is ``keyword``, which is also what
Elasticsearch's dynamic mapping gives an unknown string, so it needs no entry.
Exact names come first; suffix rules cover the many nested copies of the same
field set (``process.parent.pid``, ``process.group_leader.pid``...).
"""

from __future__ import annotations

# Exact ECS field names whose type is not keyword.
FIELDS: dict[str, str] = {
    "@timestamp": "date",
    "event.created": "date",
    "event.ingested": "date",
    "event.start": "date",
    "event.end": "date",
    "event.duration": "long",
    "event.sequence": "long",
    "event.severity": "long",
    "event.risk_score": "float",
    "event.risk_score_norm": "float",
    "file.size": "long",
    "file.created": "date",
    "file.ctime": "date",
    "file.mtime": "date",
    "file.accessed": "date",
    "file.Ext.entropy": "double",
    "file.Ext.header_bytes": "keyword",
    "host.uptime": "long",
    "host.ip": "ip",
    "host.cpu.usage": "scaled_float",
    "process.uptime": "long",
    "process.exit_code": "long",
    "process.args_count": "long",
    "process.Ext.relative_file_creation_time": "double",
    "process.Ext.relative_file_name_modify_time": "double",
    "process.thread.id": "long",
    "process.pe.Ext.entropy": "double",
    "process.interactive": "boolean",
    "process.tty.char_device.major": "long",
    "process.tty.char_device.minor": "long",
    "process.Ext.effective_parent.pid": "long",
    "dll.Ext.relative_file_creation_time": "double",
    "dll.Ext.relative_file_name_modify_time": "double",
    "dll.code_signature.trusted": "boolean",
    "dll.code_signature.exists": "boolean",
    "dll.Ext.size": "long",
    "registry.data.bytes": "keyword",
    "network.bytes": "long",
    "network.packets": "long",
    "network.iana_number": "keyword",
    "source.ip": "ip",
    "source.port": "long",
    "source.bytes": "long",
    "source.packets": "long",
    "destination.ip": "ip",
    "destination.port": "long",
    "destination.bytes": "long",
    "destination.packets": "long",
    "client.ip": "ip",
    "client.port": "long",
    "client.bytes": "long",
    "server.ip": "ip",
    "server.port": "long",
    "server.bytes": "long",
    "observer.ip": "ip",
    "related.ip": "ip",
    "dns.resolved_ip": "ip",
    "dns.question.type": "keyword",
    "http.response.status_code": "long",
    "http.response.bytes": "long",
    "http.request.bytes": "long",
    "user.id": "keyword",
    "group.id": "keyword",
    "user.group.id": "keyword",
    "winlog.event_id": "keyword",
    "winlog.record_id": "keyword",
    "winlog.process.pid": "long",
    "winlog.process.thread.id": "long",
    "event.code": "keyword",
    "powershell.sequence": "long",
    "powershell.total": "long",
    "powershell.file.script_block_entropy_bits": "double",
    "powershell.file.script_block_length": "long",
    "auditd.data.a0": "keyword",
    "threat.indicator.ip": "ip",
    "threat.indicator.port": "long",
}

# Field-name endings shared by every nested copy of an ECS field set.
SUFFIXES: tuple[tuple[str, str], ...] = (
    (".pid", "long"),
    (".ppid", "long"),
    (".pgid", "long"),
    (".sid", "keyword"),
    (".args_count", "long"),
    (".entropy", "double"),
    (".exit_code", "long"),
    (".port", "long"),
    (".bytes", "long"),
    (".size", "long"),
    (".uptime", "long"),
    (".start", "date"),
    (".end", "date"),
    (".created", "date"),
    (".mtime", "date"),
    (".ctime", "date"),
    (".accessed", "date"),
    (".ip", "ip"),
    (".trusted", "boolean"),
    (".exists", "boolean"),
    (".interactive", "boolean"),
    (".thread.id", "long"),
    (".id", "keyword"),
    (".address", "keyword"),
)


def ecs_type(name: str) -> str | None:
    """The ECS type of a field name, or None when ECS does not say."""
    t = FIELDS.get(name)
    if t is not None:
        return t
    for suffix, typ in SUFFIXES:
        if name.endswith(suffix):
            return typ
    return None
