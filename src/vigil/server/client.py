"""A small client for a running ``vigil serve``: what ``vigil alerts --server`` uses."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from vigil.errors import VigilError


class Client:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None) -> Any:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json" if raw is None else "application/x-ndjson")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            try:
                reason = json.loads(detail)["error"]["reason"]
            except (ValueError, KeyError, TypeError):
                reason = detail or exc.reason
            raise VigilError(f"{self.url}: {exc.code} {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise VigilError(f"cannot reach {self.url}: {getattr(exc, 'reason', exc)}") from None
        return json.loads(payload) if payload else None

    def alerts(self, **filters: Any) -> list[dict]:
        query = urlencode({k: v for k, v in filters.items() if v is not None})
        return self._call("GET", "/api/alerts" + (f"?{query}" if query else ""))["alerts"]

    def alert(self, uuid: str) -> dict | None:
        try:
            return self._call("GET", f"/api/alerts/{quote(uuid, safe='')}")
        except VigilError as exc:
            if ": 404 " in str(exc):
                return None
            raise

    def set_status(self, uuid: str, status: str) -> dict:
        return self._call("POST", f"/api/alerts/{quote(uuid, safe='')}/status", {"status": status})

    def rules(self) -> list[dict]:
        return self._call("GET", "/api/rules")["rules"]

    def set_enabled(self, rule_id: str, enabled: bool) -> dict:
        action = "enable" if enabled else "disable"
        return self._call("POST", f"/api/rules/{quote(rule_id, safe='')}/{action}", {})

    def runs(self, rule: str | None = None, limit: int = 100) -> list[dict]:
        query = urlencode({k: v for k, v in {"rule": rule, "limit": limit}.items() if v is not None})
        return self._call("GET", f"/api/runs?{query}")["runs"]

    def health(self) -> dict:
        return self._call("GET", "/health")

    def send(self, index: str, ndjson: bytes) -> dict:
        return self._call("POST", f"/events/{quote(index, safe='')}", raw=ndjson)

    def bulk(self, body: bytes) -> dict:
        return self._call("POST", "/_bulk", raw=body)
