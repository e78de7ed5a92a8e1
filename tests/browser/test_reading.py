"""Reading a conversation in Chromium: one sender's consecutive messages grouped, bot
Markdown shown as formatting, files named for what their link does."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from .conftest import BOT, FRAME, LAUNCHER, VISITOR, WAIT, start_chat


def open_and_start(page, site):
    page.goto(f"{site.host}/loader")
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    start_chat(frame)
    return frame


def seen(locator) -> int:
    """How many of `locator`'s elements a sighted visitor sees (more than a 1 px clip)."""
    count = 0
    for element in locator.all():
        box = element.bounding_box()
        count += bool(box and box["width"] > 1 and box["height"] > 1)
    return count


def send(frame, text: str) -> None:
    """Send `text` and wait until the upstream has stored it (the bot's delays count
    from then, on the sandbox's clock)."""
    box = frame.get_by_label("Your message")
    box.fill(text)
    box.press("Enter")
    stored = frame.locator(VISITOR).filter(has_text=text).locator(".ww-status--sent")
    expect(stored).to_have_count(1, timeout=WAIT * 1000)


def test_one_senders_consecutive_messages_show_who_once_and_the_time_once(page, fresh_site):
    frame = open_and_start(page, fresh_site)
    fresh_site.hold_clock()
    send(frame, "delay")
    thinking = frame.locator(BOT).filter(has_text="Thinking...")
    done = frame.locator(BOT).filter(has_text="...done")
    fresh_site.advance_clock(1)
    expect(thinking).to_have_count(1, timeout=WAIT * 1000)
    # Alone, the message shows who speaks and when.
    expect(thinking.locator("time")).to_have_count(1)
    assert seen(thinking.locator(".ww-msg__who")) == 1
    assert done.count() == 0
    fresh_site.advance_clock(2)
    expect(done).to_have_count(1, timeout=WAIT * 1000)
    # The poll that brought the second message also re-rendered the first: one avatar and
    # name at the top of the run, one time at its end.
    expect(thinking.locator("time")).to_have_count(0, timeout=WAIT * 1000)
    expect(done.locator("time")).to_have_count(1)
    assert seen(done.locator(".ww-msg__who")) == 0
    assert seen(done.locator(".ww-avatar")) == 0
    assert seen(thinking.locator(".ww-avatar")) == 1
    # Screen readers still hear who says the second one.
    expect(done.locator(".ww-msg__name")).to_have_text("Captain")

    # The visitor's own messages in a row: the time once, each its own status.
    send(frame, "first of two")
    send(frame, "second of two")
    first = frame.locator(VISITOR).filter(has_text="first of two")
    second = frame.locator(VISITOR).filter(has_text="second of two")
    expect(first.locator("time")).to_have_count(0, timeout=WAIT * 1000)
    expect(second.locator("time")).to_have_count(1)
    expect(first.locator(".ww-status--sent")).to_have_count(1)


def test_stream_parts_read_as_one_message(page, fresh_site):
    frame = open_and_start(page, fresh_site)
    fresh_site.hold_clock()
    send(frame, "stream")
    fresh_site.advance_clock(2)
    parts = frame.locator(f"{BOT}[data-stream]")
    expect(parts).to_have_count(3, timeout=WAIT * 1000)
    expect(parts.last).to_contain_text("and part three.")
    assert seen(parts.locator(".ww-msg__who")) == 1
    expect(parts.locator("time")).to_have_count(1)
    expect(parts.last.locator("time")).to_have_count(1)
    # One bubble: the parts touch (a joined bubble's gap is 2 px, a message's 8 px).
    tops = [parts.nth(i).locator(".ww-msg__body").bounding_box() for i in range(3)]
    for upper, lower in zip(tops, tops[1:], strict=False):
        assert lower["y"] - (upper["y"] + upper["height"]) <= 12, (upper, lower)


def test_a_file_from_another_origin_is_offered_as_open_in_a_new_tab(page, fresh_site):
    frame = open_and_start(page, fresh_site)
    send(frame, "document")
    figure = frame.locator(".ww-file--file")
    expect(figure).to_have_count(1, timeout=WAIT * 1000)
    # The sandbox serves the file from its own origin: `download` is not honoured there, so
    # the link says what it does.
    action = figure.get_by_role("link", name="Open")
    expect(action).to_have_accessible_name("Open manifest.pdf (opens in a new tab)")
    expect(figure.get_by_role("link", name="Download")).to_have_count(0)
    with page.context.expect_page() as opened:
        action.click()
    assert opened.value.url == action.get_attribute("href")
    opened.value.close()


def test_bot_markdown_shows_as_formatting_not_asterisks(page, fresh_site):
    frame = open_and_start(page, fresh_site)
    send(frame, "markdown")
    text = frame.locator(BOT).filter(has_text="Bots write").locator(".ww-text")
    expect(text).to_have_count(1, timeout=WAIT * 1000)
    expect(text.locator("strong")).to_have_text("Markdown")
    expect(text.locator("em")).to_have_text("emphasis")
    expect(text.locator("code")).to_have_text("code")
    expect(text.get_by_role("list")).to_have_count(2)
    expect(text.locator("ul > li")).to_have_count(2)
    expect(text.locator("ol > li")).to_have_text(["first step", "second step"])
    expect(text.get_by_role("link", name="a link")).to_have_attribute(
        "href", "https://example.com/docs"
    )
    assert "*" not in text.inner_text() and "`" not in text.inner_text()
    # The visitor's own words show exactly as typed.
    send(frame, "**not bold** from me")
    mine = frame.locator(VISITOR).filter(has_text="**not bold** from me")
    expect(mine.locator("strong")).to_have_count(0)


def test_the_visitor_saves_a_transcript_from_the_embedded_chat(page, fresh_site):
    # Chromium blocks the widget's cookie in the host page's frame: the handle travels in
    # a header, which widget.js adds to the transcript's request too.
    frame = open_and_start(page, fresh_site)
    send(frame, "keep this line")
    save = frame.get_by_role("link", name="Save a transcript")
    expect(save).to_be_visible()
    with page.expect_download(timeout=WAIT * 1000) as saved:
        save.click()
    assert saved.value.suggested_filename == "chat-transcript.html"
    text = Path(saved.value.path()).read_text(encoding="utf-8")
    assert "Ahoy!" in text and "keep this line" in text


def test_at_400_percent_zoom_the_conversation_keeps_most_of_the_frame(browser, fresh_site):
    # 400 % zoom of a 1280 x 800 screen: 320 x 200 CSS pixels (the log had 65 of them).
    context = browser.new_context(viewport={"width": 320, "height": 200})
    page = context.new_page()
    page.goto(f"{fresh_site.widget}/w/default")
    expect(page.get_by_role("button", name="Start chat")).to_be_in_viewport()
    start_chat(page)
    log = page.locator("#ww-log").bounding_box()
    assert log["height"] >= 100, log
    for control in (page.get_by_label("Your message"), page.get_by_role("button", name="Send"),
                    page.get_by_role("heading", name="Chat with us")):
        expect(control).to_be_in_viewport()
    context.close()
