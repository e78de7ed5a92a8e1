"""Take the README's screenshots of the demo in headless Chromium (Debian's /usr/bin/chromium).

Usage: .venv/bin/python scripts/screenshots.py [out_dir]
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


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as instance:
        settings = Settings(_env_file=None)
        app = create_app({"TESTING": False}, settings=settings, instance_path=instance)
        server = BackgroundServer(app).start()
        sandbox = app.extensions["webwidget.upstream"].base_url
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                for scheme in ("light", "dark"):
                    page = browser.new_page(
                        viewport={"width": 400, "height": 1800}, color_scheme=scheme
                    )
                    page.goto(f"{server.url}/w/default")
                    page.click("text=Start chat")
                    page.wait_for_selector("[data-message-id]")
                    page.fill("#ww-text", "all")
                    page.keyboard.press("Enter")
                    requests.post(f"{sandbox}/_sandbox/clock", json={"advance": 10}, timeout=5)
                    deadline = time.monotonic() + 20
                    while page.locator("[data-message-id]").count() < 20:
                        assert time.monotonic() < deadline, "the bot's replies did not arrive"
                        time.sleep(0.2)
                    time.sleep(0.5)
                    # The log scrolls inside the frame; grow the viewport to show all of it.
                    extra = page.locator("#ww-log").evaluate("e => e.scrollHeight - e.clientHeight")
                    page.set_viewport_size({"width": 400, "height": 1800 + int(extra)})
                    time.sleep(0.3)
                    page.screenshot(
                        path=str(out / f"conversation-all-kinds-{scheme}.png"), full_page=True
                    )
                    page.close()
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots")
