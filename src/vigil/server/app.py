"""The HTTP side of ``vigil serve``: ingest (NDJSON and Elasticsearch ``_bulk``) and the REST API.

Shippers built for Elasticsearch (Filebeat, Elastic Agent, Logstash, Vector,
Fluent Bit) probe the cluster before sending: ``GET /`` for the version (the
8.x clients also require the ``X-Elastic-Product`` header), the license,
templates and ILM policies. Those get minimal, well-formed answers that say
"exists", so the shipper goes straight to ``_bulk``.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import logging
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from vigil import __version__
from vigil.errors import VigilError
from vigil.scheduler.runner import Scheduler, rule_id
from vigil.server.bulk import BulkRequestError, as_ecs, bulk_response, parse_bulk, parse_ndjson
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


# Elasticsearch's default http.max_content_length; shippers size their batches under it.
MAX_CONTENT_LENGTH = 100 * 1024 * 1024


class BodyTooLarge(Exception):
    pass


_LICENSE = {"status": "active", "uid": "vigil", "type": "basic", "issue_date_in_millis": 0, "max_nodes": 1000}


class Handler(BaseHTTPRequestHandler):
    server_version = "vigil"
    protocol_version = "HTTP/1.1"
    service: Service  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

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
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _error(self, status: int, type_: str, reason: str) -> None:
        cause = {"type": type_, "reason": reason}
        self._send(status, {"error": {"root_cause": [cause], **cause}, "status": status})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_CONTENT_LENGTH:
            raise BodyTooLarge(length)
        data = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = self._read_chunked()
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            data = gzip.decompress(data)
        elif encoding == "deflate":
            data = zlib.decompress(data)
        return data

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    def _authorized(self) -> bool:
        token = self.service.token
        if not token:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme in ("bearer", "apikey"):
            return hmac.compare_digest(value.strip(), token)
        if scheme == "basic":  # shippers configured with a password send it here
            try:
                _, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except ValueError:
                return False
            return hmac.compare_digest(password, token)
        return False

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._body() if method in ("POST", "PUT") else b""
        except BodyTooLarge as exc:
            self.close_connection = True
            self._error(
                413,
                "content_too_long_exception",
                f"request body of {exc.args[0]} bytes is over {MAX_CONTENT_LENGTH}",
            )
            return
        except (OSError, ValueError, EOFError, zlib.error) as exc:
            self._error(400, "parse_exception", f"unreadable request body: {exc}")
            return
        if not self._authorized():
            self._error(401, "security_exception", "missing or wrong token")
            return
        try:
            route(self, method, parts, query, body)
        except VigilError as exc:
            self._error(400, "vigil_error", exc.render())
        except BrokenPipeError:
            pass
        except Exception as exc:  # never kill the server over one request
            log.exception("request failed")
            self._error(500, "internal_error", f"{type(exc).__name__}: {exc}")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        url = urlsplit(self.path)
        if not self._authorized():
            self._send(401, head=True)
            return
        parts = [p for p in url.path.split("/") if p]
        known = not parts or parts[0] in _SETUP_PREFIXES or parts[0] in ("_license", "_xpack", "health")
        self._send(200 if known else 404, head=True)

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
    return h._error(404, "not_found", f"no route for {method} /{'/'.join(parts)}")


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
        items = parse_bulk(body, default_index)
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
    """Plain NDJSON: all lines stored, or (any line bad) none, with each bad line named."""
    svc = h.service
    writes, errors = parse_ndjson(body, index)
    if errors:
        svc.count_ingest(0, len(errors))
        return h._send(400, {"accepted": 0, "errors": errors})
    results = svc.events.write(writes, _now(svc)) if writes else []
    svc.count_ingest(len(results), 0)
    h._send(200, {"accepted": len(results), "errors": []})


def ingest_one(h: Handler, parts: list[str], body: bytes) -> None:
    from vigil.store.events import Write

    svc = h.service
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return h._error(400, "document_parsing_exception", f"failed to parse: {exc}")
    if not isinstance(doc, dict):
        return h._error(400, "document_parsing_exception", "source is not a JSON object")
    op = "create" if parts[1] == "_create" else "index"
    try:
        index, doc = as_ecs(parts[0], doc)
    except VigilError as exc:
        return h._error(400, "document_parsing_exception", exc.message)
    (r,) = svc.events.write([Write(index, doc, parts[2] if len(parts) == 3 else None, op)], _now(svc))
    if r.error:
        return h._send(r.status, {"error": r.error, "status": r.status})
    svc.count_ingest(1, 0)
    h._send(r.status, {"_index": r.index, "_id": r.id, "_version": 1, "result": r.result})


def api(h: Handler, method: str, parts: list[str], query: dict, body: bytes) -> None:
    svc = h.service
    sched = svc.scheduler
    if parts == ["alerts"] and method == "GET":
        limit = query.get("limit")
        rows = svc.alerts.list(
            rule=query.get("rule"),
            severity=query.get("severity"),
            host=query.get("host"),
            status=query.get("status"),
            since=query.get("since"),
            until=query.get("until"),
            limit=int(limit) if limit and limit.isdigit() else None,
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
            return h._error(404, "not_found", f"no alert {parts[1]}")
        return h._send(200, svc.alerts.set_status(parts[1], str(status)))
    if parts == ["rules"] and method == "GET":
        return h._send(200, {"rules": [rule_summary(sched, r) for r in sched.rules.values()]})
    if (
        len(parts) == 3
        and parts[0] == "rules"
        and parts[2] in ("enable", "disable")
        and method in ("POST", "PUT")
    ):
        if parts[1] not in sched.rules:
            return h._error(404, "not_found", f"no rule {parts[1]}")
        sched.set_enabled(parts[1], parts[2] == "enable")
        return h._send(200, rule_summary(sched, sched.rules[parts[1]]))
    if parts == ["runs"] and method == "GET":
        limit = query.get("limit", "100")
        return h._send(
            200, {"runs": sched.runs.runs(query.get("rule"), int(limit) if limit.isdigit() else 100)}
        )
    return h._error(404, "not_found", f"no API route {method} /api/{'/'.join(parts)}")


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
        "alerts": svc.alerts.count(),
    }


def make_server(svc: Service, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"service": svc})
    server_cls = ThreadingHTTPServer
    if ":" in host:  # an IPv6 address such as ::1 or ::
        server_cls = type("V6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    server = server_cls((host, port), handler)
    server.daemon_threads = True
    return server
