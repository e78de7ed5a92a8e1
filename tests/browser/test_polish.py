"""What a visitor notices at a glance: filled primary actions, distinct errors, media, icons."""

from __future__ import annotations

import re

import pytest
import requests
from conftest import faults
from playwright.sync_api import expect

from webwidget.themes import contrast_ratio

from .conftest import (
    FRAME,
    LAUNCHER,
    MESSAGE,
    REPLY,
    WAIT,
    open_and_start,
    start_chat,
    violations,
    wait_for,
)

# The next chat start fails: the upstream answers 503.
START_FAILS = {"error_status": 503, "operations": ["create_contact", "create_conversation"]}


def css(locator, prop: str) -> str:
    return locator.evaluate(f"e => getComputedStyle(e).{prop}")


def hex_color(rgb: str) -> str:
    r, g, b = (int(v) for v in re.findall(r"\d+", rgb)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_primary_actions_are_filled_with_readable_text(browser, fresh_site, scheme):
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    page.goto(f"{fresh_site.widget}/w/default")
    expect(page.locator("html[data-ww-ready]")).to_have_count(1, timeout=WAIT * 1000)
    header_bg = css(page.locator(".ww-header"), "backgroundColor")
    for name in ("Start chat", "Send"):
        if name == "Send":
            page.get_by_role("button", name="Start chat").click()
        button = page.get_by_role("button", name=name, exact=True)
        expect(button).to_be_visible(timeout=WAIT * 1000)
        background, text = css(button, "backgroundColor"), css(button, "color")
        assert background == header_bg, f"{name} is not filled with the primary colour"
        ratio = contrast_ratio(hex_color(text), hex_color(background))
        assert ratio >= 4.5, f"{name}: {text} on {background} is {ratio:.2f}:1"
    context.close()


def test_error_notices_look_different_from_information(page, fresh_site):
    open_and_start(page, fresh_site)
    page.locator(".ww-end summary").click()
    page.get_by_role("button", name="Yes, end chat").click()
    info = page.locator(".ww-notice--ended")
    expect(info).to_be_visible(timeout=WAIT * 1000)
    info_look = (css(info, "backgroundColor"), css(info, "borderLeftColor"))
    faults(fresh_site.sandbox, **START_FAILS)
    page.get_by_role("button", name="Start chat").click()
    error = page.locator(".ww-notice--start_failed")
    expect(error).to_be_visible(timeout=WAIT * 1000)
    error_look = (css(error, "backgroundColor"), css(error, "borderLeftColor"))
    assert error_look[0] != info_look[0] and error_look[1] != info_look[1]
    assert "⚠" in error.evaluate("e => getComputedStyle(e, '::before').content")


def test_file_messages_play_download_and_open_full_size(page, demo_server):
    # Demo mode: the page's CSP allows media from the bundled sandbox, as from https hosts.
    page.goto(f"{demo_server}/w/default")
    start_chat(page)
    page.get_by_label("Your message").fill("all")
    page.keyboard.press("Enter")
    video = page.locator(".ww-file--video video")
    files = page.locator(".ww-file")
    wait_for(page, lambda: video.count() and files.count() >= 4, "image, audio, video and document")
    for figure in files.all():
        media = figure.locator("img, audio, video, a.ww-file__link").first
        url = media.get_attribute("src") or media.get_attribute("href")
        download = figure.locator("a.ww-file__download")
        expect(download).to_have_attribute("href", url)
        expect(download).to_have_attribute("download", re.compile(r".+"))
    image = page.locator(".ww-file--image img").first
    link = page.locator(".ww-file--image a.ww-file__full").first
    expect(link).to_have_attribute("href", image.get_attribute("src"))
    expect(link).to_have_attribute("target", "_blank")
    # The browser can play the sample video: asked to load, its metadata arrives, no error.
    video.first.evaluate("v => { v.preload = 'metadata'; v.load(); }")
    page.wait_for_function(
        "() => { const v = document.querySelector('.ww-file--video video');"
        " return v.readyState >= 1 || v.error; }",
        timeout=WAIT * 1000,
    )
    state = video.first.evaluate("v => [v.error && v.error.code, v.readyState, v.videoWidth]")
    assert state == [None, state[1], 192] and state[1] >= 1, state


def test_demo_page_has_a_favicon_and_no_missing_file(browser, demo_server):
    context = browser.new_context()
    page = context.new_page()
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
    page.goto(demo_server)
    icon = page.locator("link[rel=icon]")
    expect(icon).to_have_count(1)
    href = icon.get_attribute("href")
    assert requests.get(f"{demo_server}{href}", timeout=5).status_code == 200
    assert requests.get(f"{demo_server}/favicon.ico", timeout=5).status_code == 200
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    expect(frame.locator("html[data-ww-ready]")).to_have_count(1, timeout=WAIT * 1000)
    assert missing == []
    context.close()


def test_first_screen_invites_with_an_icon_and_a_wide_action(page, fresh_site):
    page.set_viewport_size({"width": 380, "height": 640})
    page.goto(f"{fresh_site.widget}/w/default")
    expect(page.locator(".ww-welcome__icon svg, .ww-welcome__icon img")).to_have_count(1)
    expect(page.locator(".ww-brand__avatar")).to_have_count(1)
    button = page.get_by_role("button", name="Start chat").bounding_box()
    assert button["width"] >= 300 and button["height"] >= 40
    greeting = page.locator(".ww-greeting")
    assert float(css(greeting, "fontSize").removesuffix("px")) >= 20
    # The card sits in the middle of the panel, not in its top corner.
    box = greeting.bounding_box()
    assert 150 < box["y"] < 450


def test_end_chat_sits_in_the_header_and_confirms_without_javascript(browser, fresh_site):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 700})
    page = context.new_page()
    page.goto(f"{fresh_site.widget}/w/default")
    page.get_by_role("button", name="Start chat").click()
    expect(page.locator(MESSAGE).first).to_be_visible(timeout=WAIT * 1000)
    toggle = page.locator(".ww-header .ww-end summary")
    expect(toggle).to_have_text("End chat")
    # Not under Send any more: nothing to end the chat by accident next to the composer.
    expect(page.locator("#ww-composer ~ form, #ww-conversation .ww-end")).to_have_count(0)
    confirm = page.get_by_role("button", name="Yes, end chat")
    expect(confirm).to_be_hidden()
    toggle.click()
    expect(page.get_by_text("End this chat?")).to_be_visible()
    confirm.click()
    # A plain form post and its 303: back to the welcome view, the chat gone.
    expect(page.get_by_role("button", name="Start chat")).to_be_visible(timeout=WAIT * 1000)
    expect(page.locator(MESSAGE)).to_have_count(0)
    expect(page.locator(".ww-header .ww-end")).to_have_count(0)
    context.close()


def test_end_chat_with_htmx_keeps_the_header_in_step(page, fresh_site):
    open_and_start(page, fresh_site)
    page.locator(".ww-header .ww-end summary").click()
    page.get_by_role("button", name="Yes, end chat").click()
    expect(page.locator(".ww-notice--ended")).to_be_visible(timeout=WAIT * 1000)
    expect(page.locator(".ww-header .ww-end")).to_have_count(0)
    page.get_by_role("button", name="Start chat").click()
    expect(page.locator(".ww-header .ww-end summary")).to_be_visible(timeout=WAIT * 1000)


def test_a_poll_crossing_a_send_never_shows_a_message_twice(page, fresh_site):
    open_and_start(page, fresh_site)
    before = page.locator("#ww-poller").get_attribute("hx-get")
    page.get_by_label("Your message").fill("help")
    page.keyboard.press("Enter")
    reply = page.locator(REPLY)
    wait_for(page, lambda: reply.count(), "the bot's reply", fresh_site)
    # Two polls that still carry the version from before the send, as one that crossed
    # the send's answer does: their appends must not repeat what the log already shows.
    for _ in range(2):
        page.evaluate(
            "url => new Promise(done => htmx.ajax('GET', url, {swap: 'none'}).then(done))",
            before,
        )
    ids = [el.get_attribute("data-message-id") for el in page.locator(MESSAGE).all()]
    assert len(ids) == len(set(ids)), ids


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_end_chat_confirmation_and_error_notice_pass_axe(browser, fresh_site, scheme):
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    open_and_start(page, fresh_site)
    page.locator(".ww-header .ww-end summary").click()
    expect(page.get_by_role("button", name="Yes, end chat")).to_be_visible()
    assert violations(page) == []
    page.get_by_role("button", name="Yes, end chat").click()
    expect(page.locator(".ww-notice--ended")).to_be_visible(timeout=WAIT * 1000)
    faults(fresh_site.sandbox, **START_FAILS)
    page.get_by_role("button", name="Start chat").click()
    expect(page.locator(".ww-notice--start_failed")).to_be_visible(timeout=WAIT * 1000)
    assert violations(page) == []
    context.close()
