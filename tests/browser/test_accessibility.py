"""axe-core (bundled by axe-playwright-python) finds no WCAG 2.1 AA violation on widget or demo."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import REPLY, start_chat, violations, wait_for


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_open_widget_with_a_conversation(browser, fresh_site, scheme):
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    page.goto(f"{fresh_site.widget}/w/default")
    assert violations(page) == []
    start_chat(page)
    page.get_by_label("Your message").fill("help")
    page.keyboard.press("Enter")
    reply = page.locator(REPLY)
    try:
        wait_for(page, lambda: reply.count(), "the bot's reply", fresh_site)
    except AssertionError:
        print(page.content())
        raise
    log = page.get_by_role("log", name="Conversation")
    expect(log).to_have_attribute("aria-live", "polite")
    assert violations(page) == []
    context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_demo_page_closed_and_open(browser, demo_server, scheme):
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    page.goto(demo_server + "/")
    launcher = page.get_by_role("button", name="Open chat")
    expect(launcher).to_be_visible()
    assert violations(page) == []
    launcher.click()
    expect(page.frame_locator("iframe").get_by_role("button", name="Start chat")).to_be_visible()
    assert violations(page) == []
    context.close()
