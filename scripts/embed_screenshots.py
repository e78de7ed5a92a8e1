"""Screenshots of the embedded widget for docs/: launcher closed, conversation on desktop, phone.

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


def converse(page, sandbox: str) -> None:
    """Open the launcher, start, and get a reply with buttons."""
    page.locator("#webwidget-default button.l").click()
    frame = page.frame_locator("#webwidget-default iframe")
    frame.get_by_role("button", name="Start chat").click()
    frame.locator("[data-message-id]").first.wait_for()
    frame.get_by_label("Your message").fill("buttons")
    frame.get_by_role("button", name="Send").click()
    deadline = time.monotonic() + 20
    while frame.locator(".ww-msg--visitor[data-message-id] ~ .ww-msg--bot").count() == 0:
        assert time.monotonic() < deadline, "no reply"
        requests.post(f"{sandbox}/_sandbox/clock", json={"advance": 5}, timeout=5)
        time.sleep(0.3)
    time.sleep(1)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as instance:
        app = create_app(settings=Settings(_env_file=None), instance_path=instance)
        server = BackgroundServer(app).start()
        sandbox = app.extensions["webwidget.upstream"].base_url
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                for scheme in ("light", "dark"):
                    page = browser.new_page(viewport=SIZES["desktop"], color_scheme=scheme)
                    page.goto(f"{server.url}/")
                    page.locator("#webwidget-default button.l").wait_for()
                    page.screenshot(path=str(out / f"embed-launcher-closed-{scheme}.png"))
                    converse(page, sandbox)
                    page.screenshot(path=str(out / f"embed-open-desktop-{scheme}.png"))
                    page.close()
                    context = browser.new_context(
                        viewport=SIZES["phone"],
                        color_scheme=scheme,
                        is_mobile=True,
                        has_touch=True,
                        device_scale_factor=2,
                    )
                    page = context.new_page()
                    page.goto(f"{server.url}/")
                    converse(page, sandbox)
                    page.screenshot(path=str(out / f"embed-open-phone-{scheme}.png"))
                    context.close()
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots")
