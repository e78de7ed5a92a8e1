"""Screenshots of the theming journey in headless Chromium, for docs/theming.md.

Usage: .venv/bin/python scripts/theme_screenshots.py [out_dir]
Runs the demo (bundled sandbox) with examples/theme-harbour/widgets.toml and takes:
the harbour widget (its override, stylesheet and catalogs) in English and German, the
bakery widget, an Arabic (right-to-left) conversation, and the theme gallery.
"""

from __future__ import annotations

import os
from pathlib import Path

from demo_browser import ROOT, Demo, demo_in_chromium, out_dir, send, start_chat
from playwright.sync_api import expect

MESSAGE = "[data-message-id]"
WAIT_MS = 20_000
SHOTS = [
    ("theme-harbour.png", "/w/harbour", "en", "text"),
    ("theme-harbour-de.png", "/w/harbour", "de", "text"),
    ("theme-bakery.png", "/w/bakery", "de", "text"),
    ("rtl-conversation.png", "/w/default?lang=ar", "ar", "مرحبا، أريد مساعدة"),
]


def converse(page, demo: Demo, text: str, replies: int) -> None:
    """Start the chat, send `text`, let the sandbox's clock bring `replies` messages in."""
    start_chat(page)
    send(page, text)
    demo.advance(10)
    expect(page.locator(MESSAGE).nth(replies - 1)).to_be_visible(timeout=WAIT_MS)
    page.wait_for_timeout(500)  # the last swap's settle before the picture


def main(out: Path) -> None:
    os.environ.setdefault("HARBOUR_CHANNEL_TOKEN", "channel_token_xyz789")
    os.environ.setdefault("BAKERY_CHANNEL_TOKEN", "channel_token_xyz789")
    widgets = str(ROOT / "examples/theme-harbour/widgets.toml")
    with demo_in_chromium(WIDGETS_FILE=widgets) as (demo, browser):
        for name, path, locale, text in SHOTS:
            context = browser.new_context(
                viewport={"width": 380, "height": 640},
                locale=locale,
                color_scheme="light",
                extra_http_headers={"Accept-Language": locale},
            )
            page = context.new_page()
            page.goto(f"{demo.url}{path}")
            page.screenshot(path=str(out / name.replace(".png", "-welcome.png")))
            converse(page, demo, text, 3)
            page.screenshot(path=str(out / name))
            context.close()
        # Tall enough for every row: Chromium paints frames outside the viewport blank.
        context = browser.new_context(viewport={"width": 2280, "height": 2330})
        page = context.new_page()
        page.goto(f"{demo.url}/demo/themes")
        page.wait_for_load_state("load")  # every framed picture has loaded
        # A row per widget and language set wraps: grow the viewport to the whole page.
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": 2280, "height": height})
        page.wait_for_timeout(1500)
        page.locator("section", has=page.locator("#gallery-harbour")).screenshot(
            path=str(out / "theme-gallery-harbour.png")
        )
        page.screenshot(path=str(out / "theme-gallery.png"))
        context.close()


if __name__ == "__main__":
    main(out_dir())
