"""The unread signal across the site's pages (issue 21): a reply that comes while the
visitor goes on to another page raises the launcher's badge and the tab's title there,
without the frame (no frame is created before the visitor opens it); a panel left open
stays open on the next page, without taking the focus from it."""

from __future__ import annotations

from playwright.sync_api import expect

from .conftest import BOT, FRAME, LAUNCHER, PANEL, WAIT, start_chat, wait_for
from .test_visitor_journey import open_loader, said, send

BADGE = "#webwidget-default .b"


def test_a_reply_while_the_visitor_browses_on_shows_on_the_next_page(page, fresh_site):
    site = fresh_site
    frame = open_loader(page, site)
    start_chat(frame)
    # `later`: the bot answers a minute later on the sandbox's clock.
    send(frame, "later")
    expect(said(frame, "later")).to_have_count(1, timeout=WAIT * 1000)
    page.evaluate("WebWidget.close()")

    page.goto(f"{site.host}/loader?p=2")  # the site's next page
    expect(page.locator(LAUNCHER)).to_be_visible(timeout=WAIT * 1000)
    badge = page.locator(BADGE)
    # The loader asks soon while the reply is due; the sandbox's clock moves meanwhile.
    wait_for(page, lambda: badge.is_visible(), "the badge on the next page", site,
             seconds=2 * WAIT)
    expect(badge).to_have_text("1")
    assert page.title() == "(1) Host"
    expect(page.locator(FRAME)).to_have_count(0)  # no frame, so no chat loaded for it
    label = page.locator(LAUNCHER).get_attribute("aria-label")
    assert "1" in label, label

    page.locator(LAUNCHER).click()
    widget = page.frame_locator(FRAME)
    expect(widget.locator(BOT).last).to_contain_text("a minute later", timeout=WAIT * 1000)
    expect(badge).to_be_hidden()
    assert page.title() == "Host"

    # Seen now: the page after that shows no badge.
    page.evaluate("WebWidget.close()")
    with page.expect_response("**/w/default/unread*") as asked:
        page.goto(f"{site.host}/loader?p=3")
    assert asked.value.json() == {"chat": True, "unread": 0, "every": 15}
    expect(page.locator(LAUNCHER)).to_be_visible(timeout=WAIT * 1000)
    expect(badge).to_be_hidden()
    assert page.title() == "Host"


def test_a_panel_left_open_stays_open_on_the_next_page_without_taking_the_focus(
    page, fresh_site
):
    site = fresh_site
    frame = open_loader(page, site)
    start_chat(frame)
    page.goto(f"{site.host}/loader?p=2")
    expect(page.locator(PANEL)).to_be_visible(timeout=WAIT * 1000)
    widget = page.frame_locator(FRAME)
    expect(widget.locator(BOT).first).to_be_visible(timeout=WAIT * 1000)
    assert page.evaluate("document.activeElement === document.body")
    assert page.evaluate("WebWidget.isOpen()") is True

    page.evaluate("WebWidget.close()")
    page.goto(f"{site.host}/loader?p=3")
    expect(page.locator(LAUNCHER)).to_be_visible(timeout=WAIT * 1000)
    expect(page.locator(PANEL)).to_be_hidden()
    expect(page.locator(FRAME)).to_have_count(0)
