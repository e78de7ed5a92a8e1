"""The visitor's journey in Chromium: the newest message in view, focus in the composer,
words that survive a failed send, recovery that keeps the embedding, local times, the
typing indicator, a composer that grows, and no CSP violation on the way."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from conftest import CHANNEL_TOKEN, faults, heal, stats
from playwright.sync_api import expect

from .conftest import (
    BOT,
    FRAME,
    LAUNCHER,
    MESSAGE,
    PANEL,
    VISITOR,
    WAIT,
    reopened_after_reload,
    start_chat,
    wait_for,
)

TYPING_ON = re.compile(r"\bww-typing--on\b")


def newest_in_view(scope) -> bool:
    """The last message's bottom edge is inside the log's visible box."""
    log = scope.locator("#ww-log").bounding_box()
    last = scope.locator(MESSAGE).last.bounding_box()
    if not log or not last:
        return False
    return log["y"] <= last["y"] + last["height"] <= log["y"] + log["height"] + 2


def wait_for_newest_in_view(page, frame, when: str) -> None:
    """Wait until the newest message is in view; if it never is, say where the log stood."""
    try:
        wait_for(page, lambda: newest_in_view(frame), f"the newest message in view {when}")
    except AssertionError as timeout:
        where = frame.locator("#ww-log").evaluate(
            "e => ({scrollHeight: e.scrollHeight, scrollTop: e.scrollTop,"
            " clientHeight: e.clientHeight, jumpShown: !document.getElementById('ww-jump').hidden,"
            " imagesLoading: [...e.querySelectorAll('img')].filter(i => !i.complete).length})"
        )
        raise AssertionError(f"{timeout}; the log: {where}") from None


def open_loader(page, site):
    """The host page with the loader, opened, the frame's script running."""
    page.goto(f"{site.host}/loader")
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    expect(frame.locator("html[data-ww-ready]")).to_have_count(1, timeout=WAIT * 1000)
    return frame


def send(scope, text: str) -> None:
    scope.get_by_label("Your message").fill(text)
    scope.get_by_label("Your message").press("Enter")


def said(scope, text: str):
    """The visitor's messages with exactly this text (the optimistic copy has no id)."""
    bodies = scope.locator(f"{VISITOR} .ww-msg__body")
    return bodies.filter(has_text=re.compile(rf"^\s*{re.escape(text)}\s*$"))


def test_newest_message_in_view_after_a_burst_a_reload_a_reopen_and_the_badge(page, fresh_site):
    site = fresh_site
    frame = open_loader(page, site)
    start_chat(frame)
    send(frame, "all")
    # The burst: every content kind, images and media included.
    wait_for(page, lambda: frame.locator(BOT).count() >= 15, "the burst", site)
    wait_for_newest_in_view(page, frame, "after the burst")

    page.reload()
    reopened_after_reload(page)
    wait_for(page, lambda: frame.locator(BOT).count() >= 15, "the conversation after a reload")
    wait_for_newest_in_view(page, frame, "after a reload")

    page.evaluate("WebWidget.close()")
    page.locator(LAUNCHER).click()
    wait_for_newest_in_view(page, frame, "after reopening")

    # A reply that arrives while closed raises the badge; opening shows it.
    send(frame, "later")
    expect(said(frame, "later")).to_have_count(1, timeout=WAIT * 1000)
    page.evaluate("WebWidget.close()")
    badge = page.locator("#webwidget-default .b")
    wait_for(page, lambda: badge.is_visible(), "the unread badge", site)
    page.locator(LAUNCHER).click()
    expect(frame.locator(BOT).last).to_contain_text("a minute later", timeout=WAIT * 1000)
    wait_for_newest_in_view(page, frame, "after the badge")


def chat_with_a_burst(page, site) -> None:
    """The widget page with a chat holding every content kind: a log that scrolls."""
    page.goto(f"{site.widget}/w/default")
    start_chat(page)
    send(page, "all")
    wait_for(page, lambda: page.locator(BOT).count() >= 15, "the burst", site)


def test_a_visitor_reading_further_up_keeps_the_place_and_gets_a_way_down(page, fresh_site):
    site = fresh_site
    chat_with_a_burst(page, site)
    # `later`: the reply is due a minute later on the sandbox clock, which `until` advances.
    send(page, "later")
    expect(said(page, "later")).to_have_count(1, timeout=WAIT * 1000)
    wait_for(page, lambda: newest_in_view(page), "the newest message in view")
    jump = page.get_by_role("button", name="New messages")
    expect(jump).to_be_hidden()

    page.locator("#ww-log").hover()
    page.mouse.wheel(0, -5000)
    wait_for(page, lambda: not newest_in_view(page), "the log scrolled up")
    first = page.locator(MESSAGE).first
    top = first.bounding_box()["y"]
    late = page.locator(BOT).filter(has_text="a minute later")
    wait_for(page, lambda: late.count(), "the late reply", site)
    expect(jump).to_be_visible()
    assert abs(first.bounding_box()["y"] - top) < 2, "the visitor's place moved"
    assert not newest_in_view(page)
    jump.click()
    wait_for(page, lambda: newest_in_view(page), "the newest message after the button")
    expect(jump).to_be_hidden()


GROWTH_RACE = """async () => {
  const log = document.getElementById("ww-log");
  const grow = (tag) => {
    const el = log.appendChild(document.createElement(tag));
    el.style.cssText = "display:block;height:300px;flex:none";
    return el;
  };
  const frames = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  grow("div");
  // Our own scroll to the end (the jump button's way); its scroll event comes later...
  document.getElementById("ww-jump").click();
  // ...after the log has grown again, as when an image's size arrives first.
  grow("div");
  await frames();
  // An image loading now must be followed: the visitor never left the end.
  grow("img").dispatchEvent(new Event("load"));
  await frames();
  return log.scrollHeight - log.scrollTop - log.clientHeight;
}"""


def test_growth_before_our_own_scroll_event_does_not_unpin_the_log(page, fresh_site):
    """The race behind a rare failure of the test above: the log grew between the widget's
    scroll to the end and that scroll's event, which then read as the visitor scrolling
    up, so the image that loaded next was not followed."""
    site = fresh_site
    chat_with_a_burst(page, site)
    wait_for(page, lambda: newest_in_view(page), "the newest message in view")
    assert page.evaluate(GROWTH_RACE) <= 2


def test_keyboard_start_and_reopen_put_focus_in_the_composer(page, fresh_site):
    page.goto(f"{fresh_site.host}/loader")
    expect(page.locator(LAUNCHER)).to_be_visible(timeout=WAIT * 1000)
    page.keyboard.press("Tab")
    expect(page.locator(LAUNCHER)).to_be_focused()
    page.keyboard.press("Enter")
    frame = page.frame_locator(FRAME)
    start_button = frame.get_by_role("button", name="Start chat")
    expect(start_button).to_be_focused(timeout=WAIT * 1000)
    expect(frame.locator("html[data-ww-ready]")).to_have_count(1, timeout=WAIT * 1000)
    page.keyboard.press("Enter")
    box = frame.get_by_label("Your message")
    expect(box).to_be_focused(timeout=WAIT * 1000)
    page.keyboard.type("hello from the keyboard")
    page.keyboard.press("Enter")
    expect(said(frame, "hello from the keyboard")).to_have_count(1, timeout=WAIT * 1000)
    assert said(frame, "help").count() == 0

    page.keyboard.press("Escape")
    expect(page.locator(PANEL)).to_be_hidden()
    expect(page.locator(LAUNCHER)).to_be_focused()
    page.keyboard.press("Enter")
    expect(box).to_be_focused(timeout=WAIT * 1000)
    page.keyboard.type("x")
    expect(box).to_have_value("x")


def test_a_failed_send_keeps_the_words_and_retry_sends_them_once(page, fresh_site):
    site = fresh_site
    page.goto(f"{site.widget}/w/default")
    start_chat(page)
    faults(site.sandbox, error_status=503, operations=["send_message"])
    send(page, "my important question")
    notice = page.locator("#ww-status")
    expect(notice).to_contain_text("could not be sent", timeout=WAIT * 1000)
    box = page.get_by_label("Your message")
    expect(box).to_have_value("my important question")
    expect(box).to_be_focused()
    # Polls come and go; the words stay, and nothing pretends they were sent.
    page.wait_for_timeout(2500)
    expect(box).to_have_value("my important question")
    assert said(page, "my important question").count() == 0

    heal(site.sandbox)
    page.get_by_role("button", name="Retry now").click()
    expect(said(page, "my important question")).to_have_count(1, timeout=WAIT * 1000)
    expect(box).to_have_value("")
    echo = page.locator(BOT).filter(has_text="You said: my important question")
    wait_for(page, lambda: echo.count(), "the bot's echo", site)
    page.wait_for_timeout(2500)  # a few more polls: still one message, one echo
    assert said(page, "my important question").count() == 1
    assert echo.count() == 1


def test_a_retry_after_the_upstream_stored_the_message_makes_no_duplicate(page, fresh_site):
    site = fresh_site
    page.goto(f"{site.widget}/w/default")
    start_chat(page)
    # The send reaches the upstream, but the widget's answer fails (its list call does).
    faults(site.sandbox, error_status=503, operations=["list_messages"])
    send(page, "only once please")
    box = page.get_by_label("Your message")
    expect(page.locator("#ww-status")).to_contain_text("trouble", timeout=WAIT * 1000)
    expect(box).to_have_value("only once please")
    heal(site.sandbox)
    page.get_by_role("button", name="Send").click()
    expect(said(page, "only once please")).to_have_count(1, timeout=WAIT * 1000)
    echo = page.locator(BOT).filter(has_text="You said: only once please")
    wait_for(page, lambda: echo.count(), "the bot's echo", site)
    page.wait_for_timeout(2500)
    assert said(page, "only once please").count() == 1
    assert echo.count() == 1
    assert stats(site.sandbox)["send_message"] == 2  # it was sent twice, and stored once


def test_retry_now_recovers_in_place_and_keeps_the_embedding(page, fresh_site):
    site = fresh_site
    frame = open_loader(page, site)
    start_chat(frame)
    before = frame.locator(MESSAGE).count()
    faults(site.sandbox, error_status=503, operations=["list_messages"])
    # The next poll that reaches the upstream fails.
    frame.locator("#ww-poller").dispatch_event("ww:visible")
    retry = frame.get_by_role("link", name="Retry now")
    expect(retry).to_be_visible(timeout=WAIT * 1000)
    # From here no poll may recover first: the link itself must do it. Polls the page
    # makes once the click is made (its new poller's) go through.
    clicked = []
    page.route("**/w/default/messages*",
               lambda route: route.continue_() if clicked else route.abort())
    heal(site.sandbox)
    widget_frame = next(f for f in page.frames if "/w/default" in f.url)
    url = widget_frame.url
    assert "page=" in url and "lang=en" in url
    retry.click()
    clicked.append(True)
    expect(frame.locator("#ww-status")).to_have_text("", timeout=WAIT * 1000)
    expect(frame.locator(MESSAGE)).to_have_count(before)
    assert widget_frame.url == url  # recovered in place: no navigation
    expect(frame.get_by_label("Your message")).to_be_focused()
    # The embedding still works: the close button and Escape reach the loader.
    expect(frame.get_by_role("button", name="Close chat")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator(PANEL)).to_be_hidden()


def test_without_script_the_retry_link_keeps_page_and_lang(browser, fresh_site):
    site = fresh_site
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    query = f"?page={site.host}/loader&lang=de"
    page.goto(f"{site.widget}/w/default{query}")
    page.get_by_role("button", name="Chat starten").click()
    expect(page.locator(MESSAGE).first).to_be_visible(timeout=WAIT * 1000)
    faults(site.sandbox, error_status=503, operations=["list_messages"])
    page.goto(f"{site.widget}/w/default{query}")
    href = page.locator("a.ww-retry").get_attribute("href")
    assert "page=" in href and "lang=de" in href
    heal(site.sandbox)
    context.close()


def expected_clock(iso: str, zone: str) -> str:
    local = datetime.fromisoformat(iso).astimezone(ZoneInfo(zone))
    return f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def test_times_are_the_visitors_own_and_say_utc_without_script(browser, fresh_site):
    site = fresh_site
    context = browser.new_context(timezone_id="America/New_York", locale="en-US")
    page = context.new_page()
    page.goto(f"{site.widget}/w/default")
    start_chat(page)
    send(page, "help")
    wait_for(page, lambda: page.locator(f"{BOT} time").count() >= 2, "the reply", site)
    # A message replaced in place (its status moved on) gets the local time too.
    expect(page.locator(VISITOR).last).to_contain_text("Read", timeout=WAIT * 1000)
    times = page.locator("#ww-log time[datetime]")
    for index in range(times.count()):
        el = times.nth(index)
        text = el.text_content().replace("\u202f", " ")
        assert text == expected_clock(el.get_attribute("datetime"), "America/New_York")
    context.close()

    plain = browser.new_context(java_script_enabled=False, timezone_id="America/New_York")
    page = plain.new_page()
    page.goto(f"{site.widget}/w/default")
    page.get_by_role("button", name="Start chat").click()
    first = page.locator("#ww-log time[datetime]").first
    expect(first).to_have_text(re.compile(r"^\d{1,2}:\d\d [AP]M UTC$"), timeout=WAIT * 1000)
    plain.close()


def watch_typing(page) -> None:
    """Record what the typing live region says, each time it changes."""
    page.locator("#ww-typing").evaluate(
        """el => { window.spoken = [];
        new MutationObserver(() => spoken.push(el.textContent.trim()))
          .observe(el, {subtree: true, childList: true, characterData: true}); }"""
    )


def poll_often(page, check, what: str):
    """Make the page poll (the poller listens for ww:visible) until `check()` holds."""

    def polled():
        if check():
            return True
        page.locator("#ww-poller").dispatch_event("ww:visible")
        return False

    wait_for(page, polled, what)


def test_typing_indicator_waits_for_the_reply_honours_delay_and_streams(page, fresh_site):
    site = fresh_site
    page.goto(f"{site.widget}/w/default")
    start_chat(page)
    typing = page.locator("#ww-typing")
    expect(typing).not_to_have_class(TYPING_ON)  # the greeting is there: nobody types
    watch_typing(page)
    # The sandbox's clock stands still from here: each reply falls due when the test says,
    # so no reply can race the indicator however slow the machine is.
    site.hold_clock()

    send(page, "help")
    expect(typing).to_have_class(TYPING_ON, timeout=WAIT * 1000)
    expect(typing).to_have_text("Typing…")
    expect(typing).to_have_attribute("role", "status")
    site.advance_clock(1)
    poll_often(page, lambda: page.locator(BOT).count() >= 2, "the reply")
    expect(typing).not_to_have_class(TYPING_ON, timeout=1000)
    assert page.evaluate("spoken") == ["Typing…", ""]  # announced once

    # A quick reply is a send too (the newest message's: "buttons" offers some).
    send(page, "buttons")
    choices = page.locator(BOT).filter(has_text="Pick one")
    expect(typing).to_have_class(TYPING_ON, timeout=WAIT * 1000)
    site.advance_clock(1)
    poll_often(page, lambda: choices.count(), "the choices")
    expect(typing).not_to_have_class(TYPING_ON, timeout=1000)
    bots = page.locator(BOT).count()
    choices.get_by_role("button", name="Show location").click()
    expect(typing).to_have_class(TYPING_ON, timeout=WAIT * 1000)
    site.advance_clock(1)
    poll_often(page, lambda: page.locator(BOT).count() > bots, "the quick reply's answer")
    expect(typing).not_to_have_class(TYPING_ON, timeout=1000)

    # `delay`: "Thinking..." announces 1.5 s until the rest; typing goes on until it lands.
    page.evaluate("spoken.length = 0")
    send(page, "delay")
    thinking = page.locator(BOT).filter(has_text="Thinking...")
    done = page.locator(BOT).filter(has_text="1.5 s later")
    expect(typing).to_have_class(TYPING_ON, timeout=WAIT * 1000)
    site.advance_clock(0.6)  # the first part is due, the second 1.5 s after it
    poll_often(page, lambda: thinking.count(), "the first part")
    assert done.count() == 0
    expect(typing).to_have_class(TYPING_ON)
    site.advance_clock(2)
    poll_often(page, lambda: done.count(), "the second part")
    expect(typing).not_to_have_class(TYPING_ON, timeout=1000)
    assert page.evaluate("spoken") == ["Typing…", ""]  # still once, across both parts

    # A stream: typing stays while parts may still come, then times out by itself.
    send(page, "stream")
    parts = page.locator(f"{BOT}[data-stream]")
    expect(typing).to_have_class(TYPING_ON, timeout=WAIT * 1000)
    site.advance_clock(2)
    poll_often(page, lambda: parts.count() >= 3, "the stream")
    expect(typing).to_have_class(TYPING_ON)
    expect(typing).not_to_have_class(TYPING_ON, timeout=8000)


def test_the_composer_grows_and_is_16px_on_a_phone(browser, fresh_site):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(f"{fresh_site.widget}/w/default")
    start_chat(page)
    box = page.get_by_label("Your message")
    assert box.evaluate("el => getComputedStyle(el).fontSize") == "16px"
    one_line = box.bounding_box()["height"]
    box.press_sequentially("first line")
    for line in ("second line", "third line"):
        box.press("Shift+Enter")
        box.press_sequentially(line)
    grown = box.bounding_box()["height"]
    assert grown > one_line * 1.8
    # Nothing clipped: the box shows all of its text, and the newest message stays in view.
    assert box.evaluate("el => el.scrollHeight <= el.clientHeight + 1")
    wait_for(page, lambda: newest_in_view(page), "the newest message above the grown box")
    box.press("Enter")
    sent = page.locator(f"{VISITOR} .ww-msg__body").filter(has_text="third line")
    expect(sent).to_have_count(1, timeout=WAIT * 1000)
    expect(box).to_have_value("")
    assert box.bounding_box()["height"] < grown
    context.close()


def test_the_core_journey_has_no_csp_violation_and_no_secret(page, fresh_site):
    site = fresh_site
    console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    frame = open_loader(page, site)
    start_chat(frame)
    send(frame, "help")
    wait_for(page, lambda: frame.locator(BOT).count() >= 2, "the reply", site)
    page.reload()
    reopened_after_reload(page)
    wait_for(page, lambda: frame.locator(BOT).count() >= 2, "the conversation after a reload")
    wait_for(page, lambda: newest_in_view(frame), "the newest message in view")
    html = next(f for f in page.frames if "/w/default" in f.url).content()
    assert CHANNEL_TOKEN not in html
    # No widget token, contact or conversation id (the sandbox's prefixes).
    assert not re.search(r"(?<![A-Za-z])(wt|ct|cv)_[\w-]{16,}", html)
    violations = [line for line in console if "Content Security Policy" in line
                  or "violates" in line]
    assert violations == []
