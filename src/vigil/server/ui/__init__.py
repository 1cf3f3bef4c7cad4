"""The triage pages of ``vigil serve``, under ``/ui/`` on the API's port.

Pages are HTML rendered on the server with every value escaped
(:mod:`vigil.server.ui.html`); the browser gets them with a Content-Security-Policy
that allows only this server's own stylesheet and script (``static/``), so no markup
an event smuggles in could run even if it reached the page. Changes are form posts
with a CSRF token; the same token as the API's opens a session (:mod:`.auth`).
Nothing is fetched from anywhere else, and nothing is built: the package's files are
the whole front end.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vigil.errors import VigilError
from vigil.server.guard import authorized, cross_site
from vigil.server.transport import HttpError
from vigil.server.ui import auth, pages
from vigil.server.ui.html import Safe, hidden, t
from vigil.server.ui.queries import SEVERITIES, SORTS, AlertQueries, Filters
from vigil.store.exceptions import ExceptionStore, engine_factory, entries_for

PREFIX = "/ui"
MAX_FORM_BODY = 1024 * 1024  # a page's forms send ids and field names: far below this
MAX_BULK = 1000
PAGE_SIZES = (25, 50, 100, 200)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STATIC = {
    "ui.css": "text/css; charset=utf-8",
    "ui.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
_RANGES_MS = {"1h": 3_600_000, "24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000}


@dataclass
class UiState:
    """What the pages keep beside the API's service: stored exceptions, sessions, a read connection."""

    db: Path
    retention_ms: int | None = None
    exceptions: ExceptionStore = field(init=False)
    queries: AlertQueries = field(init=False)
    sessions: auth.Sessions = field(default_factory=auth.Sessions)

    def __post_init__(self) -> None:
        self.exceptions = ExceptionStore(self.db)
        self.queries = AlertQueries(self.db)

    def engine_factory(self, base: Any = None, base_all: bool = False) -> Any:
        """The scheduler's engines: ``--exceptions`` items and those added on the pages."""
        return engine_factory(self.exceptions, base, base_all)


def is_ui_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def state(svc: Any) -> UiState:
    if getattr(svc, "ui", None) is None:
        svc.ui = UiState(Path(svc.alerts.path))
    return svc.ui


def _session(h: Any) -> str | None:
    sid = auth.session_id(h.headers)
    return sid if state(h.service).sessions.valid(sid) else None


def _signed_in(h: Any) -> bool:
    svc = h.service
    return not svc.token or _session(h) is not None or authorized(svc.token, h.headers.get("Authorization"))


def admit(h: Any, method: str, path: str, length: int | None) -> int | None:
    """The pages' part of admitting a request, before its body is read (see ``Handler._admit``)."""
    if method in ("POST", "PUT", "DELETE"):
        why = cross_site(h.headers)
        if why:
            raise HttpError(403, "security_exception", f"cross-site request refused ({why})")
        if length is None or length > MAX_FORM_BODY:
            raise HttpError(
                413, "content_too_long_exception", "a form is at most 1 MB, sent with Content-Length"
            )
        if path != PREFIX + "/login" and not _signed_in(h):
            raise HttpError(401, "security_exception", "sign in first")
    return length


class Ctx:
    """One request's view: its session's CSRF token, its path, the service."""

    def __init__(self, h: Any, path: str, query: dict) -> None:
        self.h = h
        self.svc = h.service
        self.ui = state(self.svc)
        self.sid = _session(h)
        self.csrf = self.ui.sessions.csrf(self.sid)
        self.path = path
        self.query = query
        self.queries = self.ui.queries

    def rule_name(self, rid: str) -> str:
        rule = self.svc.scheduler.rules.get(rid)
        return getattr(rule, "name", None) or rid


def send(
    h: Any, status: int, body: bytes, ctype: str = "text/html; charset=utf-8", headers: dict | None = None
) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    h.send_header("Content-Security-Policy", CSP)
    h.send_header("X-Content-Type-Options", "nosniff")
    h.send_header("X-Frame-Options", "DENY")
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on a form
    # post, which the transport's cross-site check (rightly) refuses.
    h.send_header("Referrer-Policy", "same-origin")
    h.send_header("Cross-Origin-Opener-Policy", "same-origin")
    h.send_header("Cache-Control", "max-age=300" if ctype in STATIC.values() else "no-store")
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    if h.close_connection:
        h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(body)


def redirect(h: Any, where: str, headers: dict | None = None) -> None:
    send(h, 303, b"", headers={"Location": where, **(headers or {})})


def layout(ctx: Ctx | None, title: str, body: Safe, *, signed_in: bool = True) -> bytes:
    nav = Safe("")
    if signed_in and ctx is not None:
        logout = (
            t(
                '<form method="post" action="/ui/logout" class="inline">{c}<button type="submit" id="logout">'
                "Sign out</button></form>",
                c=hidden("csrf", ctx.csrf),
            )
            if ctx.svc.token
            else Safe("")
        )
        nav = t(
            '<nav class="top"><b>Vigil</b> <a href="/ui/alerts">Alerts</a> <a href="/ui/rules">Rules</a> '
            '<a href="/ui/exceptions">Exceptions</a> <a href="/ui/health">Health</a> {logout}</nav>',
            logout=logout,
        )
    page = t(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} - Vigil</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="/ui/static/icon.svg"><link rel="stylesheet" href="/ui/static/ui.css"><script src="/ui/static/ui.js" defer></script>'
        "</head><body>{nav}<main>{body}</main></body></html>",
        title=title,
        nav=nav,
        body=body,
    )
    return page.encode()


def _form(body: bytes) -> dict[str, list[str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "parse_exception", "a form must be UTF-8", close=False) from None
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=MAX_BULK + 20)
    except ValueError:  # more fields than any page's form has
        raise HttpError(
            400, "parse_exception", f"a form has at most {MAX_BULK} values", close=False
        ) from None


def _next(form: dict, default: str) -> str:
    """Where to go after a change: a page of this server, never elsewhere."""
    where = (form.get("next") or [default])[-1]
    parts = urlsplit(where)
    if parts.scheme or parts.netloc or not is_ui_path(parts.path) or "\\" in where or where.startswith("//"):
        return default
    return where


def handle(h: Any, method: str, parts: list[str], query: dict, body: bytes) -> None:
    """Answer a request under ``/ui`` (``parts`` without the leading ``ui``)."""
    path = h.path if isinstance(h.path, str) else PREFIX
    if parts[:1] == ["static"] and len(parts) == 2 and method == "GET":
        return _static(h, parts[1])
    if parts == ["login"]:
        return _login(h, method, body)
    if not _signed_in(h):
        if method == "GET":
            return redirect(h, "/ui/login")
        raise HttpError(401, "security_exception", "sign in first")
    ctx = Ctx(h, path, query)
    if method == "POST":
        form = _form(body)
        if not ctx.ui.sessions.csrf_ok(ctx.sid, (form.get("csrf") or [""])[-1]):
            return send(
                h,
                403,
                layout(ctx, "Refused", t("<h1>Refused</h1><p>This form has expired: reload the page.</p>")),
            )
        return _change(ctx, parts, form)
    if method != "GET":
        raise HttpError(405, "method_not_allowed", "the pages take GET and POST")
    try:
        return _page(ctx, parts, query)
    except VigilError as exc:
        return send(h, 400, layout(ctx, "Error", t("<h1>Error</h1><p>{e}</p>", e=exc.render())))


def _page(ctx: Ctx, parts: list[str], query: dict) -> None:
    h = ctx.h
    if parts in ([], ["alerts"]):
        return send(h, 200, layout(ctx, "Alerts", _alerts(ctx, query)))
    if len(parts) == 2 and parts[0] == "alerts":
        return _alert(ctx, parts[1])
    if parts == ["rules"]:
        return send(h, 200, layout(ctx, "Rules", _rules(ctx, query)))
    if len(parts) == 2 and parts[0] == "rules":
        return _rule(ctx, parts[1])
    if parts == ["exceptions"]:
        return send(h, 200, layout(ctx, "Exceptions", pages.exceptions_page(ctx.ui.exceptions.items(), ctx)))
    if parts == ["exceptions.ndjson"]:
        data = ctx.ui.exceptions.export(ctx.svc.scheduler.rules)
        return send(
            h,
            200,
            data,
            "application/x-ndjson",
            {"Content-Disposition": 'attachment; filename="vigil-exceptions.ndjson"'},
        )
    if parts == ["health"]:
        return send(h, 200, layout(ctx, "Health", _health(ctx)))
    return _not_found(ctx)


def _not_found(ctx: Ctx) -> None:
    send(ctx.h, 404, layout(ctx, "Not found", t("<h1>Not found</h1><p>No such page.</p>")))


def _static(h: Any, name: str) -> None:
    if name not in STATIC:
        return send(h, 404, b"not found", "text/plain; charset=utf-8")
    data = (resources.files("vigil.server.ui") / "static" / name).read_bytes()
    send(h, 200, data, STATIC[name])


def _login(h: Any, method: str, body: bytes) -> None:
    svc = h.service
    ui = state(svc)
    if not svc.token:
        return redirect(h, "/ui/alerts")
    message = Safe("")
    if method == "POST":
        form = _form(body)
        token = (form.get("token") or [""])[-1]
        if authorized(svc.token, "Bearer " + token) and token:
            sid = ui.sessions.create()
            return redirect(h, "/ui/alerts", {"Set-Cookie": auth.set_cookie(sid)})
        time.sleep(0.5)  # a wrong token costs the guesser time
        message = t('<p class="error" id="login-error">Wrong token.</p>')
    elif method != "GET":
        raise HttpError(405, "method_not_allowed", "GET or POST")
    page = t(
        '<h1>Vigil</h1><form method="post" action="/ui/login" class="login">{m}<label>Token '
        '<input type="password" name="token" id="token" autocomplete="current-password" autofocus></label> '
        '<button type="submit" id="sign-in">Sign in</button></form>'
        "<p>The token <code>vigil serve</code> was started with (<code>--token</code> or <code>$VIGIL_TOKEN</code>).</p>",
        m=message,
    )
    send(h, 200 if method == "GET" else 401, layout(None, "Sign in", page, signed_in=False))


# --- changes ------------------------------------------------------------------------------
def _change(ctx: Ctx, parts: list[str], form: dict) -> None:
    h, svc, ui = ctx.h, ctx.svc, ctx.ui
    if parts == ["logout"]:
        ui.sessions.end(ctx.sid)
        return redirect(h, "/ui/login" if svc.token else "/ui/alerts", {"Set-Cookie": auth.clear_cookie()})
    if parts == ["alerts", "status"]:
        status = (form.get("status") or [""])[-1]
        ids = form.get("id") or []
        if status not in pages.STATUSES:
            raise HttpError(
                400, "illegal_argument_exception", "status must be open, acknowledged or closed", close=False
            )
        for uuid in ids[:MAX_BULK]:
            if svc.alerts.get(uuid) is not None:
                svc.alerts.set_status(uuid, status)
        return redirect(h, _next(form, "/ui/alerts"))
    if len(parts) == 3 and parts[0] == "alerts" and parts[2] == "status":
        status = (form.get("status") or [""])[-1]
        if status not in pages.STATUSES:
            raise HttpError(
                400, "illegal_argument_exception", "status must be open, acknowledged or closed", close=False
            )
        if svc.alerts.get(parts[1]) is None:
            return _not_found(ctx)
        svc.alerts.set_status(parts[1], status)
        return redirect(h, "/ui/alerts/" + pages.seg(parts[1]))
    if len(parts) == 3 and parts[0] == "alerts" and parts[2] == "exception":
        return _add_exception(ctx, parts[1], form)
    if len(parts) == 3 and parts[0] == "exceptions" and parts[2] == "delete":
        ui.exceptions.remove(parts[1])
        return redirect(h, _next(form, "/ui/exceptions"))
    if len(parts) == 3 and parts[0] == "rules" and parts[2] in ("enable", "disable"):
        if parts[1] not in svc.scheduler.rules:
            return _not_found(ctx)
        svc.scheduler.set_enabled(parts[1], parts[2] == "enable")
        return redirect(h, _next(form, "/ui/rules/" + pages.seg(parts[1])))
    return _not_found(ctx)


def _add_exception(ctx: Ctx, uuid: str, form: dict) -> None:
    from vigil.eql.fields import lookup

    doc = ctx.svc.alerts.get(uuid)
    if doc is None:
        return _not_found(ctx)
    rule_id = str((lookup(doc, "kibana.alert.rule.rule_id") or [""])[0])
    rule_name = str((lookup(doc, "kibana.alert.rule.name") or [rule_id])[0])
    known = {name for name, _ in pages.source_fields(doc)}
    chosen = []
    for name in dict.fromkeys(form.get("field") or []):
        if name in known:  # values come from the stored alert, never from the form
            values = lookup(doc, name)
            chosen.append((name, values[0] if len(values) == 1 else values))
    entries = entries_for(chosen)
    if not entries:
        body = t(
            '<h1>No exception added</h1><p>Choose at least one field with a value.</p><p><a href="/ui/alerts/{l}">Back</a></p>',
            l=pages.seg(uuid),
        )
        return send(ctx.h, 400, layout(ctx, "No exception", body))
    ctx.ui.exceptions.add(rule_id, rule_name, entries, comment=(form.get("comment") or [""])[-1])
    return redirect(ctx.h, "/ui/rules/" + pages.seg(rule_id) + "#exceptions")


# --- pages --------------------------------------------------------------------------------
def _one(query: dict, key: str) -> str:
    return str(query.get(key) or "")[:2000]


def _alerts(ctx: Ctx, query: dict) -> Safe:
    from vigil.eql.dates import to_millis

    q = {
        k: _one(query, k)
        for k in ("q", "range", "since", "until", "severity", "rule", "host", "sort", "dir", "group", "size")
    }
    q["status"] = _one(query, "status") if "status" in query else "open"
    page = int(query["page"]) if str(query.get("page", "")).isdecimal() and len(query["page"]) < 7 else 1
    size = int(q["size"]) if q["size"].isdecimal() and int(q["size"]) in PAGE_SIZES else 50
    filters = Filters(
        severity=q["severity"] if q["severity"] in SEVERITIES else None,
        rule=q["rule"] or None,
        host=q["host"] or None,
        status=q["status"] or None,
    )
    now = ctx.svc.scheduler.clock.now_ms()
    if q["range"] in _RANGES_MS:
        filters.since_ms = now - _RANGES_MS[q["range"]]
    for key in ("since", "until"):
        if q[key]:
            ms = to_millis(q[key])
            if ms is None:
                raise VigilError(f"not a time: {q[key]!r} (use ISO-8601, e.g. 2026-01-31T12:00:00Z)")
            setattr(
                filters,
                f"{key}_ms",
                ms if key == "until" or filters.since_ms is None else max(ms, filters.since_ms),
            )
    kql_error = None
    if q["q"].strip():
        from vigil import kql

        try:
            filters.kql, filters.kql_text = kql.compile(q["q"]), q["q"]
        except Exception as exc:  # a syntax error or an unsupported query: shown, not raised
            kql_error = exc.render() if isinstance(exc, VigilError) else str(exc) or type(exc).__name__
    if kql_error is not None:
        filters.kql = _NOTHING
    res = ctx.queries.search(
        filters,
        sort=q["sort"] if q["sort"] in SORTS else "time",
        descending=q["dir"] != "asc",
        offset=(page - 1) * size,
        limit=size,
        group=q["group"] or None,
    )
    shown = {k: v for k, v in q.items() if v}
    if "status" in query or q["status"] != "open":
        shown["status"] = q["status"]
    return pages.alerts_page(
        res, dict(shown, status=q["status"]), ctx, page=page, size=size, kql_error=kql_error
    )


class _Nothing:
    @staticmethod
    def matches(_doc: dict) -> bool:
        return False


_NOTHING = _Nothing()


def _alert(ctx: Ctx, uuid: str) -> None:
    from vigil.eql.fields import lookup

    doc = ctx.svc.alerts.get(uuid)
    if doc is None:
        return _not_found(ctx)
    rule = ctx.svc.scheduler.rules.get(str((lookup(doc, "kibana.alert.rule.rule_id") or [""])[0]))
    sequence: list[dict] = []
    group = lookup(doc, "kibana.alert.group.id")
    if group:
        members = [r.doc for r in ctx.queries.same_group(str(group[0]))]
        sequence = sorted(
            (m for m in members if lookup(m, "kibana.alert.group.index")),
            key=lambda m: int((lookup(m, "kibana.alert.group.index") or [0])[0] or 0),
        )
    host = (lookup(doc, "host.name") or [None])[0]
    entity = (lookup(doc, "process.entity_id") or [None])[0]
    by_host = ctx.queries.by_host(str(host), uuid) if host is not None else []
    by_entity = ctx.queries.same_process(str(entity), uuid) if entity is not None else []
    body = pages.alert_page(doc, rule, ctx, sequence=sequence, by_host=by_host, by_entity=by_entity)
    send(ctx.h, 200, layout(ctx, "Alert", body))


def _summary(ctx: Ctx, rule: Any, last: dict, counts: dict) -> dict:
    from vigil.server.app import rule_summary

    r = rule_summary(ctx.svc.scheduler, rule)
    r["why_not"] = None if r["runnable"] else _why_not(rule)
    r["last_run"] = last.get(r["rule_id"])
    r["alerts"] = counts.get(r["rule_id"], 0)
    return r


def _why_not(rule: Any) -> str:
    why = getattr(rule, "why_not_runnable", None)
    if why:
        return str(why)
    # Runnable as a rule, not yet by the scheduler (rule types it does not serve).
    return f"{getattr(rule, 'type', 'these')} rules run in vigil scan, not yet in vigil serve"


def _rules(ctx: Ctx, query: dict) -> Safe:
    q = {"q": _one(query, "q"), "runnable": _one(query, "runnable")}
    page = int(query["page"]) if str(query.get("page", "")).isdecimal() and len(query["page"]) < 7 else 1
    size = 200
    sched = ctx.svc.scheduler
    rules = sorted(sched.rules.values(), key=lambda r: (str(getattr(r, "name", "")).lower(), str(r.rule_id)))
    if q["q"]:
        needle = q["q"].lower()
        rules = [
            r for r in rules if needle in str(getattr(r, "name", "")).lower() or needle in str(r.rule_id)
        ]
    if q["runnable"] in ("yes", "no"):
        rules = [r for r in rules if sched.runnable(r) == (q["runnable"] == "yes")]
    total = len(rules)
    last, counts = ctx.queries.last_runs(), ctx.queries.rule_alert_counts()
    rows = [_summary(ctx, r, last, counts) for r in rules[(page - 1) * size : page * size]]
    return pages.rules_page(rows, {k: v for k, v in q.items() if v}, ctx, page=page, size=size, total=total)


def _rule(ctx: Ctx, rid: str) -> None:
    rule = ctx.svc.scheduler.rules.get(rid)
    if rule is None:
        return _not_found(ctx)
    r = _summary(ctx, rule, ctx.queries.last_runs(), ctx.queries.rule_alert_counts())
    runs = ctx.svc.scheduler.runs.runs(rid, 50)
    items = [dict(i) for i in ctx.ui.exceptions.items(rid)]
    body = pages.rule_page(rule, r, runs, items, ctx)
    send(ctx.h, 200, layout(ctx, str(getattr(rule, "name", rid)), body))


def _size(db: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += os.path.getsize(str(db) + suffix)
        except OSError:
            pass
    return total


def _health(ctx: Ctx) -> Safe:
    from vigil.scheduler.runner import rule_id
    from vigil.scheduler.windows import duration_ms
    from vigil.server.app import health

    svc, ui = ctx.svc, ctx.ui
    data = health(svc)
    now = data["now_ms"]
    uptime_s = max(1, (now - (svc.started_ms or now)) / 1000)
    recent = ui.queries.events_ingested_since(now - 300_000)
    drops, lost = ui.queries.sensor_drops()
    ingest = data["ingest"]
    runs = data["runs"]
    sched = svc.scheduler
    last = ui.queries.last_runs()
    behind = []
    for rule in sched.rules.values():
        if not (sched.runnable(rule) and sched.enabled(rule)):
            continue
        rid = rule_id(rule)
        try:
            interval = duration_ms(getattr(rule, "interval", "5m"), what="interval")
        except VigilError:
            continue
        started = (last.get(rid) or {}).get("started_ms")
        # Ticks come every fraction of a second: a run a whole interval late is behind.
        if (
            started is None
            and now - (svc.started_ms or now) > 2 * interval
            or (started is not None and now - started > 2 * interval)
        ):
            behind.append((rid, getattr(rule, "name", rid), pages.last_run_text(last.get(rid))))
    mb = _size(ui.db) / 1_048_576
    facts = [
        (
            "Ingest",
            [
                ("events in the last 5 minutes", f"{recent} ({recent / 300:.1f}/s)"),
                ("accepted since start", f"{ingest['accepted']} ({ingest['accepted'] / uptime_s:.1f}/s)"),
                ("rejected since start", ingest["rejected"]),
                ("requests since start", ingest["requests"]),
                ("last event", pages.when(ingest.get("last_ingested_ms"))),
            ],
        ),
        (
            "Store",
            [
                ("events stored", ingest["stored"]),
                ("alerts stored", data["alerts"]),
                ("store size", f"{mb:.1f} MB"),
                (
                    "retention",
                    pages._duration(ui.retention_ms) if ui.retention_ms else "events kept until removed",
                ),
            ],
        ),
        (
            "Rules and runs",
            [
                ("rules loaded", data["rules"]["total"]),
                ("enabled", data["rules"]["enabled"]),
                ("runnable", data["rules"]["runnable"]),
                ("runs", runs["runs"]),
                ("last run", pages.when(runs.get("last_run_ms"))),
                ("capped runs", runs["capped_runs"]),
                ("failed runs", runs["failed_runs"]),
                (
                    "gaps not searched",
                    f"{runs['gaps']} ({pages._duration(runs['gap_ms']) if runs['gap_ms'] else 'none'})",
                ),
                ("events set aside", runs["events_failed"]),
                ("running now", len(runs["running"])),
            ],
        ),
        (
            "Sensor",
            [
                ("queue overflows reported", drops),
                ("events the sensor lost", lost),
            ],
        ),
        (
            "Server",
            [
                ("version", data["version"]),
                ("up since", pages.when(svc.started_ms)),
                ("connections", f"{data['http']['connections']} of {data['http']['max_connections']}"),
                ("connections refused", data["http"]["refused_connections"]),
            ],
        ),
    ]
    return pages.health_page(facts, behind)


__all__ = ["UiState", "admit", "handle", "is_ui_path"]
