"""The pages over plain HTTP: sign-in, session cookie, CSRF, CSP, exceptions and their export.

A real ``vigil serve`` process (the bundled Dracut Module Creation rule); the browser
walk-through and the hostile-event rendering are in ``test_ui_browser.py``.
"""

from __future__ import annotations

import http.client
import json
import re
from urllib.parse import quote, urlencode, urlsplit

from test_serve_seed_rule import SEED_ID, STREAM, defend_file_event

from conftest import MIN, T0
from vigil.rules.exceptions import parse_exceptions
from vigil.server.ui.markdown import render

TOKEN = "a-token-of-32-characters-exactly"


def request(s, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    """One request, redirects not followed: (status, headers, text)."""
    parts = urlsplit(s.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    data = urlencode(body, doseq=True).encode() if body is not None else None
    hdrs = dict(headers or {})
    if data is not None:
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    return resp.status, resp.headers, text


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)


def served_with_alerts(make_server, extra=None):
    s = make_server(None, extra)
    s.start()
    s.wait_runs(1)
    s.set_clock(T0 + MIN)
    s.bulk(
        STREAM,
        [
            defend_file_event("/usr/lib/dracut/modules.d/99a/module-setup.sh", "/usr/bin/cp", T0 + MIN),
            defend_file_event("/usr/lib/dracut/modules.d/99b/module-setup.sh", "/usr/bin/tee", T0 + MIN),
        ],
    )
    return s


def test_token_login_sets_a_strict_session_cookie_and_every_change_needs_csrf(make_server):
    s = make_server(None, ["--token", TOKEN])
    s.start()
    status, headers, _ = request(s, "GET", "/ui/alerts")
    assert status == 303 and headers["Location"] == "/ui/login"
    status, _, page = request(s, "GET", "/ui/login")
    assert status == 200 and 'type="password"' in page
    status, headers, page = request(s, "POST", "/ui/login", {"token": "wrong-token-wrong-token"})
    assert status == 401 and "Wrong token" in page and "Set-Cookie" not in headers
    status, headers, _ = request(s, "POST", "/ui/login", {"token": TOKEN})
    assert status == 303
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    session = {"Cookie": cookie.split(";", 1)[0]}
    status, headers, page = request(s, "GET", "/ui/rules", headers=session)
    assert status == 200 and "Dracut Module Creation" in page
    csrf = csrf_of(page)
    # A change without the CSRF token, with another session's, or from another site: refused.
    path = f"/ui/rules/{SEED_ID}/disable"
    assert request(s, "POST", path, {"next": "/ui/rules"}, session)[0] == 403
    assert request(s, "POST", path, {"csrf": "0" * 64}, session)[0] == 403
    evil = dict(session, Origin="http://evil.example")
    assert request(s, "POST", path, {"csrf": csrf}, evil)[0] == 403
    # Without a session, a change is refused before its body is read.
    assert request(s, "POST", path, {"csrf": csrf})[0] == 401
    assert request(s, "POST", path, {"csrf": csrf}, session)[0] == 303
    status, _, body = request(s, "GET", "/api/rules", headers={"Authorization": "Bearer " + TOKEN})
    assert json.loads(body)["rules"][0]["enabled"] is False
    # The cookie does not open the API; signing out ends the session.
    assert request(s, "GET", "/api/rules", headers=session)[0] == 401
    assert request(s, "POST", "/ui/logout", {"csrf": csrf}, session)[0] == 303
    assert request(s, "GET", "/ui/alerts", headers=session)[0] == 303


def test_every_page_has_a_strict_policy_and_no_inline_script(make_server):
    s = served_with_alerts(make_server)
    s.advance_and_wait(4 * MIN, 2)
    status, _, page = request(s, "GET", "/ui/alerts?status=")
    uuid = re.search(r'data-uuid="([0-9a-f]+)"', page).group(1)
    pages = ["/ui/", "/ui/alerts?group=rule", f"/ui/alerts/{uuid}", "/ui/rules", f"/ui/rules/{SEED_ID}"]
    pages += ["/ui/exceptions", "/ui/health", "/ui/alerts?q=process.name:+cp", "/ui/alerts?q=a:+("]
    for path in pages:
        status, headers, page = request(s, "GET", path)
        assert status == 200, path
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
        assert re.findall(r"<script[^>]*>", page) == ['<script src="/ui/static/ui.js" defer>'], path
        assert not re.search(r"\son\w+=|\sstyle=|javascript:", page, re.I), path
    # A KQL syntax error is shown with its place, not raised.
    assert "expected a value" in request(s, "GET", "/ui/alerts?q=a:+(")[2]
    status, headers, js = request(s, "GET", "/ui/static/ui.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js
    assert request(s, "GET", "/ui/static/../app.py")[0] == 404


def test_an_exception_added_on_a_page_exports_in_kibanas_format(make_server):
    s = served_with_alerts(make_server)
    s.advance_and_wait(4 * MIN, 2)
    alert = next(a for a in s.get("/api/alerts")["alerts"] if a["process"]["executable"] == "/usr/bin/cp")
    uuid = alert["kibana.alert.uuid"]
    _, _, page = request(s, "GET", f"/ui/alerts/{uuid}")
    # Values come from the stored alert; a field the alert lacks is ignored.
    form = {"csrf": csrf_of(page), "field": ["process.executable", "event.category", "no.such.field"]}
    status, headers, _ = request(s, "POST", f"/ui/alerts/{uuid}/exception", form)
    assert status == 303 and headers["Location"].startswith(f"/ui/rules/{SEED_ID}")
    status, headers, text = request(s, "GET", "/ui/exceptions.ndjson")
    assert status == 200 and headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(x) for x in text.splitlines()]
    # Kibana's export: the list, its items, then the counts (export_exception_list_and_items.ts).
    assert lines[0]["type"] == "rule_default" and lines[0]["namespace_type"] == "single"
    assert lines[-1]["exported_exception_list_count"] == 1
    assert lines[-1]["exported_exception_list_item_count"] == 1
    item = lines[1]
    assert item["list_id"] == lines[0]["list_id"] and item["type"] == "simple"
    assert item["entries"] == [
        {"field": "process.executable", "type": "match", "operator": "included", "value": "/usr/bin/cp"},
        {"field": "event.category", "type": "match", "operator": "included", "value": "file"},
    ]
    # Vigil reads its own export back: the item suppresses the cp alert and not the tee one.
    (parsed,) = parse_exceptions(text, "export.ndjson").items
    assert parsed.matches(alert)
    other = next(a for a in s.get("/api/alerts")["alerts"] if a["kibana.alert.uuid"] != uuid)
    assert not parsed.matches(other)
    # Removed: the list is empty again.
    _, _, page = request(s, "GET", "/ui/exceptions")
    status, _, _ = request(s, "POST", f"/ui/exceptions/{item['item_id']}/delete", {"csrf": csrf_of(page)})
    assert status == 303
    assert (
        json.loads(request(s, "GET", "/ui/exceptions.ndjson")[2].splitlines()[-1])[
            "exported_exception_list_item_count"
        ]
        == 0
    )


def test_a_guide_is_markdown_without_markup_or_script_links():
    html = render(
        "## Triage\n<script>alert(1)</script> <img src=x onerror=alert(1)>\n\n"
        "[a](javascript:alert(1)) [b](JaVa\tScRiPt:alert(1)) [c](data:text/html,x) [d](https://www.elastic.co/x)\n"
        "![e](https://example.com/i.png) \x1b[2J"
    )
    assert "<h2>Triage</h2>" in html
    assert "&lt;script&gt;" in html and "<script" not in html and "<img" not in html
    assert html.count("<a ") == 2  # d, and e shown as a link to its address, never loaded
    assert 'href="https://www.elastic.co/x" rel="noopener noreferrer"' in html
    assert 'href="javascript' not in html.lower() and 'href="data:' not in html
    assert "\\x1b[2J" in html and "\x1b" not in html


def test_a_sequence_alert_shows_its_events_in_order_and_its_process_alerts(make_server):
    rule = dict(
        rule_id="seq-1",
        name="Download then persist",
        query='sequence by host.name [process where event.action == "exec"] [file where event.action == "creation"]',
    )
    s = make_server([rule])
    s.start()
    s.wait_runs(1)
    s.set_clock(T0 + MIN)
    base = {"host": {"name": "h1"}, "process": {"entity_id": "E-1", "name": "curl"}}
    s.send(
        "logs-test-default",
        [
            dict(
                base,
                **{"@timestamp": "2026-05-28T20:00:01Z", "event": {"category": "process", "action": "exec"}},
            ),
            dict(
                base,
                **{"@timestamp": "2026-05-28T20:00:02Z", "event": {"category": "file", "action": "creation"}},
                file={"path": "/etc/cron.d/x"},
            ),
        ],
    )
    s.advance_and_wait(5 * MIN, 2)
    alerts = s.get("/api/alerts?status=")["alerts"]
    shell = next(a for a in alerts if "kibana.alert.group.index" not in a)
    _, _, page = request(s, "GET", f"/ui/alerts/{shell['kibana.alert.uuid']}")
    table = page[page.index('id="sequence"') : page.index("</table>", page.index('id="sequence"'))]
    assert table.index(">exec<") < table.index(">creation<")  # the events in their order
    assert "/etc/cron.d/x" in table
    # Its building-block alerts share process.entity_id E-1: found through the index.
    related = page[page.index('id="related-process"') :]
    assert related[: related.index("</table>")].count("<tr>") == 2


def test_hostile_requests_to_the_pages_get_clear_answers_never_a_server_error(make_server):
    s = make_server(None)
    s.start()
    _, _, page = request(s, "GET", "/ui/alerts")
    csrf = csrf_of(page)
    gets = [
        "/ui/alerts?page=-1&size=100000000&sort=;drop&dir=sideways&group=%00",
        "/ui/alerts?page=99999999999999999999",
        "/ui/alerts?q=" + "(" * 5000,
        "/ui/alerts?q=" + quote("a:b or " * 2000 + "c:d"),
        "/ui/alerts?since=yesterday",
        "/ui/alerts?until=1e300",
        "/ui/alerts?severity=%ff%fe&host=%00&rule=%0a",
        "/ui/alerts/%00%ff",
        "/ui/rules/..%2f..%2fetc%2fpasswd",
        "/ui/static/%2e%2e%2fpages.py",
        "/ui/nothing",
    ]
    for path in gets:
        status, headers, _ = request(s, "GET", path)
        assert status in (200, 303, 400, 404), (path, status)
        assert "Content-Security-Policy" in headers or status == 404
    posts = [
        ("/ui/alerts/status", {"csrf": csrf, "status": "pwned", "id": "x"}),
        ("/ui/alerts/status", {"csrf": csrf, "status": "closed", "id": ["nope"] * 999}),
        ("/ui/alerts/status", {"csrf": csrf, "status": "closed", "id": ["a"] * 5000}),
        ("/ui/alerts/nope/exception", {"csrf": csrf, "field": "host.name"}),
        ("/ui/exceptions/nope/delete", {"csrf": csrf, "next": "https://evil.example/"}),
        ("/ui/rules/nope/enable", {"csrf": csrf}),
    ]
    for path, form in posts:
        status, headers, _ = request(s, "POST", path, form)
        assert status in (303, 400, 404), (path, status)
        if status == 303:
            assert headers["Location"].startswith("/ui/"), headers["Location"]  # never off this server
    # A form that is not UTF-8, one too large, and a strange cookie.
    status, _, _ = request(s, "POST", "/ui/alerts/status", None, {"Content-Type": "text/plain"})
    assert status in (400, 403)
    parts = urlsplit(s.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", "/ui/alerts/status", body=b"csrf=\xff\xfe", headers={"Content-Type": "x"})
    assert conn.getresponse().status == 400
    conn.close()
    big = {"csrf": csrf, "id": "x" * (2 * 1024 * 1024)}
    assert request(s, "POST", "/ui/alerts/status", big)[0] == 413
    assert request(s, "GET", "/ui/alerts", headers={"Cookie": "vigil_session=" + "\x7f" * 9000})[0] == 200
    assert s.get("/health")["status"] == "ok"
