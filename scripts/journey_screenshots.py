"""Screenshots of the visitor's journey for docs/visitor.md: the typing indicator, a failed
send with the words kept, and "New messages" while reading further up.

Usage: .venv/bin/python scripts/journey_screenshots.py [out_dir]
Runs the demo (bundled sandbox) and drives Debian's Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webwidget import create_app  # noqa: E402
from webwidget.sandbox.server import BackgroundServer  # noqa: E402
from webwidget.settings import Settings  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 700}


def started(browser, url: str, **context):
    """A page on the widget with a started chat."""
    page = browser.new_context(viewport=PHONE, is_mobile=True, **context).new_page()
    page.goto(url)
    page.locator("html[data-ww-ready]").wait_for(state="attached")
    page.locator("#ww-welcome button[type=submit]").click()
    page.locator("[data-message-id]").first.wait_for()
    return page


def send(page, text: str) -> None:
    page.locator("#ww-text").fill(text)
    page.locator("#ww-text").press("Enter")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as instance:
        app = create_app(settings=Settings(_env_file=None), instance_path=instance)
        server = BackgroundServer(app).start()
        sandbox = app.extensions["webwidget.upstream"].base_url
        url = f"{server.url}/w/default"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                for scheme in ("light", "dark"):
                    page = started(browser, url, color_scheme=scheme)
                    send(page, "delay")
                    page.locator(".ww-typing--on").wait_for()
                    page.wait_for_timeout(400)
                    page.screenshot(path=out / f"journey-typing-{scheme}.png")

                page = started(browser, url + "?lang=ar", color_scheme="dark", locale="ar",
                               timezone_id="Asia/Dubai")
                send(page, "delay")
                page.locator(".ww-typing--on").wait_for()
                page.wait_for_timeout(400)
                page.screenshot(path=out / "journey-typing-ar-dark.png")

                page = started(browser, url, timezone_id="America/New_York")
                faults = {"error_status": 503, "operations": ["send_message"]}
                requests.put(f"{sandbox}/_sandbox/faults", json=faults, timeout=5)
                send(page, "Can I change my booking to Friday?")
                page.locator(".ww-notice--send_failed").wait_for()
                page.wait_for_timeout(400)
                page.screenshot(path=out / "journey-send-failed.png")
                requests.delete(f"{sandbox}/_sandbox/faults", timeout=5)

                page = started(browser, url)
                send(page, "all")
                page.locator(".ww-msg--bot[data-message-id]").nth(12).wait_for(timeout=20000)
                send(page, "later")
                page.wait_for_timeout(1500)
                page.locator("#ww-log").hover()
                page.mouse.wheel(0, -1500)
                page.wait_for_timeout(300)
                requests.post(f"{sandbox}/_sandbox/clock", json={"advance": 90}, timeout=5)
                page.locator("#ww-jump").wait_for(timeout=20000)
                page.wait_for_timeout(400)
                page.screenshot(path=out / "journey-new-messages.png")
                browser.close()
        finally:
            server.stop()
    for path in sorted(out.glob("journey-*.png")):
        print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots")
