"""A slow upstream in Chromium: the panel shows the frame at once, never a white page."""

from __future__ import annotations

from conftest import faults, heal
from playwright.sync_api import expect

from .conftest import BOT, FRAME, LAUNCHER, WAIT, reopened_after_reload, start_chat


def test_with_a_slow_upstream_the_reopened_panel_shows_the_chat_at_once(page, fresh_site):
    page.goto(f"{fresh_site.host}/loader")
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    start_chat(frame)
    faults(fresh_site.sandbox, latency_ms=4000, operations=["list_messages"])
    try:
        page.reload()
        reopened_after_reload(page)  # the chat that was open opens again by itself
        # The header and the conversation the poller had (not a white frame for 4 s).
        expect(frame.get_by_role("heading", name="Chat with us")).to_be_visible(timeout=1500)
        expect(frame.locator(BOT).first).to_be_visible(timeout=1500)
    finally:
        heal(fresh_site.sandbox)
    expect(frame.get_by_label("Your message")).to_be_visible(timeout=WAIT * 1000)
