"""Screenshots of two themes and an Arabic (right-to-left) conversation, in headless Chromium.

Usage: .venv/bin/python scripts/theme_screenshots.py [out_dir]
Runs the demo (bundled sandbox) with examples/theme-harbour/widgets.toml.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.screenshots import CHROMIUM_ARGS  # noqa: E402
from webwidget import create_app  # noqa: E402
from webwidget.sandbox.server import BackgroundServer  # noqa: E402
from webwidget.settings import Settings  # noqa: E402


def wait_count(page, selector: str, count: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while page.locator(selector).count() < count:
        assert time.monotonic() < deadline, f"fewer than {count} of {selector}"
        time.sleep(0.2)


def converse(page, sandbox: str, text: str, replies: int) -> None:
    page.get_by_role("button").filter(
        has_text=page.locator("#ww-welcome button").inner_text()
    ).click()
    wait_count(page, "[data-message-id]", 1)
    page.fill("#ww-text", text)
    page.keyboard.press("Enter")
    requests.post(f"{sandbox}/_sandbox/clock", json={"advance": 10}, timeout=5)
    wait_count(page, "[data-message-id]", replies)
    time.sleep(0.5)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HARBOUR_CHANNEL_TOKEN", "channel_token_xyz789")
    os.environ.setdefault("BAKERY_CHANNEL_TOKEN", "channel_token_xyz789")
    with tempfile.TemporaryDirectory() as instance:
        settings = Settings(
            _env_file=None, WIDGETS_FILE=str(ROOT / "examples/theme-harbour/widgets.toml")
        )
        app = create_app({"TESTING": False}, settings=settings, instance_path=instance)
        server = BackgroundServer(app).start()
        sandbox = app.extensions["webwidget.upstream"].base_url
        shots = [
            ("theme-harbour.png", "/w/harbour", "en", "light", "text"),
            ("theme-bakery.png", "/w/bakery", "de", "light", "text"),
            ("rtl-conversation.png", "/w/default?lang=ar", "ar", "light", "مرحبا، أريد مساعدة"),
        ]
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                for name, path, locale, scheme, text in shots:
                    context = browser.new_context(
                        viewport={"width": 380, "height": 640}, locale=locale, color_scheme=scheme
                    )
                    page = context.new_page()
                    page.goto(f"{server.url}{path}")
                    page.screenshot(path=str(out / name.replace(".png", "-welcome.png")))
                    converse(page, sandbox, text, 3)
                    page.screenshot(path=str(out / name))
                    context.close()
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots")
