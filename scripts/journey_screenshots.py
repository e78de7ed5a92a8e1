"""Screenshots of the visitor's journey for docs/visitor.md: the typing indicator, a failed
send with the words kept, and "New messages" while reading further up.

Usage: .venv/bin/python scripts/journey_screenshots.py [out_dir]
Runs the demo (bundled sandbox) and drives Debian's Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

from pathlib import Path

from demo_browser import demo_in_chromium, out_dir, send, start_chat

PHONE = {"width": 390, "height": 700}


def started(browser, url: str, **context):
    """A page on the widget with a started chat."""
    page = browser.new_context(viewport=PHONE, is_mobile=True, **context).new_page()
    page.goto(url)
    start_chat(page)
    return page


def main(out: Path) -> None:
    with demo_in_chromium() as (demo, browser):
        url = f"{demo.url}/w/default"
        for scheme in ("light", "dark"):
            page = started(browser, url, color_scheme=scheme)
            send(page, "delay")
            page.locator(".ww-typing--on").wait_for()
            page.wait_for_timeout(400)
            page.screenshot(path=out / f"journey-typing-{scheme}.png")

        page = started(
            browser, url + "?lang=ar", color_scheme="dark", locale="ar", timezone_id="Asia/Dubai"
        )
        send(page, "delay")
        page.locator(".ww-typing--on").wait_for()
        page.wait_for_timeout(400)
        page.screenshot(path=out / "journey-typing-ar-dark.png")

        page = started(browser, url, timezone_id="America/New_York")
        demo.faults({"error_status": 503, "operations": ["send_message"]})
        send(page, "Can I change my booking to Friday?")
        page.locator(".ww-notice--send_failed").wait_for()
        page.wait_for_timeout(400)
        page.screenshot(path=out / "journey-send-failed.png")
        demo.faults(None)

        page = started(browser, url)
        send(page, "all")
        page.locator(".ww-msg--bot[data-message-id]").nth(12).wait_for(timeout=20000)
        send(page, "later")
        page.wait_for_timeout(1500)
        page.locator("#ww-log").hover()
        page.mouse.wheel(0, -1500)
        page.wait_for_timeout(300)
        demo.advance(90)
        page.locator("#ww-jump").wait_for(timeout=20000)
        page.wait_for_timeout(400)
        page.screenshot(path=out / "journey-new-messages.png")
    for path in sorted(out.glob("journey-*.png")):
        print(path)


if __name__ == "__main__":
    main(out_dir())
