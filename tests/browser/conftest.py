"""Real-browser fixtures: Debian's Chromium, the widget on `localhost`, host pages on `127.0.0.1`.

127.0.0.1 and localhost are different sites to the browser, so the widget runs in a
cross-site iframe exactly as on a customer's website.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape

import pytest
from conftest import SECRET_KEY, advance, free_port, hold, wait_until
from flask import Flask, request

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
WAIT = 15  # seconds a browser step may take on a busy 2-core machine


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
        # An inline recorder of the loader's events; this test page has no CSP.
        return (
            "<!doctype html><html lang='en'><head><title>Host</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'></head><body>"
            "<main><h1>Host page</h1><p>Some content.</p></main>"
            "<script>window.events=[];['ready','open','close','unread'].forEach(function(n){"
            "addEventListener('webwidget:'+n,function(e){events.push([n,e.detail])})})</script>"
            f'<script src="{widget_url}/embed.js" data-widget="default"{extra} async></script>'
            "</body></html>"
        )

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


@pytest.fixture(scope="module")
def site(sandbox_server, tmp_path_factory):
    """The widget app as a real threaded server on localhost, framed from 127.0.0.1."""
    from webwidget import create_app
    from webwidget.sandbox.server import BackgroundServer
    from webwidget.settings import Settings

    host_port = free_port()
    instance = tmp_path_factory.mktemp("widget")
    settings = Settings(
        _env_file=None,
        SECRET_KEY=SECRET_KEY,
        CHATCAPTAIN_BASE_URL=sandbox_server.url,
        CHATCAPTAIN_CHATBOT_ID="demo-bot",
        CHATCAPTAIN_CHANNEL_ID="channel_abc123",
        CHATCAPTAIN_CHANNEL_TOKEN="channel_token_xyz789",
        CHATCAPTAIN_SENDING_ENABLED=True,
        WIDGET_ALLOWED_ORIGINS=f"http://127.0.0.1:{host_port}",
        WIDGET_POLL_SECONDS=1,
        # Every test starts its own chat from 127.0.0.1; the limits have their own tests.
        RATE_LIMIT_START_PER_IP="1000/minute",
        SESSION_STORE_URL=f"sqlite:///{instance / 'sessions.sqlite3'}",
    )
    app = create_app(settings=settings, instance_path=str(instance))
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
