"""A small client for a running ``vigil serve``: what ``vigil alerts --server`` uses."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from vigil.errors import VigilError

TOKEN_ENV = "VIGIL_TOKEN"


def resolve_token(token: str | None = None, token_file: str | None = None) -> str | None:
    """The token to send: ``--token``, else the first line of ``--token-file``, else ``$VIGIL_TOKEN``.

    A file or the environment keeps the token out of the process list and shell history.
    """
    if token:
        return token
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as f:
                text = f.readline(4096).strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise VigilError(
                f"cannot read the token file: {getattr(exc, 'strerror', None) or exc}", file=token_file
            ) from None
        if not text:
            raise VigilError("the token file is empty", file=token_file)
        return text
    return os.environ.get(TOKEN_ENV) or None


def add_token_options(parser: Any) -> None:
    """``--token`` and ``--token-file`` for a command that talks to ``--server``."""
    parser.add_argument("--token", help=f"token for --server (better: --token-file or ${TOKEN_ENV})")
    parser.add_argument("--token-file", metavar="PATH", help="read the token for --server from this file")


class Client:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.token = token if token is not None else resolve_token()
        if self.token and (not self.token.isascii() or not self.token.isprintable()):
            raise VigilError("the token must be printable ASCII (it travels in an HTTP header)")
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
            detail = exc.read(64 * 1024).decode(errors="replace")
            try:
                reason = json.loads(detail)["error"]["reason"]
            except (ValueError, KeyError, TypeError):
                reason = detail or exc.reason
            raise VigilError(f"{self.url}: {exc.code} {str(reason)[:300]}") from None
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
