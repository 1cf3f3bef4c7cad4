"""Who may talk to ``vigil serve``: the token, the ``Host`` a request names, where it comes from.

A browser on the analyst's machine can reach a server on 127.0.0.1. Two things keep
a web page the analyst visits from using it:

- DNS rebinding: a page on ``attacker.example`` re-pointed at 127.0.0.1 still sends
  ``Host: attacker.example``; only the names the server listens on are answered;
- cross-site requests: a state change must say it is JSON (``Content-Type``), which a
  page can only send to another origin after a CORS preflight this server never
  grants; and a request a browser marks as coming from another site (``Origin``,
  ``Sec-Fetch-Site``) may not change anything.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from vigil.errors import VigilError

# Elasticsearch's own request types (RestController): anything else on a state change is refused.
JSON_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/vnd.elasticsearch+json",
        "application/vnd.elasticsearch+x-ndjson",
    }
)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token(token: str | None, host: str) -> None:
    """Refuse a token that cannot be sent safely, or (off loopback) that is easy to guess."""
    if token is None:
        if not is_loopback(host):
            raise VigilError(
                f"refusing to listen on {host} without --token: anyone on the network could read alerts"
            )
        return
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise VigilError("the token must be printable ASCII without spaces (it travels in an HTTP header)")
    if not is_loopback(host) and len(token) < MIN_TOKEN_LENGTH:
        raise VigilError(
            f"refusing a token of {len(token)} characters off loopback: use at least {MIN_TOKEN_LENGTH} "
            "(e.g. openssl rand -hex 32)"
        )


def allowed_hosts(listen_host: str, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """The ``Host`` names answered; None when any is (a wildcard address and no ``--allow-host``)."""
    names = {n.strip().lower().strip("[]") for n in extra if n.strip()}
    host = listen_host.lower().strip("[]")
    if host in WILDCARDS:
        return frozenset(names | LOOPBACK_NAMES) if names else None
    names.add(host)
    if is_loopback(host):
        names |= LOOPBACK_NAMES
    return frozenset(names)


def split_host(value: str) -> tuple[str, str | None]:
    """``Host`` header -> (name, port or None); ``[::1]:9200`` -> (``::1``, ``9200``)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else None
    name, sep, port = value.rpartition(":")
    if not sep or ":" in name:  # no port, or a bare IPv6 address
        return value, None
    return name, port


def host_allowed(header: str | None, allowed: frozenset[str] | None, port: int) -> bool:
    if allowed is None:
        return True
    if not header:
        return False
    name, sent_port = split_host(header)
    return name in allowed and (sent_port is None or sent_port == str(port))


def cross_site(headers: Any) -> str | None:
    """Why a browser request comes from another site, or None."""
    site = (headers.get("Sec-Fetch-Site") or "").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {site}"
    origin = headers.get("Origin")
    if origin is None:
        return None
    parts = urlsplit(origin.strip())
    host = (headers.get("Host") or "").strip().lower()
    if parts.scheme not in ("http", "https") or parts.netloc.lower() != host:
        return "Origin is another site"
    return None


def json_content_type(headers: Any) -> bool:
    media = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    return media in JSON_TYPES


def authorized(token: str | None, header: str | None) -> bool:
    """``Authorization`` carries the token: ``Bearer``, ``ApiKey``, or Basic with it as the password.

    Compared as bytes in constant time; a header that is not ASCII can never match.
    """
    if not token:
        return True
    if not header or not header.isascii():
        return False
    scheme, _, value = header.strip().partition(" ")
    expected = token.encode()
    scheme = scheme.lower()
    if scheme in ("bearer", "apikey"):
        return hmac.compare_digest(value.strip().encode(), expected)
    if scheme == "basic":  # shippers configured with a password send it here
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        _, _, password = decoded.partition(b":")
        return hmac.compare_digest(password, expected)
    return False
