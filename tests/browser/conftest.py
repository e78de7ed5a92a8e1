"""Real-browser fixtures: Debian's Chromium, the widget on `localhost`, host pages on `127.0.0.1`.

127.0.0.1 and localhost are different sites to the browser, so the widget runs in a
cross-site iframe exactly as on a customer's website.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from conftest import CHANNEL_TOKEN, SECRET_KEY, advance, free_port, hold, wait_until
from flask import Flask, request
from playwright.sync_api import expect

CHROMIUM = "/usr/bin/chromium"
# Root in a container needs --no-sandbox; the rest keeps Chromium off the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MESSAGE = "[data-message-id]"
VISITOR = f".ww-msg--visitor{MESSAGE}"
BOT = f".ww-msg--bot{MESSAGE}"
REPLY = f"{VISITOR} ~ {BOT}"  # a bot message after one of the visitor's
# The loader's launcher, panel and iframe on a host page.
LAUNCHER = "#webwidget-default button.l"
PANEL = "#webwidget-default .p"
FRAME = "#webwidget-default iframe"
WAIT = 15  # seconds a browser step may take on a busy 2-core machine
WCAG21AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


@pytest.fixture(scope="session")
def base_url():
    """Replaces pytest-base-url's fixture, which pytest 9 deprecates (warnings are errors)."""
    return None


@pytest.fixture(scope="session")
def browser_type_launch_args():
    """pytest-playwright launches Debian's Chromium; `playwright install` cannot download here."""
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


def host_app(widget_url: str) -> Flask:
    """A stand-in customer website that embeds the widget in the documented ways."""
    app = Flask(__name__)

    @app.get("/loader")
    def loader_page():
        extra = "".join(
            f' data-{name}="{escape(request.args[name])}"'
            for name in ("storage", "position")
            if name in request.args
        )
        widget = escape(request.args.get("widget", "default"))
        # The host's own script calling the API (`api`), as soon as the loader has loaded.
        onload = f' onload="{escape(request.args["api"])}"' if "api" in request.args else ""
        # An inline recorder of the loader's events; this test page has no CSP.
        return (
            "<!doctype html><html lang='en'><head><title>Host</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'></head><body>"
            "<main><h1>Host page</h1><p>Some content.</p>"
            # A page taller than the screen (`tall`), to see whether it scrolls behind the chat.
            + ("<p style='height:3000px'>More content.</p>" if "tall" in request.args else "")
            + "</main>"
            "<script>window.events=[];['ready','open','close','unread'].forEach(function(n){"
            "addEventListener('webwidget:'+n,function(e){events.push([n,e.detail])})})</script>"
            f'<script src="{widget_url}/embed.js" data-widget="{widget}"{extra}{onload} async>'
            "</script></body></html>"
        )

    @app.get("/favicon.ico")
    def favicon():
        # None, but not a 404: the browser would log it in the console tests read.
        return "", 204

    @app.get("/plain")
    def plain_page():
        return (
            "<!doctype html><html lang='en'><head><title>Host</title></head><body>"
            f'<iframe title="Chat" src="{widget_url}/w/default" width="380" height="600"></iframe>'
            "</body></html>"
        )

    return app


@dataclass
class Site:
    """The widget, the allowed host page and a host page on a foreign origin."""

    widget: str
    host: str
    foreign: str
    sandbox: str

    def advance_clock(self, seconds: float = 5) -> None:
        """Bot replies are due at once on the sandbox's clock."""
        advance(self.sandbox, seconds)

    def hold_clock(self) -> None:
        """Stop the sandbox's clock: a bot reply falls due only when the test advances it."""
        hold(self.sandbox)


def browser_widget_app(sandbox_url: str, instance: Path, **settings):
    """A widget app on the sandbox's demo-bot with production defaults (background poll
    refresh, the default timeouts) but for `settings`; its instance folder is `instance`."""
    from webwidget.app import create_app
    from webwidget.settings import Settings

    values = {
        "SECRET_KEY": SECRET_KEY,
        "CHATCAPTAIN_BASE_URL": sandbox_url,
        "CHATCAPTAIN_CHATBOT_ID": "demo-bot",
        "CHATCAPTAIN_CHANNEL_ID": "channel_abc123",
        "CHATCAPTAIN_CHANNEL_TOKEN": CHANNEL_TOKEN,
        "SESSION_STORE_URL": f"sqlite:///{instance / 'sessions.sqlite3'}",
        **settings,
    }
    return create_app(settings=Settings(_env_file=None, **values), instance_path=str(instance))


@pytest.fixture(scope="module")
def site(sandbox_server, tmp_path_factory):
    """The widget app as a real threaded server on localhost, framed from 127.0.0.1."""
    from webwidget.sandbox.server import BackgroundServer

    host_port = free_port()
    app = browser_widget_app(
        sandbox_server.url,
        tmp_path_factory.mktemp("widget"),
        CHATCAPTAIN_SENDING_ENABLED=True,
        WIDGET_ALLOWED_ORIGINS=f"http://127.0.0.1:{host_port}",
        WIDGET_POLL_SECONDS=1,
        # Every test starts its own chat from 127.0.0.1; the limits have their own tests.
        RATE_LIMIT_START_PER_IP="1000/minute",
        RATE_LIMIT_START_PER_NETWORK="1000/minute",
    )
    # As in demo mode: the sandbox serves its media over http on loopback.
    app.config["WEBWIDGET_MEDIA_ORIGINS"] = (sandbox_server.url,)
    widget = BackgroundServer(app).start()
    widget_url = f"http://localhost:{widget.port}"
    host = BackgroundServer(host_app(widget_url), port=host_port).start()
    foreign = BackgroundServer(host_app(widget_url)).start()
    try:
        yield Site(widget_url, host.url, foreign.url, sandbox_server.url)
    finally:
        for server in (foreign, host, widget):
            server.stop()


@pytest.fixture
def fresh_site(site, sandbox):
    """The site with the sandbox's faults and clock reset for this test."""
    return site


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """The demo host page in demo mode, on its bundled sandbox."""
    from webwidget.app import create_app
    from webwidget.sandbox.server import BackgroundServer
    from webwidget.settings import Settings

    instance = tmp_path_factory.mktemp("demo")
    server = BackgroundServer(
        create_app(settings=Settings(_env_file=None), instance_path=str(instance))
    )
    yield server.start().url
    server.stop()


@pytest.fixture
def persistent_context(browser_type, tmp_path):
    """A persistent profile whose preferences allow third-party cookies."""
    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(
        json.dumps({"profile": {"cookie_controls_mode": 0}})
    )
    context = browser_type.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS
    )
    yield context
    context.close()


def start_chat(scope, button: str = "Start chat") -> None:
    """Start the chat and wait for the greeting (scope: a page or a widget's frame).

    A click before htmx has started would be a plain form post: the page must be ready.
    """
    expect(scope.locator("html[data-ww-ready]")).to_have_count(1, timeout=WAIT * 1000)
    scope.get_by_role("button", name=button).click()
    expect(scope.locator(MESSAGE).first).to_be_visible(timeout=WAIT * 1000)


def reopened_after_reload(page) -> None:
    """After reloading a host page whose chat was open: the loader opens it again by
    itself (the panel stays open across the site's pages), so no click is needed."""
    expect(page.locator(LAUNCHER)).to_be_visible(timeout=WAIT * 1000)
    expect(page.locator(PANEL)).to_be_visible()
    assert page.evaluate("WebWidget.isOpen()") is True


def open_and_start(page, site) -> None:
    """The widget's own page, with a chat started."""
    page.goto(f"{site.widget}/w/default")
    start_chat(page)


def violations(page) -> list[str]:
    """Each WCAG 2.1 AA rule axe-core finds broken, with the markup that breaks it."""
    results = Axe().run(page, options=WCAG21AA)
    return [
        f"{v['id']}: {v['help']} -> {[n['html'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]


def message_ids(frame) -> list[str]:
    """The conversation's message ids in page order (CSP-safe: no evaluated script)."""
    return [el.get_attribute("data-message-id") for el in frame.locator(MESSAGE).all()]


def wait_for(page, check, what: str, site: Site | None = None, seconds: float = WAIT):
    """Check `check` until it is truthy, advancing the sandbox clock between checks if
    `site` is given. The pauses are `page`'s, so its route and event handlers keep running."""

    def checked():
        value = check()
        if not value and site is not None:
            site.advance_clock()
        return value

    return wait_until(checked, timeout=seconds, what=what, every=0.25,
                      pause=lambda pause: page.wait_for_timeout(pause * 1000))
