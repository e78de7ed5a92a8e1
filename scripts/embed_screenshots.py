"""Screenshots of the embedded widget for docs/: launcher, welcome, conversation, End chat;
desktop and phone, light and dark, English and Arabic.

Usage: .venv/bin/python scripts/embed_screenshots.py [out_dir]
Runs the demo (bundled sandbox) and drives Debian's Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import time
from pathlib import Path

from demo_browser import Demo, demo_in_chromium, out_dir, send, start_chat

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def converse(page, demo: Demo, text: str = "buttons") -> None:
    """Open the launcher, start, and get a reply with buttons (in any UI language)."""
    page.locator("#webwidget-default button.l").click()
    frame = page.frame_locator("#webwidget-default iframe")
    start_chat(frame)
    send(frame, text)
    deadline = time.monotonic() + 20
    while frame.locator(".ww-msg--visitor[data-message-id] ~ .ww-msg--bot").count() == 0:
        assert time.monotonic() < deadline, "no reply"
        demo.advance(5)
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
    with demo_in_chromium() as (demo, browser):
        home = f"{demo.url}/"
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
            converse(page, demo)
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
                converse(page, demo)
                suffix = "" if lang == "en" else "-ar"
                page.screenshot(path=str(out / f"embed-open-phone{suffix}-{scheme}.png"))
                context.close()
        page = browser.new_page(viewport=SIZES["desktop"], color_scheme="light")
        in_arabic(page, home)
        page.goto(home)
        converse(page, demo)
        page.screenshot(path=str(out / "embed-open-desktop-ar-light.png"))


if __name__ == "__main__":
    main(out_dir())
