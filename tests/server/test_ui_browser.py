"""The triage pages in a real headless Chromium (Debian's chromium and chromium-driver, via Selenium).

A real ``vigil serve`` process with the bundled Dracut Module Creation rule: alerts
come from events shipped to ``_bulk`` and the rule's scheduled runs, then an analyst's
path is walked in the browser: load, filter, open, read the guide, close, add an
exception, and see the rule's next run honour it. A second test ships events an
intruder shaped (``<script>``, ``"><img onerror>``, ``javascript:`` links, terminal
escapes) and checks in the browser that they are text and that no script ran.

With ``VIGIL_UI_SCREENSHOTS=1`` each page is saved into ``docs/images/``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from test_serve_seed_rule import SEED_ID, STREAM, defend_file_event

from conftest import MIN, REPO, T0

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = REPO / "docs" / "images" if os.environ.get("VIGIL_UI_SCREENSHOTS") else None

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (make installs it)")
from selenium.webdriver.common.by import By  # noqa: E402

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        "Chromium is not installed: apt-get install chromium chromium-driver (.ci/run does)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium never looks for a driver online
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-background-networking",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / f"ui-{name}.png"))


def text(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def rows(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#alerts tbody tr[data-uuid]")


def start_seed_server(make_server, extra: list[str] | None = None):
    s = make_server(None, extra)  # the bundled rules: Dracut Module Creation, with its guide and ATT&CK
    s.start()
    s.wait_runs(1)
    return s


def module(name: str) -> str:
    return f"/usr/lib/dracut/modules.d/99{name}/module-setup.sh"


def test_triage_in_the_browser(make_server, browser):
    s = start_seed_server(make_server)
    s.set_clock(T0 + MIN)
    s.bulk(
        STREAM,
        [
            defend_file_event(module("evil"), "/usr/bin/cp", T0 + MIN, host="web-1"),
            defend_file_event(module("other"), "/usr/bin/bash", T0 + MIN, host="db-2"),
            defend_file_event(module("third"), "/usr/bin/cp", T0 + MIN, host="web-1"),
        ],
    )
    runs = s.advance_and_wait(4 * MIN, 2)  # T0+5m: the rule's second run
    assert runs[0]["alerts_written"] == 3

    # Load: three open alerts, counted by severity and rule, over a histogram.
    browser.get(s.url + "/ui/")
    assert len(rows(browser)) == 3
    assert text(browser, "#total") == "3"
    assert text(browser, "#count-low") == "3"
    assert "Dracut Module Creation" in text(browser, "#by-rule")
    assert browser.find_elements(By.CSS_SELECTOR, "#histogram rect")
    shot(browser, "alerts")

    # Filter: by host (a select that submits itself, through the page's own script), then KQL.
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "f-host")).select_by_visible_text("db-2")
    wait_for(
        lambda: [r.find_element(By.CSS_SELECTOR, "td:nth-child(6)").text for r in rows(browser)] == ["db-2"]
    )
    assert "host=db-2" in browser.current_url
    browser.get(s.url + "/ui/alerts")
    box = browser.find_element(By.ID, "kql")
    box.send_keys("process.name: cp and file.path: *99third*")
    browser.find_element(By.ID, "apply").click()
    wait_for(lambda: "q=" in browser.current_url and len(rows(browser)) == 1)
    assert "99third" in rows(browser)[0].text

    # Sorting by host puts db-2 first ascending.
    browser.get(s.url + "/ui/alerts?sort=host&dir=asc")
    assert rows(browser)[0].find_element(By.CSS_SELECTOR, "td:nth-child(6)").text == "db-2"

    # Grouping by host.
    browser.get(s.url + "/ui/alerts?group=host")
    groups = browser.find_elements(By.CSS_SELECTOR, "#groups tbody tr")
    assert sorted(g.text.split()[0] + ":" + g.text.split()[1] for g in groups) == ["db-2:1", "web-1:2"]

    # Open an alert: reason, guide rendered from Markdown, ATT&CK linked to attack.mitre.org.
    browser.get(s.url + "/ui/alerts?host=web-1&sort=time")
    rows(browser)[0].find_element(By.CSS_SELECTOR, "a.open-alert").click()
    wait_for(lambda: "/ui/alerts/" in browser.current_url and browser.find_elements(By.ID, "json"))
    assert "created low alert Dracut Module Creation" in text(browser, "#reason")
    assert browser.find_elements(By.CSS_SELECTOR, "#guide h2, #guide h3, #guide h4")  # headings, not raw '#'
    assert "## " not in text(browser, "#guide")
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#attack a")]
    assert "https://attack.mitre.org/techniques/T1542/" in links
    assert all(link.startswith("https://attack.mitre.org/") for link in links)
    # The other alert of the same host is related; the JSON view holds the document.
    assert len(browser.find_elements(By.CSS_SELECTOR, "#related-host tr")) == 1
    assert '"kibana.alert.rule.rule_id": "' + SEED_ID + '"' in text(browser, "#json")
    shot(browser, "alert")
    alert_url = browser.current_url

    # Close it.
    Select(browser.find_element(By.ID, "alert-status")).select_by_value("closed")
    browser.find_element(By.ID, "set-status").click()
    wait_for(lambda: text(browser, "#status") == "closed")
    browser.get(s.url + "/ui/alerts")
    assert len(rows(browser)) == 2  # the open ones

    # Bulk: acknowledge every open alert on the page.
    browser.find_element(By.ID, "select-all").click()
    Select(browser.find_element(By.ID, "bulk-status")).select_by_value("acknowledged")
    browser.find_element(By.ID, "bulk-apply").click()
    wait_for(lambda: text(browser, "#total") == "0")
    statuses = sorted(a["kibana.alert.workflow_status"] for a in s.get("/api/alerts")["alerts"])
    assert statuses == ["acknowledged", "acknowledged", "closed"]

    # Add an exception from the alert's process.executable: the next run honours it.
    browser.get(alert_url)
    browser.find_element(By.CSS_SELECTOR, 'input.exc-field[value="process.executable"]').click()
    browser.find_element(By.ID, "add-exception").click()
    wait_for(lambda: "/ui/rules/" in browser.current_url and "/usr/bin/cp" in text(browser, "#exceptions"))
    shot(browser, "rule")
    s.set_clock(T0 + 6 * MIN)
    s.bulk(
        STREAM,
        [
            defend_file_event(module("again"), "/usr/bin/cp", T0 + 6 * MIN, host="web-1"),
            defend_file_event(module("fresh"), "/usr/bin/tee", T0 + 6 * MIN, host="web-1"),
        ],
    )
    runs = s.advance_and_wait(4 * MIN, 3)  # T0+10m
    assert runs[0]["alerts_written"] == 1
    paths = {a["file"]["path"] for a in s.get("/api/alerts?status=open")["alerts"]}
    assert paths == {module("fresh")}

    # The exception lists, exports in Kibana's format, and is removed.
    browser.get(s.url + "/ui/exceptions")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#exceptions tbody tr")) == 1
    shot(browser, "exceptions")
    browser.find_element(By.CSS_SELECTOR, "button.remove-exception").click()
    wait_for(lambda: browser.find_elements(By.ID, "no-exceptions"))

    # Rules (toggle), Health.
    browser.get(s.url + "/ui/rules")
    toggle = browser.find_element(By.CSS_SELECTOR, f'button.toggle[data-rule="{SEED_ID}"]')
    assert toggle.text == "on"
    shot(browser, "rules")
    toggle.click()
    wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, f'button.toggle[data-rule="{SEED_ID}"]').text == "off"
    )
    assert s.get("/api/rules")["rules"][0]["enabled"] is False
    browser.get(s.url + "/ui/health")
    assert "events stored" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "health")
    assert not csp_violations(browser)


HOSTILE = {
    "script": "<script>window.__xss = 'script'</script>",
    "img": '"><img src=x onerror="window.__xss = \'img\'">',
    "js": "javascript:window.__xss='link'",
    "term": "\x1b]0;owned\x07\x1b[2J\u202eevil",
}


def test_hostile_event_fields_render_as_text(make_server, browser):
    s = start_seed_server(make_server)
    s.set_clock(T0 + MIN)
    event = defend_file_event(
        "/usr/lib/dracut/modules.d/99x/" + HOSTILE["script"] + ".sh",
        "/usr/bin/" + HOSTILE["img"],
        T0 + MIN,
        host=HOSTILE["img"],
    )
    event["user"]["name"] = HOSTILE["js"]
    event["process"]["command_line"] = HOSTILE["term"]
    event["process"]["entity_id"] = HOSTILE["js"]
    s.bulk(STREAM, [event])
    runs = s.advance_and_wait(4 * MIN, 2)
    assert runs[0]["alerts_written"] == 1

    browser.get(s.url + "/ui/alerts")
    (row,) = rows(browser)
    assert HOSTILE["script"] in row.text  # the file path, as text
    assert HOSTILE["img"] in row.text  # host and process
    assert HOSTILE["js"] in row.text  # user
    no_injection(browser)
    # The host filter's options hold the hostile name as text too.
    assert HOSTILE["img"] in [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#f-host option")]

    row.find_element(By.CSS_SELECTOR, "a.open-alert").click()
    wait_for(lambda: "/ui/alerts/" in browser.current_url and browser.find_elements(By.ID, "json"))
    fields = browser.find_element(By.ID, "fields").text
    assert HOSTILE["script"] in fields and HOSTILE["img"] in fields and HOSTILE["js"] in fields
    # Terminal escapes are shown, not obeyed: ESC, BEL and the right-to-left override as text.
    assert "\\x1b]0;owned\\x07\\x1b[2J\\u202eevil" in fields
    assert "\x1b" not in browser.page_source and "\u202e" not in browser.page_source
    # No value became a link: every link goes to this server or to attack.mitre.org.
    for a in browser.find_elements(By.TAG_NAME, "a"):
        href = a.get_attribute("href") or ""
        assert href.startswith((s.url + "/", "https://attack.mitre.org/")), href
    no_injection(browser)
    # A search for the hostile text finds it, and shows it back as text.
    browser.get(s.url + "/ui/alerts")
    browser.find_element(By.ID, "kql").send_keys('user.name: "' + HOSTILE["js"] + '"')
    browser.find_element(By.ID, "apply").click()
    wait_for(lambda: "q=" in browser.current_url and len(rows(browser)) == 1)
    assert browser.find_element(By.ID, "kql").get_attribute("value") == 'user.name: "' + HOSTILE["js"] + '"'
    no_injection(browser)
    assert not csp_violations(browser)


def no_injection(driver) -> None:
    """No script of a value ran, and no element came from one."""
    assert driver.execute_script("return window.__xss === undefined")
    assert driver.execute_script("return document.querySelectorAll('img').length") == 0
    scripts = driver.execute_script("return Array.from(document.scripts).map(s => s.getAttribute('src'))")
    assert scripts == ["/ui/static/ui.js"]
    assert (
        driver.execute_script("return document.querySelectorAll('[onerror], [onclick], [onload]').length")
        == 0
    )


def csp_violations(driver) -> list[str]:
    """Console messages of the Content-Security-Policy refusing something: none if nothing tried."""
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # the page is being replaced
            pass
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_sign_in_with_the_token_off_loopback(make_server, browser):
    token = "a-token-of-32-characters-exactly"
    s = make_server(None, ["--listen", "0.0.0.0:0", "--token", token])
    s.start()
    url = s.url.replace("0.0.0.0", "127.0.0.1")
    browser.get(url + "/ui/alerts")
    wait_for(lambda: browser.current_url.endswith("/ui/login"))
    browser.find_element(By.ID, "token").send_keys("not-the-token-at-all")
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: browser.find_elements(By.ID, "login-error"))
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: browser.current_url.endswith("/ui/alerts"))
    # The session cookie is out of the page's reach and never sent by another site.
    cookie = browser.get_cookie("vigil_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert browser.execute_script("return document.cookie") == ""
    browser.get(url + "/ui/rules")
    assert browser.find_elements(By.CSS_SELECTOR, "#rules tbody tr")
    browser.find_element(By.ID, "logout").click()
    wait_for(lambda: browser.current_url.endswith("/ui/login"))
    browser.get(url + "/ui/rules")
    assert browser.current_url.endswith("/ui/login")
    assert not csp_violations(browser)
