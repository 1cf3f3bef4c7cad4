"""Who may use the pages: the server's token, exchanged once for a session cookie.

With ``--token`` (required off loopback) the login form takes the token and sets a
session cookie: random, ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no
other site's page sends it), limited to ``/ui``. Sessions live in the server's
memory and end after :data:`SESSION_SECONDS` or at logout or restart. Without a token
(loopback only) the pages are open, as the API is.

Every change (a form ``POST``) carries a CSRF token: an HMAC of the session, under a
key drawn at start-up, that only a page of this server can read. The transport's
checks still apply first: ``Host`` must name this server, and a request a browser
marks as cross-site (``Origin``, ``Sec-Fetch-Site``) changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from http.cookies import CookieError, SimpleCookie
from typing import Any

COOKIE = "vigil_session"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 1000


class Sessions:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._sessions: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            expired = [s for s, until in self._sessions.items() if until < now]
            for s in expired:
                del self._sessions[s]
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[min(self._sessions, key=self._sessions.__getitem__)]
            self._sessions[sid] = now + SESSION_SECONDS
        return sid

    def valid(self, sid: str | None) -> bool:
        if not sid:
            return False
        with self._lock:
            until = self._sessions.get(sid)
            if until is None:
                return False
            if until < time.monotonic():
                del self._sessions[sid]
                return False
            return True

    def end(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    def csrf(self, sid: str | None) -> str:
        """The CSRF token of a session (of the open pages when ``sid`` is None)."""
        return hmac.new(self._key, (sid or "open").encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, sid: str | None, sent: str | None) -> bool:
        return bool(sent) and sent.isascii() and hmac.compare_digest(self.csrf(sid), sent)


def session_id(headers: Any) -> str | None:
    """The session cookie's value, if the request carries one."""
    raw = headers.get("Cookie")
    if not raw or len(raw) > 8192:
        return None
    try:
        cookie = SimpleCookie()
        cookie.load(raw)
    except CookieError:
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel else None


def set_cookie(sid: str) -> str:
    return f"{COOKIE}={sid}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}"


def clear_cookie() -> str:
    return f"{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"
