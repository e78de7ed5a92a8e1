"""The launcher: keyboard and focus, lazy iframe, unread badge, phone layout, position, JS API."""

from __future__ import annotations

from playwright.sync_api import expect

from .conftest import FRAME, LAUNCHER, PANEL, VISITOR, WAIT, start_chat, wait_for


def events(page) -> list[str]:
    return [name for name, _ in page.evaluate("window.events")]


def test_keyboard_opens_lazily_focuses_inside_and_escape_returns(page, fresh_site):
    requested = []
    page.on("request", lambda r: requested.append(r.url) if "/w/" in r.url else None)
    page.goto(f"{fresh_site.host}/loader")
    launcher = page.locator(LAUNCHER)
    expect(launcher).to_have_attribute("aria-label", "Open chat")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    assert page.locator(FRAME).count() == 0 and not requested, "a page view must cost nothing"
    page.keyboard.press("Tab")
    expect(launcher).to_be_focused()
    page.keyboard.press("Enter")
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(launcher).to_have_attribute("aria-label", "Close chat")
    frame = page.frame_locator(FRAME)
    expect(frame.get_by_role("button", name="Start chat")).to_be_focused(timeout=WAIT * 1000)
    expect(frame.get_by_role("button", name="Close chat")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator(PANEL)).to_be_hidden()
    expect(launcher).to_be_focused()
    assert events(page) == ["ready", "open", "close"]


def test_unread_badge_counts_bot_messages_while_closed(page, fresh_site):
    page.goto(f"{fresh_site.host}/loader")
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    start_chat(frame)
    frame.get_by_label("Your message").fill("later")
    frame.get_by_role("button", name="Send").click()
    wait_for(page, lambda: frame.locator(VISITOR).count(), "the sent message")
    # The reply is due a minute later on the sandbox clock, which only wait_for below
    # advances: it cannot arrive before the widget is closed, and a poll brings it then.
    page.evaluate("WebWidget.close()")
    badge = page.locator("#webwidget-default .b")
    wait_for(page, lambda: badge.is_visible(), "the unread badge", fresh_site)
    assert int(badge.text_content()) >= 1
    assert "new" in page.locator(LAUNCHER).get_attribute("aria-label")
    assert "unread" in events(page)
    page.evaluate("WebWidget.toggle()")
    expect(badge).to_be_hidden()
    assert page.evaluate("WebWidget.isOpen()") is True


def test_phone_is_full_screen_and_closes_from_inside(browser, fresh_site):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(f"{fresh_site.host}/loader")
    page.locator(LAUNCHER).click()
    box = page.locator(PANEL).bounding_box()
    assert box == {"x": 0, "y": 0, "width": 390, "height": 844}
    expect(page.locator(LAUNCHER)).to_be_hidden()  # the panel covers it; close is inside
    frame = page.frame_locator(FRAME)
    frame.get_by_role("button", name="Close chat").click()
    expect(page.locator(PANEL)).to_be_hidden()
    expect(page.locator(LAUNCHER)).to_be_visible()
    context.close()


def test_left_position(page, fresh_site):
    page.goto(f"{fresh_site.host}/loader?position=left")
    box = page.locator(LAUNCHER).bounding_box()
    assert box["x"] < 100
    page.locator(LAUNCHER).click()
    assert page.locator(PANEL).bounding_box()["x"] < 100
