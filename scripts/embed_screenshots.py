"""Screenshots of the embedded widget for docs/: launcher, welcome, conversation, End chat;
desktop and phone, light and dark, English and Arabic.

Usage: .venv/bin/python scripts/embed_screenshots.py [out_dir]
Runs the demo (bundled sandbox) and drives Debian's Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webwidget import create_app  # noqa: E402
from webwidget.sandbox.server import BackgroundServer  # noqa: E402
from webwidget.settings import Settings  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def converse(page, sandbox: str, text: str = "buttons") -> None:
    """Open the launcher, start, and get a reply with buttons (in any UI language)."""
    page.locator("#webwidget-default button.l").click()
    frame = page.frame_locator("#webwidget-default iframe")
    frame.locator("html[data-ww-ready]").wait_for(state="attached")
    frame.locator("#ww-welcome button[type=submit]").click()
    frame.locator("[data-message-id]").first.wait_for()
    frame.locator("#ww-text").fill(text)
    frame.locator("#ww-composer button[type=submit]").click()
    deadline = time.monotonic() + 20
    while frame.locator(".ww-msg--visitor[data-message-id] ~ .ww-msg--bot").count() == 0:
        assert time.monotonic() < deadline, "no reply"
        requests.post(f"{sandbox}/_sandbox/clock", json={"advance": 5}, timeout=5)
        page.wait_for_timeout(300)
    page.wait_for_timeout(1000)


def in_arabic(page, url: str) -> None:
    """Serve the demo host page as an Arabic page (<html lang="ar" dir="rtl">)."""

    def arabic(route):
        response = route.fetch()
        body = response.text().replace('<html lang="en">', '<html lang="ar" dir="rtl">')
        route.fulfill(response=response, body=body)

    page.route(url, arabic)


def phone(browser, scheme: str):
    return browser.new_context(
        viewport=SIZES["phone"],
        color_scheme=scheme,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as instance:
        app = create_app(settings=Settings(_env_file=None), instance_path=instance)
        server = BackgroundServer(app).start()
        sandbox = app.extensions["webwidget.upstream"].base_url
        home = f"{server.url}/"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                for scheme in ("light", "dark"):
                    page = browser.new_page(viewport=SIZES["desktop"], color_scheme=scheme)
                    page.goto(home)
                    page.locator("#webwidget-default button.l").wait_for()
                    page.screenshot(path=str(out / f"embed-launcher-closed-{scheme}.png"))
                    page.locator("#webwidget-default button.l").click()
                    frame = page.frame_locator("#webwidget-default iframe")
                    frame.locator("html[data-ww-ready]").wait_for(state="attached")
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(out / f"embed-welcome-desktop-{scheme}.png"))
                    page.locator("#webwidget-default button.l").click()
                    converse(page, sandbox)
                    page.screenshot(path=str(out / f"embed-open-desktop-{scheme}.png"))
                    frame.locator(".ww-end summary").click()
                    page.wait_for_timeout(200)
                    page.screenshot(path=str(out / f"embed-end-chat-{scheme}.png"))
                    page.close()
                    for lang in ("en", "ar"):
                        context = phone(browser, scheme)
                        page = context.new_page()
                        if lang == "ar":
                            in_arabic(page, home)
                        page.goto(home)
                        converse(page, sandbox)
                        suffix = "" if lang == "en" else "-ar"
                        page.screenshot(path=str(out / f"embed-open-phone{suffix}-{scheme}.png"))
                        context.close()
                page = browser.new_page(viewport=SIZES["desktop"], color_scheme="light")
                in_arabic(page, home)
                page.goto(home)
                converse(page, sandbox)
                page.screenshot(path=str(out / "embed-open-desktop-ar-light.png"))
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots")
