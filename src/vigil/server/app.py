"""The HTTP side of ``vigil serve``: ingest (NDJSON and Elasticsearch ``_bulk``) and the REST API.

Shippers built for Elasticsearch (Filebeat, Elastic Agent, Logstash, Vector,
Fluent Bit) probe the cluster before sending: ``GET /`` for the version (the
8.x clients also require the ``X-Elastic-Product`` header), the license,
templates and ILM policies. Those get minimal, well-formed answers that say
"exists", so the shipper goes straight to ``_bulk``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from vigil import __version__
from vigil.errors import VigilError
from vigil.events.documents import TIME_FIELDS
from vigil.scheduler.runner import Scheduler, rule_id
from vigil.server import ui
from vigil.server.bulk import BulkRequestError, Item, bulk_response, parse_bulk, parse_ndjson, source_item
from vigil.server.guard import authorized, cross_site, host_allowed, json_content_type
from vigil.server.names import InvalidIndexName
from vigil.server.transport import BoundedHTTPServer, HttpError, Limits, body_length, inflate, read_body
from vigil.store.alerts import AlertStore
from vigil.store.events import EventStore

log = logging.getLogger("vigil.server")

ES_VERSION = "8.11.0"  # the version shippers are told; 8.x speaks the _bulk they send
_SETUP_PREFIXES = (
    "_index_template",
    "_component_template",
    "_template",
    "_ilm",
    "_ingest",
    "_data_stream",
    "_security",
)


@dataclass
class Service:
    """What the HTTP handlers share."""

    events: EventStore
    alerts: AlertStore
    scheduler: Scheduler
    token: str | None = None
    started_ms: int = 0
    limits: Limits = field(default_factory=Limits)
    hosts: frozenset[str] | None = None  # Host names answered; None: any
    port: int = 0
    time_fields: tuple[str, ...] = TIME_FIELDS
    http: Any = None  # the BoundedHTTPServer, for /health
    ui: Any = None  # the pages' state (vigil.server.ui.UiState), made on first use
    ingest: dict = field(default_factory=lambda: {"requests": 0, "accepted": 0, "rejected": 0})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count_ingest(self, accepted: int, rejected: int) -> None:
        with self.lock:
            self.ingest["requests"] += 1
            self.ingest["accepted"] += accepted
            self.ingest["rejected"] += rejected


def banner() -> dict:
    return {
        "name": "vigil",
        "cluster_name": "vigil",
        "cluster_uuid": "vigil-0000000000000000000",
        "version": {
            "number": ES_VERSION,
            "build_flavor": "default",
            "build_type": "tar",
            "build_hash": "vigil",
            "build_date": "2023-11-04T10:04:57.184859352Z",
            "build_snapshot": False,
            "lucene_version": "9.8.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
        "vigil_version": __version__,
    }


_LICENSE = {"status": "active", "uid": "vigil", "type": "basic", "issue_date_in_millis": 0, "max_nodes": 1000}
_STATE_CHANGES = ("POST", "PUT", "DELETE")


class Handler(BaseHTTPRequestHandler):
    server_version = "vigil"
    sys_version = ""  # the Python version is nobody's business
    protocol_version = "HTTP/1.1"
    service: Service  # set on the subclass made by make_server
    server: BoundedHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def handle_one_request(self) -> None:
        # The head of the next request (keep-alive idle time included) must come in time.
        self.server.deadline(self.connection, self.service.limits.head_timeout)
        super().handle_one_request()

    def handle_expect_100(self) -> bool:
        # "100 Continue" invites the body: it is sent only once the request is accepted.
        return True

    # --- plumbing -------------------------------------------------------------
    def _send(self, status: int, body: Any = None, *, head: bool = False) -> None:
        data = b"" if body is None else orjson.dumps(body, default=str)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status != 401:
            # Elasticsearch sends it on every authenticated response (elastic/elasticsearch#73434);
            # the 8.x clients refuse a 2xx without it ("the server is not Elasticsearch").
            self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="vigil"')
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _error(self, status: int, type_: str, reason: str, *, head: bool = False) -> None:
        cause = {"type": type_, "reason": reason}
        self._send(status, {"error": {"root_cause": [cause], **cause}, "status": status}, head=head)

    def _admit(self, method: str, path: str) -> int | None:
        """Check a request before reading its body; returns the body's framing (see body_length)."""
        svc = self.service
        length = body_length(self.headers)
        if length != 0:
            # Until the body is read, the connection cannot carry another request.
            self.close_connection = True
        if not host_allowed(self.headers.get("Host"), svc.hosts, svc.port):
            raise HttpError(403, "security_exception", "this server does not answer to that Host name")
        if ui.is_ui_path(path):  # the pages: a session cookie and a CSRF token instead (vigil.server.ui)
            return ui.admit(self, method, path, length)
        if not authorized(svc.token, self.headers.get("Authorization")):
            raise HttpError(401, "security_exception", "missing or wrong token")
        if method in _STATE_CHANGES:
            why = cross_site(self.headers)
            if why:
                raise HttpError(403, "security_exception", f"cross-site request refused ({why})")
            if (length != 0 or path.startswith("/api/")) and not json_content_type(self.headers):
                shown = (self.headers.get("Content-Type") or "")[:100]
                raise HttpError(
                    406, "illegal_argument_exception", f"Content-Type header [{shown}] is not supported"
                )
        return length

    def _body(self, length: int | None) -> bytes:
        limits = self.service.limits
        if length == 0:
            return b""
        if "100-continue" in (self.headers.get("Expect") or "").lower():
            self.send_response_only(100)
            self.end_headers()
        self.server.deadline(self.connection, limits.body_timeout)
        data = read_body(self.rfile, length, limits)
        self.server.deadline(self.connection, None)
        self.close_connection = False  # the body is read: the connection may be kept
        return inflate(data, self.headers.get("Content-Encoding") or "", limits)

    def _dispatch(self, method: str) -> None:
        self.server.deadline(self.connection, None)
        try:
            url = urlsplit(self.path)
            length = self._admit(method, url.path)
            if method == "HEAD":
                return self._head(url.path)
            body = self._body(length) if method in _STATE_CHANGES else b""
            parts = [unquote(p) for p in url.path.split("/") if p]
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            route(self, method, parts, query, body)
        except HttpError as exc:
            self.close_connection = self.close_connection or exc.close
            self._error(exc.status, exc.type, exc.reason, head=method == "HEAD")
        except VigilError as exc:
            self._error(400, "vigil_error", exc.render())
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:  # never kill the server over one request, never tell the client why
            log.exception("request failed: %s %s", method, self.path[:200])
            self.close_connection = True
            self._error(500, "internal_error", "internal error; the server log has the details")

    def _head(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        known = not parts or parts[0] in _SETUP_PREFIXES or parts[0] in ("_license", "_xpack", "health")
        self._send(200 if known else 404, head=True)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


def route(h: Handler, method: str, parts: list[str], query: dict, body: bytes) -> None:
    svc = h.service
    if not parts:
        return h._send(200, banner())
    head = parts[0]
    if head == "health" and method == "GET":
        return h._send(200, health(svc))
    if head == "api":
        return api(h, method, parts[1:], query, body)
    if head == "ui":
        return ui.handle(h, method, parts[1:], query, body)
    if head == "events" and len(parts) == 2 and method == "POST":
        return ingest_ndjson(h, parts[1], body)
    if parts[-1] == "_bulk" and method in ("POST", "PUT") and len(parts) <= 2:
        return ingest_bulk(h, parts[0] if len(parts) == 2 else None, body)
    if len(parts) in (2, 3) and parts[1] in ("_doc", "_create") and method in ("POST", "PUT"):
        return ingest_one(h, parts, body)
    if head == "_license":
        return h._send(200, {"license": _LICENSE})
    if head == "_xpack":
        features = {name: {"available": True, "enabled": True} for name in ("ilm", "security", "monitoring")}
        return h._send(200, {"build": {"hash": "vigil"}, "license": _LICENSE, "features": features})
    if head in _SETUP_PREFIXES:
        return setup_call(h, method, parts)
    if head.startswith("_") and method == "GET":
        # _nodes, _cluster/health and similar probes: a small healthy answer.
        return h._send(200, {"cluster_name": "vigil", "status": "green", "nodes": {}})
    return h._error(404, "not_found", f"no route for {method} /{_clip('/'.join(parts))}")


def setup_call(h: Handler, method: str, parts: list[str]) -> None:
    """Template, ILM policy and pipeline set-up that shippers do: acknowledged, nothing stored."""
    if method in ("PUT", "POST", "DELETE"):
        return h._send(200, {"acknowledged": True})
    name = parts[-1] if len(parts) > 1 else "*"
    kind = parts[0]
    if kind == "_index_template":
        return h._send(
            200, {"index_templates": [{"name": name, "index_template": {"index_patterns": [name + "*"]}}]}
        )
    if kind == "_ilm":
        return h._send(200, {name: {"version": 1, "policy": {"phases": {"hot": {"actions": {}}}}}})
    if kind == "_data_stream":
        return h._send(200, {"data_streams": [{"name": name, "timestamp_field": {"name": "@timestamp"}}]})
    return h._send(200, {name: {}})


def _now(svc: Service) -> int:
    return svc.scheduler.clock.now_ms()


def ingest_bulk(h: Handler, default_index: str | None, body: bytes) -> None:
    svc = h.service
    t0 = time.monotonic()
    try:
        items = parse_bulk(body, default_index, svc.time_fields)
    except BulkRequestError as exc:
        svc.count_ingest(0, 0)
        return h._send(400, exc.body())
    writes = [i.write for i in items if i.write is not None]
    # One transaction, committed before the answer: what we say was stored, is.
    results = svc.events.write(writes, _now(svc)) if writes else []
    resp = bulk_response(items, results, int((time.monotonic() - t0) * 1000))
    accepted = sum(1 for r in results if r.error is None)
    svc.count_ingest(accepted, len(items) - accepted)
    h._send(200, resp)


def ingest_ndjson(h: Handler, index: str, body: bytes) -> None:
    """Plain NDJSON: all lines stored, or (any line bad) none, with the first bad lines named."""
    svc = h.service
    try:
        writes, errors, bad = parse_ndjson(body, index, svc.time_fields)
    except InvalidIndexName as exc:
        return h._send(400, {"error": exc.error(), "status": 400})
    if bad:
        svc.count_ingest(0, bad)
        return h._send(400, {"accepted": 0, "errors": errors, "error_count": bad})
    results = svc.events.write(writes, _now(svc)) if writes else []
    failed = [{"line": None, "column": 1, "reason": r.error["reason"]} for r in results if r.error]
    svc.count_ingest(len(results) - len(failed), len(failed))
    h._send(200 if not failed else 400, {"accepted": len(results) - len(failed), "errors": failed[:100]})


def ingest_one(h: Handler, parts: list[str], body: bytes) -> None:
    from vigil.store.events import Write

    svc = h.service
    doc_id = parts[2] if len(parts) == 3 else None
    item = Item("create" if parts[1] == "_create" else "index", parts[0], doc_id)
    source_item(item, body.strip(), svc.time_fields)
    if item.write is None:
        return h._send(item.status, {"error": item.error, "status": item.status})
    w = item.write
    (r,) = svc.events.write([Write(w.index, w.doc, w.id, w.op)], _now(svc))
    if r.error:
        return h._send(r.status, {"error": r.error, "status": r.status})
    svc.count_ingest(1, 0)
    h._send(r.status, {"_index": r.index, "_id": r.id, "_version": 1, "result": r.result})


def _limit(query: dict, default: int | None, maximum: int = 10_000) -> int | None:
    """A ``limit`` query parameter: a plain number, at most ``maximum``; anything else the default."""
    text = query.get("limit")
    if text is None or not (text.isascii() and text.isdecimal()) or len(text) > 9:
        return default
    return min(int(text), maximum)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def api(h: Handler, method: str, parts: list[str], query: dict, body: bytes) -> None:
    svc = h.service
    sched = svc.scheduler
    if parts == ["alerts"] and method == "GET":
        rows = svc.alerts.list(
            rule=query.get("rule"),
            severity=query.get("severity"),
            host=query.get("host"),
            status=query.get("status"),
            since=query.get("since"),
            until=query.get("until"),
            limit=_limit(query, None),
        )
        return h._send(200, {"alerts": rows, "count": len(rows)})
    if len(parts) == 2 and parts[0] == "alerts" and method == "GET":
        doc = svc.alerts.get(parts[1])
        return h._send(200, doc) if doc else h._error(404, "not_found", f"no alert {parts[1]}")
    if len(parts) == 3 and parts[0] == "alerts" and parts[2] == "status" and method in ("POST", "PUT"):
        try:
            status = orjson.loads(body).get("status")
        except (orjson.JSONDecodeError, AttributeError):
            return h._error(400, "parse_exception", 'body must be {"status": "open|acknowledged|closed"}')
        if svc.alerts.get(parts[1]) is None:
            return h._error(404, "not_found", f"no alert {_clip(parts[1])}")
        return h._send(200, svc.alerts.set_status(parts[1], _clip(str(status))))
    if parts == ["rules"] and method == "GET":
        return h._send(200, {"rules": [rule_summary(sched, r) for r in sched.rules.values()]})
    if (
        len(parts) == 3
        and parts[0] == "rules"
        and parts[2] in ("enable", "disable")
        and method in ("POST", "PUT")
    ):
        if parts[1] not in sched.rules:
            return h._error(404, "not_found", f"no rule {_clip(parts[1])}")
        sched.set_enabled(parts[1], parts[2] == "enable")
        return h._send(200, rule_summary(sched, sched.rules[parts[1]]))
    if parts == ["runs"] and method == "GET":
        return h._send(200, {"runs": sched.runs.runs(query.get("rule"), _limit(query, 100))})
    return h._error(404, "not_found", f"no API route {method} /api/{_clip('/'.join(parts))}")


def rule_summary(sched: Scheduler, rule: Any) -> dict:
    """One rule as ``vigil rules list`` shows it, plus what the scheduler knows of it."""
    rid = rule_id(rule)
    state = sched.runs.state(rid)
    return {
        "rule_id": rid,
        "name": getattr(rule, "name", rid),
        "type": getattr(rule, "type", None),
        "severity": getattr(rule, "severity", None),
        "risk_score": getattr(rule, "risk_score", None),
        "interval": getattr(rule, "interval", None),
        "from": getattr(rule, "from_", None),
        "max_signals": getattr(rule, "max_signals", None),
        "enabled": sched.enabled(rule),
        "runnable": sched.runnable(rule),
        "building_block": getattr(rule, "building_block_type", None) is not None,
        "version": getattr(rule, "version", None),
        "source": getattr(rule, "source", None),
        "last_run_ms": state.last_started_ms,
        "covered_to_ms": state.covered_to_ms,
    }


def health(svc: Service) -> dict:
    rules = list(svc.scheduler.rules.values())
    totals = svc.scheduler.runs.totals()
    return {
        "status": "ok",
        "version": __version__,
        "now_ms": _now(svc),
        "started_ms": svc.started_ms,
        "rules": {
            "total": len(rules),
            "enabled": sum(1 for r in rules if svc.scheduler.enabled(r)),
            "runnable": sum(1 for r in rules if svc.scheduler.runnable(r)),
        },
        "runs": dict(
            totals,
            running=[
                {"rule_id": rid, "started_ms": now, "window_from_ms": a, "window_to_ms": b}
                for rid, (now, a, b) in list(svc.scheduler.running.items())
            ],
        ),
        "ingest": dict(svc.ingest, stored=svc.events.count(), last_ingested_ms=svc.events.last_ingested_ms()),
        "http": {
            "connections": svc.http.connections() if svc.http else 0,
            "max_connections": svc.limits.max_connections,
            "refused_connections": svc.http.refused if svc.http else 0,
        },
        "alerts": svc.alerts.count(),
    }


def make_server(svc: Service, host: str, port: int) -> BoundedHTTPServer:
    handler = type("BoundHandler", (Handler,), {"service": svc, "timeout": svc.limits.io_timeout})
    attrs: dict[str, Any] = {"limits": svc.limits}
    if ":" in host:  # an IPv6 address such as ::1 or ::
        attrs["address_family"] = socket.AF_INET6
    server_cls = type("VigilHTTPServer", (BoundedHTTPServer,), attrs)
    server = server_cls((host, port), handler)
    svc.port = server.server_address[1]
    svc.http = server
    return server
