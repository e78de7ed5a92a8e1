"""Sending in Chromium: a send is acknowledged only when ChatCaptain has it. Typing during
a slow send is kept, a send without a connection waits in a bubble and goes once when the
connection is back, every refused send keeps its words; the sandbox's stored messages
prove that exactly one copy of each arrived."""

from __future__ import annotations

import re

import pytest
from conftest import faults, heal, stats
from playwright.sync_api import expect

from .conftest import BOT, VISITOR, WAIT, browser_widget_app, start_chat, wait_for
from .copies import stored, unique

PENDING = ".ww-msg--sending"


def said(scope, text: str):
    """The visitor's stored messages with exactly this text (a pending bubble has no id)."""
    return scope.locator(f"{VISITOR} .ww-msg__body").filter(
        has_text=re.compile(rf"^\s*{re.escape(text)}\s*$")
    )


def pending(scope, text: str):
    """The pending bubble (not yet stored) with exactly this text."""
    return scope.locator(PENDING).filter(
        has=scope.locator(".ww-msg__body", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$"))
    )


def type_and_send(scope, text: str) -> None:
    box = scope.get_by_label("Your message")
    box.click()
    box.press_sequentially(text)
    box.press("Enter")


def open_chat(page, site) -> None:
    page.goto(f"{site.widget}/w/default")
    start_chat(page)


# --- 5. typing is never overwritten -------------------------------------------------------


def test_typing_during_a_slow_send_is_kept_and_sent_as_its_own_message(
    page, fresh_site, sandbox_server
):
    site = fresh_site
    open_chat(page, site)
    first, second = unique("first question"), unique("and another thing")
    faults(site.sandbox, latency_ms=2500, operations=["send_message"])
    box = page.get_by_label("Your message")
    type_and_send(page, first)
    # The send is on the wire for 2.5 s: the visitor goes on typing.
    expect(pending(page, first)).to_have_count(1)
    box.press_sequentially(second)
    expect(said(page, first)).to_have_count(1, timeout=WAIT * 1000)
    expect(pending(page, first)).to_have_count(0)
    page.wait_for_timeout(1500)  # the answer and a poll or two have landed
    expect(box).to_have_value(second)
    heal(site.sandbox)
    box.press("Enter")
    expect(said(page, second)).to_have_count(1, timeout=WAIT * 1000)
    expect(box).to_have_value("")
    # Two messages, two ids: each stored once (a shared id would have dropped the second).
    assert stored(sandbox_server, first) == [first]
    assert stored(sandbox_server, second) == [second]


# --- 4. offline and reconnecting ---------------------------------------------------------


def test_sends_while_offline_wait_in_order_and_go_once_when_back(page, fresh_site, sandbox_server):
    site = fresh_site
    open_chat(page, site)
    texts = [unique("in the tunnel"), unique("still here"), unique("hello?")]
    page.context.set_offline(True)
    for text in texts:
        type_and_send(page, text)
    box = page.get_by_label("Your message")
    expect(box).to_have_value("")
    for text in texts:
        expect(pending(page, text)).to_have_count(1)
        expect(pending(page, text)).to_contain_text("Waiting to send")
    status = page.locator("#ww-status")
    expect(status).to_contain_text("offline", timeout=WAIT * 1000)
    expect(status).to_contain_text("sent when you're back")
    # Polls fail meanwhile; nothing pretends the words went, and nothing reached upstream.
    page.wait_for_timeout(2500)
    expect(page.locator(PENDING)).to_have_count(3)
    assert stats(site.sandbox)["send_message"] == 0

    page.context.set_offline(False)
    for text in texts:
        expect(said(page, text)).to_have_count(1, timeout=WAIT * 1000)
    expect(page.locator(PENDING)).to_have_count(0)
    expect(status).not_to_contain_text("offline")
    bodies = page.locator(f"{VISITOR} .ww-msg__body").all_inner_texts()
    assert [b.strip() for b in bodies if b.strip() in texts] == texts
    page.wait_for_timeout(2500)  # a few more polls: still one of each
    for text in texts:
        expect(said(page, text)).to_have_count(1)
        assert stored(sandbox_server, text) == [text]
    assert stats(site.sandbox)["send_message"] == 3


def test_a_send_whose_answer_is_lost_on_the_wire_goes_again_once(page, fresh_site, sandbox_server):
    site = fresh_site
    open_chat(page, site)
    text = unique("did this arrive")
    lost = []

    def deliver_then_drop(route):
        # The widget (and ChatCaptain) get the send; its answer never reaches the browser.
        route.fetch()
        lost.append(route.request.post_data)
        route.abort("connectionreset")

    page.route("**/w/default/send", deliver_then_drop, times=1)
    type_and_send(page, text)
    wait_for(page, lambda: lost, "the first send to be delivered and its answer dropped")
    # The connection is back with the next poll: the same id goes again, stored once.
    expect(said(page, text)).to_have_count(1, timeout=WAIT * 1000)
    expect(page.locator(PENDING)).to_have_count(0)
    echo = page.locator(BOT).filter(has_text=f"You said: {text}")
    wait_for(page, lambda: echo.count(), "the bot's echo", site)
    page.wait_for_timeout(2500)
    assert echo.count() == 1
    assert stats(site.sandbox)["send_message"] == 2
    assert stored(sandbox_server, text) == [text]


def test_a_waiting_message_can_be_discarded_or_sent_at_once(page, fresh_site, sandbox_server):
    site = fresh_site
    open_chat(page, site)
    keep, drop = unique("keep me"), unique("forget me")
    page.context.set_offline(True)
    type_and_send(page, drop)
    type_and_send(page, keep)
    expect(pending(page, drop)).to_contain_text("Waiting to send")
    pending(page, drop).get_by_role("button", name="Discard").click()
    expect(pending(page, drop)).to_have_count(0)
    expect(pending(page, keep)).to_have_count(1)
    # Still offline, "Retry now" tries and the message keeps waiting.
    pending(page, keep).get_by_role("button", name="Retry now").click()
    expect(pending(page, keep)).to_contain_text("Waiting to send")
    page.context.set_offline(False)
    expect(said(page, keep)).to_have_count(1, timeout=WAIT * 1000)
    page.wait_for_timeout(1500)
    assert stored(sandbox_server, keep) == [keep]
    assert stored(sandbox_server, drop) == []


def test_failed_polls_say_reconnecting_and_the_notice_goes_when_back(page, fresh_site):
    open_chat(page, fresh_site)
    page.context.set_offline(True)
    status = page.locator("#ww-status")
    expect(status).to_contain_text("Reconnecting", timeout=WAIT * 1000)
    page.context.set_offline(False)
    expect(status).to_have_text("", timeout=WAIT * 1000)


def test_a_quick_reply_while_offline_waits_and_goes_once(page, fresh_site, sandbox_server):
    site = fresh_site
    open_chat(page, site)
    choice = page.locator("#ww-log .ww-choice button").first
    expect(choice).to_be_visible(timeout=WAIT * 1000)
    label = choice.inner_text().strip()
    before = len(stored(sandbox_server, label))
    page.context.set_offline(True)
    choice.click()
    expect(pending(page, label)).to_contain_text("Waiting to send", timeout=WAIT * 1000)
    page.context.set_offline(False)
    expect(page.locator(PENDING)).to_have_count(0, timeout=WAIT * 1000)
    page.wait_for_timeout(1500)
    assert len(stored(sandbox_server, label)) == before + 1


# --- 1. acknowledged only when ChatCaptain has it ------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 400, 409, 413, 429])
def test_an_upstream_refusal_keeps_the_words_and_a_retry_stores_them_once(
    page, fresh_site, sandbox_server, status
):
    site = fresh_site
    open_chat(page, site)
    text = unique(f"upstream said {status}")
    faults(site.sandbox, error_status=status, operations=["send_message"])
    type_and_send(page, text)
    expect(page.locator("#ww-status")).to_contain_text("could not be sent", timeout=WAIT * 1000)
    box = page.get_by_label("Your message")
    expect(box).to_have_value(text)
    page.wait_for_timeout(2000)  # polls come and go
    expect(box).to_have_value(text)
    expect(said(page, text)).to_have_count(0)
    assert stored(sandbox_server, text) == []
    heal(site.sandbox)
    page.get_by_role("button", name="Retry now").click()
    expect(said(page, text)).to_have_count(1, timeout=WAIT * 1000)
    expect(box).to_have_value("")
    assert stored(sandbox_server, text) == [text]


def test_an_upstream_timeout_keeps_the_words(page, fresh_site, sandbox_server):
    site = fresh_site
    open_chat(page, site)
    text = unique("slow upstream")
    # Longer than the widget's read timeout to ChatCaptain: it answers 504.
    faults(site.sandbox, hang_seconds=7, operations=["send_message"], times=1)
    type_and_send(page, text)
    box = page.get_by_label("Your message")
    expect(page.locator("#ww-status")).to_contain_text("could not be sent", timeout=30 * 1000)
    expect(box).to_have_value(text)
    page.get_by_role("button", name="Retry now").click()
    expect(said(page, text)).to_have_count(1, timeout=WAIT * 1000)
    page.wait_for_timeout(1500)
    # The hung request was answered after the widget gave up: the id kept it to one copy.
    assert stored(sandbox_server, text) == [text]


def test_the_longest_text_the_box_takes_is_stored_in_any_script(page, fresh_site, sandbox_server):
    open_chat(page, fresh_site)
    # 2000 characters of three UTF-8 bytes each (the box's limit): 18,000 bytes form-encoded.
    text = unique("漢" * 1993)
    assert len(text) == 2000
    box = page.get_by_label("Your message")
    box.fill(text)
    box.press("Enter")
    # Shown with its first part and "Show more" (rendering keeps long texts short).
    expect(page.locator(f"{VISITOR} .ww-msg__body").filter(has_text=text[:40])).to_have_count(
        1, timeout=WAIT * 1000
    )
    expect(page.locator(PENDING)).to_have_count(0)
    expect(box).to_have_value("")
    assert stored(sandbox_server, text) == [text]


def test_words_typed_since_a_refused_send_stay_and_the_refused_one_can_be_retried(
    page, fresh_site, sandbox_server
):
    site = fresh_site
    open_chat(page, site)
    refused, typed = unique("refused one"), unique("typed meanwhile")
    faults(site.sandbox, latency_ms=1500, error_status=503, operations=["send_message"])
    type_and_send(page, refused)
    box = page.get_by_label("Your message")
    box.press_sequentially(typed)
    expect(pending(page, refused)).to_contain_text("Not sent", timeout=WAIT * 1000)
    expect(box).to_have_value(typed)
    heal(site.sandbox)
    pending(page, refused).get_by_role("button", name="Retry now").click()
    expect(said(page, refused)).to_have_count(1, timeout=WAIT * 1000)
    expect(box).to_have_value(typed)
    assert stored(sandbox_server, refused) == [refused]


def test_the_widgets_own_rate_limit_keeps_the_words(page, sandbox, tmp_path, sandbox_server):
    from webwidget.sandbox.server import BackgroundServer

    app = browser_widget_app(
        sandbox.url, tmp_path, CHATCAPTAIN_SENDING_ENABLED=True, WIDGET_POLL_SECONDS=1,
        RATE_LIMIT_SEND_PER_SESSION="1/minute", RATE_LIMIT_STORAGE_URL="memory://",
        WIDGET_ALLOWED_ORIGINS="http://127.0.0.1:9",
    )
    server = BackgroundServer(app).start()
    try:
        page.goto(f"http://localhost:{server.port}/w/default")
        start_chat(page)
        # "delay": the bot's last part comes 2 s later, so a poll brings it after the 429.
        first, second = "delay", unique("one too many")
        type_and_send(page, first)
        expect(said(page, first)).to_have_count(1, timeout=WAIT * 1000)
        box = page.get_by_label("Your message")
        box.fill(second)
        box.press("Enter")
        expect(page.locator("#ww-status")).to_contain_text("Too many", timeout=WAIT * 1000)
        expect(box).to_have_value(second)
        # The reply that a poll brings afterwards leaves the refusal up: the words still wait.
        expect(page.get_by_text("...done, 1.5 s later.")).to_be_visible(timeout=WAIT * 1000)
        expect(page.locator("#ww-status")).to_contain_text("Too many")
        expect(box).to_have_value(second)
        assert stored(sandbox_server, second) == []
    finally:
        server.stop()


def test_without_script_a_send_over_the_rate_limit_comes_back_with_the_words(
    browser, sandbox, tmp_path, sandbox_server
):
    from webwidget.sandbox.server import BackgroundServer

    app = browser_widget_app(
        sandbox.url, tmp_path, CHATCAPTAIN_SENDING_ENABLED=True, WIDGET_POLL_SECONDS=1,
        RATE_LIMIT_SEND_PER_SESSION="1/minute", RATE_LIMIT_STORAGE_URL="memory://",
        WIDGET_ALLOWED_ORIGINS="http://127.0.0.1:9",
    )
    server = BackgroundServer(app).start()
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"http://localhost:{server.port}/w/default")
        page.get_by_role("button", name="Start chat").click()
        first, second = unique("allowed"), unique("one too many")
        page.get_by_label("Your message").fill(first)
        page.get_by_role("button", name="Send").click()
        expect(said(page, first)).to_have_count(1, timeout=WAIT * 1000)
        page.get_by_label("Your message").fill(second)
        page.get_by_role("button", name="Send").click()
        expect(page.locator("#ww-status")).to_contain_text("Too many requests")
        expect(page.get_by_label("Your message")).to_have_value(second)
        expect(said(page, first)).to_have_count(1)
        assert stored(sandbox_server, second) == []
    finally:
        context.close()
        server.stop()


def test_a_send_after_the_chat_ended_elsewhere_keeps_the_words(page, fresh_site, sandbox_server):
    site = fresh_site
    open_chat(page, site)
    text = unique("are you still there")
    # Another tab ends the chat (same cookie).
    other = page.context.new_page()
    other.goto(f"{site.widget}/w/default")
    other.get_by_text("End chat", exact=True).click()
    other.get_by_role("button", name="Yes, end chat").click()
    expect(other.get_by_role("button", name="Start chat")).to_be_visible(timeout=WAIT * 1000)
    other.close()
    box = page.get_by_label("Your message")
    box.fill(text)
    box.press("Enter")
    # Whatever the page now shows, the words are still in a field the visitor can send.
    kept = page.locator("textarea, input[type=hidden]")

    def words_kept():
        return any(el.input_value() == text for el in kept.all())

    page.wait_for_timeout(1500)
    wait_for(page, words_kept, "the words to be kept")
    assert stored(sandbox_server, text) == []


def test_without_script_a_failed_send_comes_back_with_the_words(
    browser, fresh_site, sandbox_server
):
    site = fresh_site
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{site.widget}/w/default")
    page.get_by_role("button", name="Start chat").click()
    text = unique("no script here")
    faults(site.sandbox, error_status=503, operations=["send_message"])
    page.get_by_label("Your message").fill(text)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#ww-status")).to_contain_text("could not be sent")
    expect(page.get_by_label("Your message")).to_have_value(text)
    heal(site.sandbox)
    page.get_by_role("button", name="Send").click()
    expect(said(page, text)).to_have_count(1, timeout=WAIT * 1000)
    assert stored(sandbox_server, text) == [text]
    context.close()
