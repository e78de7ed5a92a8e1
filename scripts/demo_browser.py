"""The demo (widget and bundled sandbox) on a loopback port and Debian's Chromium driving it.

Shared by the screenshot scripts next to it, which run as `python scripts/NAME.py [out_dir]`
and so find this module on their own path:

    with demo_in_chromium() as (demo, browser):
        page = browser.new_page()
        page.goto(demo.url + "/w/default")
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webwidget.app import create_app  # noqa: E402
from webwidget.sandbox.server import BackgroundServer  # noqa: E402
from webwidget.settings import Settings  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# --no-sandbox: we run as root; the rest keeps Chromium from calling home mid-picture.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Demo:
    """The running demo: the widget server's root URL and its sandbox's."""

    url: str
    sandbox: str

    def advance(self, seconds: float) -> None:
        """Move the sandbox's clock on, so that delayed bot replies fall due now."""
        requests.post(f"{self.sandbox}/_sandbox/clock", json={"advance": seconds}, timeout=5)

    def faults(self, faults: dict | None) -> None:
        """Make the sandbox fail as `faults` says; None clears them."""
        if faults is None:
            requests.delete(f"{self.sandbox}/_sandbox/faults", timeout=5)
        else:
            requests.put(f"{self.sandbox}/_sandbox/faults", json=faults, timeout=5)


@contextmanager
def demo_in_chromium(**settings: object) -> Iterator[tuple[Demo, Browser]]:
    """The demo with `settings` (the defaults otherwise) and a headless Chromium."""
    with tempfile.TemporaryDirectory() as instance:
        chosen = Settings(_env_file=None, WEBWIDGET_DEMO=True, **settings)
        app = create_app(settings=chosen, instance_path=instance)
        server = BackgroundServer(app).start()
        demo = Demo(server.url, app.extensions["webwidget.upstream"].base_url)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    yield demo, browser
                finally:
                    browser.close()
        finally:
            server.stop()


def start_chat(scope) -> None:
    """In the widget's page (a Page or a FrameLocator): wait until it is ready, press the
    welcome's start button, wait for the first message."""
    scope.locator("html[data-ww-ready]").wait_for(state="attached")
    scope.locator("#ww-welcome button[type=submit]").click()
    scope.locator("[data-message-id]").first.wait_for()


def send(scope, text: str) -> None:
    """Type `text` into the composer and send it with Enter, as a visitor does."""
    scope.locator("#ww-text").fill(text)
    scope.locator("#ww-text").press("Enter")


def out_dir() -> Path:
    """The folder named on the command line, else docs/screenshots; made if missing."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out
