"""Take the README's screenshots of the demo in headless Chromium (Debian's /usr/bin/chromium).

Usage: .venv/bin/python scripts/screenshots.py [out_dir]
"""

from __future__ import annotations

import time
from pathlib import Path

from demo_browser import demo_in_chromium, out_dir, send, start_chat


def main(out: Path) -> None:
    with demo_in_chromium() as (demo, browser):
        for scheme in ("light", "dark"):
            page = browser.new_page(viewport={"width": 400, "height": 1800}, color_scheme=scheme)
            page.goto(f"{demo.url}/w/default")
            start_chat(page)
            send(page, "all")
            demo.advance(10)
            deadline = time.monotonic() + 20
            while page.locator("[data-message-id]").count() < 20:
                assert time.monotonic() < deadline, "the bot's replies did not arrive"
                page.wait_for_timeout(200)
            page.wait_for_timeout(500)
            # The log scrolls inside the frame; grow the viewport to show all of it.
            extra = page.locator("#ww-log").evaluate("e => e.scrollHeight - e.clientHeight")
            page.set_viewport_size({"width": 400, "height": 1800 + int(extra)})
            page.wait_for_timeout(300)
            page.screenshot(path=str(out / f"conversation-all-kinds-{scheme}.png"), full_page=True)
            page.close()


if __name__ == "__main__":
    main(out_dir())
