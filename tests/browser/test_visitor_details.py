"""The visitor's details in Chromium: quick replies, what the live region reads out,
contrast in dark mode and edges in forced colours."""

from __future__ import annotations

import pytest
from conftest import faults, heal
from playwright.sync_api import expect

from .conftest import (
    BOT,
    FRAME,
    LAUNCHER,
    PANEL,
    VISITOR,
    WAIT,
    reopened_after_reload,
    start_chat,
    wait_for,
)

# What a screen reader hears from the log: each element put into it whose nearest
# aria-live is the log's own (not marked off, not hidden), by its text.
ANNOUNCEMENTS = """() => {
  const log = document.getElementById('ww-log');
  window.announced = [];
  new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(n => {
    if (n.nodeType !== 1 || n.closest('[aria-hidden=true]')) return;
    if (n.closest('[aria-live]') === log) window.announced.push(n.textContent);
  }))).observe(log, {childList: true, subtree: true});
}"""


def widget_frame(page):
    return next(f for f in page.frames if "/w/default" in f.url)


def open_and_start(page, site):
    page.goto(f"{site.host}/loader")
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    start_chat(frame)
    return frame


def test_a_quick_reply_puts_focus_in_the_composer_and_only_the_newest_choices_are_live(
    page, fresh_site
):
    frame = open_and_start(page, fresh_site)
    greeting = frame.locator(BOT).first
    help_choice = greeting.get_by_role("button", name="Help")
    expect(help_choice).to_be_visible()
    help_choice.click()
    expect(frame.get_by_label("Your message")).to_be_focused(timeout=WAIT * 1000)
    wait_for(page, lambda: frame.locator(f"{VISITOR} ~ {BOT}").count(), "the reply", fresh_site)
    # The chat has moved on: the greeting's choices no longer send.
    expect(greeting.locator(".ww-choice button")).to_have_count(4)
    for button in greeting.locator(".ww-choice button").all():
        expect(button).to_be_hidden()
    frame.get_by_label("Your message").fill("buttons")
    frame.get_by_label("Your message").press("Enter")
    newest = frame.locator(BOT).filter(has_text="Pick one")
    wait_for(page, lambda: newest.count(), "the buttons message", fresh_site)
    expect(newest.get_by_role("button", name="Show location")).to_be_visible()
    expect(newest.get_by_role("link", name="Open docs")).to_be_visible()


def test_one_send_is_announced_once_and_its_status_changes_are_not(page, fresh_site):
    frame = open_and_start(page, fresh_site)
    widget_frame(page).evaluate(ANNOUNCEMENTS)
    fresh_site.hold_clock()
    box = frame.get_by_label("Your message")
    box.fill("announce me once")
    box.press("Enter")
    mine = frame.locator(VISITOR).filter(has_text="announce me once")
    wait_for(page, lambda: mine.count(), "the stored message")
    expect(mine.locator(".ww-status--sent")).to_have_count(1, timeout=WAIT * 1000)
    wait_for(page, lambda: mine.locator(".ww-status--read").count(), "Read", fresh_site)
    heard = [t for t in widget_frame(page).evaluate("window.announced")
             if "announce me" in t and "You said" not in t]  # not the bot's echo
    assert len(heard) == 1, heard


def luminance(rgb: str) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    r, g, b = (float(v) for v in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(one: str, other: str) -> float:
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_not_delivered_reads_at_4_5_to_1_in_light_and_dark(browser, fresh_site, scheme):
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    page.goto(f"{fresh_site.widget}/w/default")
    start_chat(page)
    page.get_by_label("Your message").fill("error")
    page.get_by_label("Your message").press("Enter")
    error = page.locator(".ww-msg__error")
    wait_for(page, lambda: error.count(), "the undelivered message", fresh_site)
    color = error.evaluate("e => getComputedStyle(e).color")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert contrast(color, background) >= 4.5, (color, background)
    context.close()


def test_forced_colours_keep_the_outlines_of_launcher_panel_bubbles_and_choices(
    browser, fresh_site
):
    context = browser.new_context(forced_colors="active")
    page = context.new_page()
    page.goto(f"{fresh_site.host}/loader")
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    start_chat(frame)
    outline = "e => { const s = getComputedStyle(e); return [s.outlineStyle, s.outlineWidth]; }"
    elements = (page.locator(LAUNCHER), page.locator(PANEL),
                frame.locator(".ww-msg__body").first, frame.locator(".ww-choice button").first)
    for element in elements:
        style, width = element.evaluate(outline)
        assert style == "solid" and float(width.removesuffix("px")) >= 1, (element, style, width)
    context.close()


def test_an_upstream_outage_and_its_retry_cause_no_csp_message(page, fresh_site):
    console = []
    page.on("console", lambda message: console.append(message.text))
    frame = open_and_start(page, fresh_site)
    faults(fresh_site.sandbox, error_status=503, operations=["list_messages"])
    try:
        page.reload()
        reopened_after_reload(page)
        retry = frame.locator(".ww-notice--reconnecting .ww-retry")
        expect(retry).to_be_visible(timeout=WAIT * 1000)
        retry.click()
        # The retry's answer (the outage goes on) is swapped in and settled.
        wait_for(page, lambda: sum("503" in line for line in console) >= 2, "the retry's answer")
        expect(retry).to_be_visible(timeout=WAIT * 1000)
        page.wait_for_timeout(500)
    finally:
        heal(fresh_site.sandbox)
    assert [line for line in console if "Content Security Policy" in line] == []


def test_start_is_busy_while_a_slow_upstream_creates_the_chat(page, fresh_site):
    faults(fresh_site.sandbox, latency_ms=3000, operations=["create_contact"])
    try:
        page.goto(f"{fresh_site.widget}/w/default")
        expect(page.locator("html[data-ww-ready]")).to_have_count(1, timeout=WAIT * 1000)
        start = page.get_by_role("button", name="Start chat")
        start.click()
        # Disabled for the whole 3 s the start takes: seen within 2.5 s of the click even
        # when a busy machine delays the request.
        expect(start).to_be_disabled(timeout=2500)
        expect(page.locator("form.htmx-request")).to_have_count(1)
        expect(page.locator("[data-message-id]").first).to_be_visible(timeout=WAIT * 1000)
    finally:
        heal(fresh_site.sandbox)
