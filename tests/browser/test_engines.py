"""The core visitor journey in Firefox (WebDriver BiDi) and WebKit (WebKitGTK WebDriver).

A host page on another site embeds the widget with the script tag; the visitor starts,
sends, sees the reply, reloads the host page, and finds the conversation with the newest
message in view; no secret is in the widget's page. The core of sending runs in both too:
a send while the connection is cut waits and goes once when it is back, a refused send
keeps its words and a retry stores them once (the sandbox's stored messages are counted).
In both a send after the chat ended keeps its words for a new chat, which sends them once.
scripts/test.sh installs firefox-esr, webkit2gtk-driver, xvfb and the npm packages
(`npm ci` in tests/browser/engines).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CHANNEL_TOKEN, faults, free_port, heal
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from selenium.webdriver.webkitgtk.options import Options
from selenium.webdriver.webkitgtk.service import Service

from .copies import stored, unique
from .cutoff import Cutoff

ENGINES = Path(__file__).parent / "engines"
FIREFOX = "/usr/bin/firefox-esr"
WEBKIT_DRIVER = "/usr/bin/WebKitWebDriver"
MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
WAIT = 30  # seconds for one step in a browser that shares 2 cores with the rest
UPSTREAM_ID = re.compile(r"(?<![A-Za-z])(wt|ct|cv)_[\w-]{16,}")

MESSAGE = "[data-message-id]"
# A host page whose own script calls WebWidget.open() as soon as the loader has loaded.
OPEN_AT_ONCE = "?api=WebWidget.open()"
REPLY = ".ww-msg--visitor[data-message-id] ~ .ww-msg--bot[data-message-id]"


def run_in_firefox(script: str, *args: str) -> dict:
    """Run one of the engines/ scripts in Firefox; its JSON result, checked to be ok."""
    node = shutil.which("node")
    assert node, "Node.js is needed (scripts/test.sh installs it with apt when missing)"
    assert Path(FIREFOX).exists(), "firefox-esr is not installed: run scripts/test.sh"
    assert (ENGINES / "node_modules" / "puppeteer-core").is_dir(), (
        "puppeteer-core is not installed: run `npm ci` in tests/browser/engines (scripts/test.sh)"
    )
    run = subprocess.run(
        [node, str(ENGINES / script), *args],
        capture_output=True, text=True, timeout=180, cwd=ENGINES,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from the Firefox run:\n{run.stdout}\n{run.stderr}"
    result = json.loads(lines[-1])
    assert result["ok"], result.get("error")
    assert run.returncode == 0
    return result


def test_core_journey_in_firefox(fresh_site):
    result = run_in_firefox(
        "firefox_journey.mjs", f"{fresh_site.host}/loader", fresh_site.sandbox, CHANNEL_TOKEN
    )
    assert "firefox" in result["browser"].lower()
    assert result["messages"] >= 3  # greeting, the visitor's message, the reply


def test_open_called_as_soon_as_the_loader_loads_is_honoured_in_firefox(fresh_site):
    result = run_in_firefox("firefox_open_early.mjs", f"{fresh_site.host}/loader{OPEN_AT_ONCE}")
    assert "firefox" in result["browser"].lower()


@pytest.fixture(scope="module")
def display():
    """A virtual X display for WebKitGTK's MiniBrowser."""
    assert shutil.which("Xvfb"), "Xvfb is not installed: run scripts/test.sh"
    number = free_port() % 1000 + 100
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    socket = Path(f"/tmp/.X11-unix/X{number}")
    try:
        # Xvfb is ready once its socket exists; waiting on the process bounds the wait.
        for _ in range(100):
            if socket.exists():
                break
            try:
                server.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError("Xvfb exited at start")
        assert socket.exists(), "Xvfb did not start"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def webkit(display):
    """WebKitGTK's MiniBrowser under WebDriver; it blocks third-party cookies."""
    assert Path(WEBKIT_DRIVER).exists() and Path(MINIBROWSER).exists(), (
        "webkit2gtk-driver is not installed: run scripts/test.sh"
    )
    options = Options()
    options.binary_location = MINIBROWSER
    options.add_argument("--automation")
    service = Service(WEBKIT_DRIVER, env={**os.environ, "DISPLAY": display})
    driver = webdriver.WebKitGTK(options=options, service=service)
    driver.set_window_size(1024, 800)
    yield driver
    driver.quit()


def open_widget(driver):
    """Click the launcher in the loader's shadow root and switch into its iframe."""
    wait = WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,))
    host = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#webwidget-default"))
    root = host.shadow_root
    wait.until(lambda d: root.find_element(By.CSS_SELECTOR, "button.l")).click()
    frame = wait.until(lambda d: root.find_element(By.CSS_SELECTOR, "iframe"))
    driver.switch_to.frame(frame)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "html[data-ww-ready]"))
    return wait


def restored_widget(driver):
    """After a reload of a page whose chat was open: the loader opens it again by itself;
    switch into its iframe."""
    wait = WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,))
    host = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#webwidget-default"))
    root = host.shadow_root
    wait.until(lambda d: root.find_element(By.CSS_SELECTOR, "button.l"))
    assert driver.execute_script("return WebWidget.isOpen()") is True
    frame = wait.until(lambda d: root.find_element(By.CSS_SELECTOR, "iframe"))
    driver.switch_to.frame(frame)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "html[data-ww-ready]"))
    return wait


def ids(driver) -> list[str]:
    """Read in one script call: htmx replaces messages between two WebDriver calls."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('[data-message-id]'),"
        " function (el) { return el.getAttribute('data-message-id'); });"
    )


def newest_in_view(driver) -> bool:
    log = driver.find_element(By.ID, "ww-log").rect
    messages = driver.find_elements(By.CSS_SELECTOR, MESSAGE)
    if not messages:
        return False
    last = messages[-1].rect
    bottom = last["y"] + last["height"]
    return log["y"] < bottom <= log["y"] + log["height"] + 2


# Selenium's own WebKitGTK driver class still builds its connection the deprecated way.
@pytest.mark.filterwarnings("ignore:setting remote_server_addr:DeprecationWarning")
def test_core_journey_in_webkit(webkit, fresh_site):
    driver = webkit
    driver.get(f"{fresh_site.host}/loader")
    wait = open_widget(driver)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#ww-main .ww-button--primary")).click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, MESSAGE))
    box = wait.until(lambda d: d.find_element(By.ID, "ww-text"))
    box.send_keys("help")
    box.send_keys(Keys.ENTER)

    def replied(d):
        fresh_site.advance_clock()
        return d.find_elements(By.CSS_SELECTOR, REPLY)

    wait.until(replied)
    before = ids(driver)
    assert len(before) >= 3

    driver.switch_to.default_content()
    driver.refresh()
    wait = restored_widget(driver)
    wait.until(lambda d: ids(d) == before)
    wait.until(newest_in_view)
    # Another exchange after the reload, watched for any Content-Security-Policy violation.
    driver.execute_script(
        "window.cspViolations = [];"
        "document.addEventListener('securitypolicyviolation', function (e) {"
        "  window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI); });"
    )
    box = wait.until(lambda d: d.find_element(By.ID, "ww-text"))
    box.click()
    box.send_keys("text")
    box.send_keys(Keys.ENTER)

    def answered(d):
        fresh_site.advance_clock()
        return len(ids(d)) >= len(before) + 2

    wait.until(answered)
    assert driver.execute_script("return window.cspViolations") == []
    html = driver.page_source
    assert CHANNEL_TOKEN not in html and not UPSTREAM_ID.search(html)
    # WebKit keeps no third-party cookie: the handle came back through the loader's storage.
    driver.switch_to.default_content()
    assert driver.execute_script(
        "return Object.keys(localStorage).some(k => k.startsWith('webwidget:'))"
    )


# --- sending: without a connection, and refused ------------------------------------------


@pytest.fixture
def cutoff(fresh_site):
    """The widget behind a connection the test can cut (tests/browser/cutoff.py)."""
    line = Cutoff(int(fresh_site.widget.rsplit(":", 1)[1]))
    line.up()
    yield line
    line.close()


def test_sending_without_a_connection_and_refused_in_firefox(fresh_site, cutoff, sandbox_server):
    offline, refused = unique("sent from the tunnel"), unique("refused at first")
    result = run_in_firefox(
        "firefox_sending.mjs", f"{cutoff.url}/w/default", fresh_site.sandbox,
        cutoff.control_url(), offline, refused,
    )
    assert "firefox" in result["browser"].lower()
    assert result["said"].count(offline) == 1 and result["said"].count(refused) == 1
    # Exactly one copy of each reached ChatCaptain.
    assert stored(sandbox_server, offline) == [offline]
    assert stored(sandbox_server, refused) == [refused]


def page_state(driver) -> dict:
    """The box, the notice and the messages, read in one script call."""
    return driver.execute_script(
        "return {box: document.getElementById('ww-text').value,"
        " notice: (document.querySelector('#ww-status .ww-notice') || {}).className || '',"
        " pending: Array.from(document.querySelectorAll('.ww-msg--sending'), function (el) {"
        "   return [el.querySelector('.ww-msg__body').textContent.trim(),"
        "           el.getAttribute('data-ww-pending')]; }),"
        " said: Array.from(document.querySelectorAll("
        "   '.ww-msg--visitor[data-message-id] .ww-msg__body'),"
        "   function (el) { return el.textContent.trim(); })};"
    )


@pytest.mark.filterwarnings("ignore:setting remote_server_addr:DeprecationWarning")
def test_sending_without_a_connection_and_refused_in_webkit(
    webkit, fresh_site, cutoff, sandbox_server
):
    driver = webkit
    offline, refused = unique("sent from the tunnel"), unique("refused at first")
    driver.get(f"{cutoff.url}/w/default")
    wait = WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "html[data-ww-ready]"))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#ww-main .ww-button--primary")).click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, MESSAGE))

    # The connection goes: the words wait in a bubble, the box is free, the notice says so.
    cutoff.down()
    box = wait.until(lambda d: d.find_element(By.ID, "ww-text"))
    box.send_keys(offline)
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: (s := page_state(d))["box"] == ""
               and "ww-notice--offline" in s["notice"]
               and [offline, "waiting"] in s["pending"])
    # It comes back: the next poll that gets through sends it, once.
    cutoff.up()
    wait.until(lambda d: offline in (s := page_state(d))["said"] and not s["pending"])

    # ChatCaptain refuses: the words come back into the box; "Retry now" sends them once.
    faults(fresh_site.sandbox, error_status=503, operations=["send_message"])
    box = driver.find_element(By.ID, "ww-text")
    box.send_keys(refused)
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: (s := page_state(d))["box"] == refused
               and "ww-notice--send_failed" in s["notice"] and not s["pending"])
    heal(fresh_site.sandbox)
    driver.find_element(By.CSS_SELECTOR, "#ww-status .ww-retry").click()
    wait.until(lambda d: refused in (s := page_state(d))["said"] and s["box"] == "")
    said = page_state(driver)["said"]
    assert said.count(offline) == 1 and said.count(refused) == 1
    assert stored(sandbox_server, offline) == [offline]
    assert stored(sandbox_server, refused) == [refused]


def test_a_lost_chat_keeps_the_words_for_a_new_one_in_firefox(fresh_site, sandbox_server):
    words = unique("still there after it ended")
    result = run_in_firefox("firefox_lost.mjs", f"{fresh_site.widget}/w/default", words)
    assert "firefox" in result["browser"].lower()
    assert result["said"].count(words) == 1
    assert stored(sandbox_server, words) == [words]


@pytest.mark.filterwarnings("ignore:setting remote_server_addr:DeprecationWarning")
def test_a_lost_chat_keeps_the_words_for_a_new_one_in_webkit(webkit, fresh_site, sandbox_server):
    """The chat ends behind the page's back (End chat sent with the page's own handle and
    its answer not shown, as when another tab ends it); the next send keeps its words, and
    the one action sends them in a new chat. WebKit blocks the cookie here, so the handle
    travels in X-Widget-Session, which only the page's htmx requests carry."""
    driver = webkit
    words = unique("still there after it ended")
    driver.get(f"{fresh_site.widget}/w/default")
    wait = WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "html[data-ww-ready]"))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#ww-main .ww-button--primary")).click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, MESSAGE))
    ended = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "htmx.ajax('POST', '/w/default/end', {source: document.body, swap: 'none'})"
        ".then(function () { done('ended'); }, function (e) { done(String(e)); });"
    )
    assert ended == "ended"
    assert driver.find_elements(By.ID, "ww-text")  # the page still shows the chat
    box = driver.find_element(By.ID, "ww-text")
    box.send_keys(words)
    box.send_keys(Keys.ENTER)
    draft = wait.until(lambda d: d.find_element(By.ID, "ww-draft"))
    assert draft.get_attribute("value") == words
    assert stored(sandbox_server, words) == []
    driver.find_element(By.CSS_SELECTOR, "#ww-main .ww-button--primary").click()
    said = wait.until(lambda d: (found := visitor_texts(d)).count(words) and found)
    assert said.count(words) == 1
    assert stored(sandbox_server, words) == [words]


def visitor_texts(driver) -> list[str]:
    """The visitor's stored messages on the page, read in one script call."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'.ww-msg--visitor[data-message-id] .ww-msg__body'),"
        " function (el) { return el.textContent.trim(); });"
    )


@pytest.mark.filterwarnings("ignore:setting remote_server_addr:DeprecationWarning")
def test_open_called_as_soon_as_the_loader_loads_is_honoured_in_webkit(webkit, fresh_site):
    driver = webkit
    driver.get(f"{fresh_site.host}/loader{OPEN_AT_ONCE}")
    wait = WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,))
    host = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#webwidget-default"))
    frame = wait.until(lambda d: host.shadow_root.find_element(By.CSS_SELECTOR, "iframe"))
    assert driver.execute_script("return WebWidget.isOpen()") is True
    assert host.shadow_root.find_element(By.CSS_SELECTOR, ".p").is_displayed()
    driver.switch_to.frame(frame)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#ww-main .ww-button--primary"))
    # Focus is not checked here: WebKitGTK's MiniBrowser under Xvfb, with no window
    # manager, lets no element take focus (an explicit focus() leaves <body>).
