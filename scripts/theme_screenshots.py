"""Screenshots of the theming journey in headless Chromium, for docs/theming.md.

Usage: .venv/bin/python scripts/theme_screenshots.py [out_dir]
Runs the demo (bundled sandbox) with examples/theme-harbour/widgets.toml and takes:
the harbour widget (its override, stylesheet and catalogs) in English and German, the
bakery widget, an Arabic (right-to-left) conversation, and the theme gallery.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import requests
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.screenshots import CHROMIUM_ARGS  # noqa: E402
from webwidget import create_app  # noqa: E402
from webwidget.sandbox.server import BackgroundServer  # noqa: E402
from webwidget.settings import Settings  # noqa: E402

MESSAGE = "[data-message-id]"
WAIT_MS = 20_000


def converse(page, sandbox: str, text: str, replies: int) -> None:
    """Start the chat, send `text`, let the sandbox's clock bring `replies` messages in."""
    expect(page.locator("html[data-ww-ready]")).to_have_count(1, timeout=WAIT_MS)
    page.locator("#ww-welcome button[type=submit]").click()
    expect(page.locator(MESSAGE).first).to_be_visible(timeout=WAIT_MS)
    page.fill("#ww-text", text)
    page.keyboard.press("Enter")
    requests.post(f"{sandbox}/_sandbox/clock", json={"advance": 10}, timeout=5)
    expect(page.locator(MESSAGE).nth(replies - 1)).to_be_visible(timeout=WAIT_MS)
    page.wait_for_timeout(500)  # the last swap's settle before the picture


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
            ("theme-harbour.png", "/w/harbour", "en", "text"),
            ("theme-harbour-de.png", "/w/harbour", "de", "text"),
            ("theme-bakery.png", "/w/bakery", "de", "text"),
            ("rtl-conversation.png", "/w/default?lang=ar", "ar", "مرحبا، أريد مساعدة"),
        ]
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                for name, path, locale, text in shots:
                    context = browser.new_context(
                        viewport={"width": 380, "height": 640},
                        locale=locale,
                        color_scheme="light",
                        extra_http_headers={"Accept-Language": locale},
                    )
                    page = context.new_page()
                    page.goto(f"{server.url}{path}")
                    page.screenshot(path=str(out / name.replace(".png", "-welcome.png")))
                    converse(page, sandbox, text, 3)
                    page.screenshot(path=str(out / name))
                    context.close()
                # Tall enough for every row: Chromium paints frames outside the viewport blank.
                context = browser.new_context(viewport={"width": 2280, "height": 2330})
                page = context.new_page()
                page.goto(f"{server.url}/demo/themes")
                page.wait_for_load_state("load")  # every framed picture has loaded
                page.locator("section", has=page.locator("#gallery-harbour")).screenshot(
                    path=str(out / "theme-gallery-harbour.png")
                )
                page.screenshot(path=str(out / "theme-gallery.png"))
                context.close()
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots")
