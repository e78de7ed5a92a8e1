"""The host page's API: calls made before the loader is ready are honoured, and the
panel puts focus in the composer however it opens."""

from __future__ import annotations

from playwright.sync_api import expect

from .conftest import FRAME, LAUNCHER, PANEL, WAIT, start_chat, wait_for

OPEN_AT_ONCE = "?api=WebWidget.open()"


def focused_id(page) -> str:
    """The id (or tag) of the element that has focus inside the widget's frame."""
    frame = next(f for f in page.frames if "/w/default" in f.url)
    return frame.evaluate("() => document.activeElement.id || document.activeElement.tagName")


def test_open_called_as_soon_as_the_script_loads_is_honoured(page, fresh_site):
    page.goto(f"{fresh_site.host}/loader{OPEN_AT_ONCE}")
    expect(page.locator(PANEL)).to_be_visible(timeout=WAIT * 1000)
    assert page.evaluate("WebWidget.isOpen()") is True
    frame = page.frame_locator(FRAME)
    expect(frame.get_by_role("button", name="Start chat")).to_be_focused(timeout=WAIT * 1000)
    expect(page.locator(LAUNCHER)).to_have_attribute("aria-expanded", "true")
    assert [name for name, _ in page.evaluate("window.events")] == ["ready", "open"]


def test_close_before_ready_cancels_an_earlier_open(page, fresh_site):
    page.goto(f"{fresh_site.host}/loader?api=WebWidget.open();WebWidget.close()")
    expect(page.locator(LAUNCHER)).to_be_visible(timeout=WAIT * 1000)
    expect(page.locator(PANEL)).to_be_hidden()
    assert page.locator(FRAME).count() == 0


def test_the_api_and_the_launcher_put_focus_in_the_composer_after_start_and_reopen(
    page, fresh_site
):
    page.goto(f"{fresh_site.host}/loader")
    expect(page.locator(LAUNCHER)).to_be_visible(timeout=WAIT * 1000)
    page.evaluate("WebWidget.open()")
    frame = page.frame_locator(FRAME)
    start_chat(frame)
    box = frame.get_by_label("Your message")
    expect(box).to_be_focused(timeout=WAIT * 1000)
    for reopen in ("WebWidget.open()", "WebWidget.toggle()"):
        page.evaluate("WebWidget.close()")
        expect(page.locator(PANEL)).to_be_hidden()
        page.evaluate(reopen)
        expect(box).to_be_focused(timeout=WAIT * 1000)
    page.locator(LAUNCHER).click()
    expect(page.locator(PANEL)).to_be_hidden()
    page.locator(LAUNCHER).click()
    expect(box).to_be_focused(timeout=WAIT * 1000)


def test_a_focus_request_that_arrives_while_the_frame_is_still_hidden_lands_once_shown(
    page, fresh_site
):
    """The race behind a flaky keyboard test: the loader shows the panel and asks the
    frame for focus at once, but the frame may get the message before it knows it is
    displayed again; focus() in a display:none frame does nothing."""
    page.goto(f"{fresh_site.host}/loader")
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    start_chat(frame)
    page.evaluate("WebWidget.close()")
    expect(page.locator(PANEL)).to_be_hidden()
    page.evaluate(
        "() => { const root = document.getElementById('webwidget-default').shadowRoot;"
        " const frame = root.querySelector('iframe');"
        " frame.contentWindow.postMessage({type: 'ww:focus'}, new URL(frame.src).origin); }"
    )
    page.wait_for_timeout(300)
    assert focused_id(page) != "ww-text"  # the hidden frame could not take it yet
    # Shown again without a new request for focus: the one that came early still counts.
    page.evaluate(
        "() => { const root = document.getElementById('webwidget-default').shadowRoot;"
        " root.querySelector('.p').hidden = false; root.querySelector('iframe').focus(); }"
    )
    expect(frame.get_by_label("Your message")).to_be_focused(timeout=WAIT * 1000)


def test_a_misconfigured_embed_shows_no_launcher_and_one_console_line_naming_the_fix(
    page, fresh_site
):
    console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    for url, fix in (
        (f"{fresh_site.foreign}/loader", "WIDGET_ALLOWED_ORIGINS"),
        (f"{fresh_site.host}/loader?widget=nope", "data-widget"),
    ):
        console.clear()
        page.goto(url)
        wait_for(page, lambda: console, f"the console line for {url}")
        # Long enough for the loader's 3 s fallback to the defaults, which must not come.
        page.wait_for_timeout(3500)
        assert page.locator("[id^=webwidget-]").count() == 0
        assert page.evaluate("window.events") == []
        assert len(console) == 1 and console[0].startswith("error: webwidget: "), console
        assert fix in console[0]


def test_on_a_phone_the_page_behind_is_inert_and_does_not_scroll(browser, fresh_site):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    page.goto(f"{fresh_site.host}/loader?tall")
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    start_chat(frame)
    main = page.locator("main")
    # Inert: out of the accessibility tree, the tab order and the pointer's reach.
    assert page.evaluate(
        "[...document.body.children].filter(e => e.id !== 'webwidget-default' && !e.inert)"
        ".length"
    ) == 0
    # The visitor scrolls inside the chat, past its end: the page behind stays put.
    box = page.locator(FRAME).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(6):
        page.mouse.wheel(0, 400)
        page.wait_for_timeout(100)
    page.keyboard.press("End")
    assert page.evaluate("scrollY") == 0
    frame.get_by_role("button", name="Close chat").click()
    expect(page.locator(PANEL)).to_be_hidden()
    assert main.evaluate("e => e.inert") is False
    assert page.evaluate("document.documentElement.style.overflow") == ""
    context.close()


def test_a_single_page_app_starts_the_chat_with_the_route_it_is_on(
    page, fresh_site, sandbox_server
):
    page.goto(f"{fresh_site.host}/loader")
    expect(page.locator(LAUNCHER)).to_be_visible(timeout=WAIT * 1000)
    page.evaluate("history.pushState({}, '', '/shop/checkout?secret=1')")
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    expect(frame.locator("input[name=page_url]")).to_have_value(
        f"{fresh_site.host}/shop/checkout", timeout=WAIT * 1000
    )
    # A route change while the panel is open counts too.
    page.evaluate("history.pushState({}, '', '/shop/thanks#order')")
    expect(frame.locator("input[name=page_url]")).to_have_value(
        f"{fresh_site.host}/shop/thanks", timeout=WAIT * 1000
    )
    start_chat(frame)
    store = sandbox_server._server.app.extensions["webwidget_sandbox"].store
    with store.transaction() as db:
        origin_url = db.execute(
            "SELECT origin_url FROM contacts ORDER BY created DESC LIMIT 1"
        ).fetchone()["origin_url"]
    assert origin_url == f"{fresh_site.host}/shop/thanks"
