"""What a site owner configures reaches the page: theme, language, one widget per page, privacy."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import free_port
from flask import Flask, request
from playwright.sync_api import expect

from .conftest import (
    FRAME,
    LAUNCHER,
    MESSAGE,
    WAIT,
    browser_widget_app,
    reopened_after_reload,
    start_chat,
)

GREEN = "#0a6b3d"


@dataclass
class Themed:
    host: str
    widget: str


def owner_host(widget_url: str) -> Flask:
    """A host page whose script tag (or tags) and <html lang> come from the query string."""
    app = Flask(__name__)

    @app.get("/page")
    def page():
        attrs = "".join(
            f' data-{name}="{escape(request.args[name])}"'
            for name in ("title", "position", "color", "lang")
            if name in request.args
        )
        tag = f'<script src="{widget_url}/embed.js" data-widget="default"{attrs}></script>'
        second = f'<script src="{widget_url}/embed.js" data-widget="second"></script>'
        return (
            f"<!doctype html><html lang='{escape(request.args.get('html_lang', 'en'))}'><head>"
            "<title>Owner</title></head><body><h1>Shop</h1>"
            f"{tag}{second if 'twice' in request.args else ''}</body></html>"
        )

    return app


@pytest.fixture(scope="module")
def themed(sandbox_server, tmp_path_factory):
    """A read-only widget whose theme puts a green launcher on the left; hosts on 127.0.0.1."""
    from webwidget.sandbox.server import BackgroundServer

    host_port = free_port()
    app = browser_widget_app(
        sandbox_server.url,
        tmp_path_factory.mktemp("owner"),
        # The default, and the only choice with the published API.
        CHATCAPTAIN_SENDING_ENABLED=False,
        WIDGET_ALLOWED_ORIGINS=f"http://127.0.0.1:{host_port}",
        WIDGET_POSITION="left",
        WIDGET_PRIMARY_COLOR=GREEN,
    )
    widget = BackgroundServer(app).start()
    widget_url = f"http://localhost:{widget.port}"
    host = BackgroundServer(owner_host(widget_url), port=host_port).start()
    try:
        yield Themed(host.url, widget_url)
    finally:
        host.stop()
        widget.stop()


@pytest.fixture(autouse=True)
def clean_sandbox(sandbox):
    """Faults and clock reset before each test: other modules share the sandbox."""
    return sandbox


def background(locator) -> str:
    return locator.evaluate("e => getComputedStyle(e).backgroundColor")


def test_theme_position_and_colour_reach_the_launcher(page, themed):
    page.goto(f"{themed.host}/page")
    launcher = page.locator(LAUNCHER)
    expect(launcher).to_be_visible(timeout=WAIT * 1000)
    assert launcher.bounding_box()["x"] < 100, "the theme says left"
    assert background(launcher) == "rgb(10, 107, 61)"
    # A data attribute still overrides the theme.
    page.goto(f"{themed.host}/page?position=right&color=%23222222")
    expect(launcher).to_be_visible(timeout=WAIT * 1000)
    assert launcher.bounding_box()["x"] > 500
    assert background(launcher) == "rgb(34, 34, 34)"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_launcher_and_header_share_their_colours(browser, themed, scheme):
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    page.goto(f"{themed.host}/page")
    launcher = page.locator(LAUNCHER)
    launcher.click()
    frame = page.frame_locator(FRAME)
    # Scripts run after the stylesheets have loaded: then the header has its colours.
    expect(frame.locator("html[data-ww-ready]")).to_have_count(1, timeout=WAIT * 1000)
    header = frame.locator(".ww-header")
    assert background(launcher) == background(header)
    color = launcher.evaluate("e => getComputedStyle(e).color")
    assert color == header.evaluate("e => getComputedStyle(e).color")
    context.close()


def test_launcher_shows_a_close_icon_while_open(page, themed):
    page.goto(f"{themed.host}/page")
    launcher = page.locator(LAUNCHER)
    chat_icon, close_icon = launcher.locator("path.i"), launcher.locator("path.x")
    expect(chat_icon).to_be_visible(timeout=WAIT * 1000)
    expect(close_icon).to_be_hidden()
    launcher.click()
    expect(close_icon).to_be_visible()
    expect(chat_icon).to_be_hidden()
    launcher.click()
    expect(chat_icon).to_be_visible()


def test_title_keeps_its_case_and_words_follow_the_language(page, themed):
    page.goto(f"{themed.host}/page?title=Acme%20Support")
    launcher = page.locator(LAUNCHER)
    expect(launcher).to_have_attribute("aria-label", "Open Acme Support", timeout=WAIT * 1000)
    page.goto(f"{themed.host}/page?title=Acme%20Support&html_lang=ar")
    expect(launcher).to_have_attribute("aria-label", "افتح Acme Support", timeout=WAIT * 1000)
    launcher.click()
    expect(launcher).to_have_attribute("aria-label", "أغلق Acme Support")
    frame = page.frame_locator(FRAME)
    expect(frame.locator("html")).to_have_attribute("dir", "rtl", timeout=WAIT * 1000)


def test_a_second_widget_on_the_page_is_refused_with_a_warning(page, themed):
    warnings = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    page.goto(f"{themed.host}/page?twice=1")
    expect(page.locator(LAUNCHER)).to_be_visible(timeout=WAIT * 1000)
    assert page.locator("[id^=webwidget-]").count() == 1
    expect(page.locator("#webwidget-second")).to_have_count(0)
    assert any("one widget per page" in w and '"second"' in w for w in warnings), warnings


def test_the_host_pages_query_and_fragment_never_reach_the_widget(page, themed):
    page.goto(f"{themed.host}/page?reset_token=s3cret&email=a%40b.example#frag")
    page.locator(LAUNCHER).click()
    src = page.locator(FRAME).get_attribute("src")
    sent = parse_qs(urlsplit(src).query)["page"][0]
    assert sent == f"{themed.host}/page"
    assert "s3cret" not in src and "frag" not in src


def test_read_only_mode_shows_no_dead_controls_and_says_why(page, themed):
    page.goto(f"{themed.host}/page?html_lang=de")
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    start_chat(frame, "Chat starten")
    note = frame.locator("#ww-readonly")
    expect(note).to_have_text("In diesem Chat können keine Antworten gesendet werden.")
    expect(frame.locator("textarea")).to_have_count(0)
    expect(frame.locator("button:disabled, .ww-choice")).to_have_count(0)
    # What is left to press does something: end the chat, close the panel.
    expect(frame.locator("#ww-log button")).to_have_count(0)


def started_and_kept(page, themed) -> dict:
    """Start a chat through the loader; the iframe's word to the loader on keeping the handle."""
    page.goto(f"{themed.host}/page")
    page.evaluate(
        "window.said = []; addEventListener('message', e => { if (e.data && e.data.type"
        " === 'ww:session') said.push(e.data.handle); })"
    )
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    expect(frame.locator("html[data-ww-ready]")).to_have_count(1, timeout=WAIT * 1000)
    frame.get_by_role("button", name="Start chat").click()
    expect(frame.locator(MESSAGE).first).to_be_visible(timeout=WAIT * 1000)
    page.wait_for_function("() => said.length > 0", timeout=WAIT * 1000)
    stored = page.evaluate(
        # The handle's own key (":seen" beside it is a message id, for the unread count).
        "Object.keys(localStorage).filter(k => k.startsWith('webwidget:') && !k.endsWith(':seen'))"
        ".map(k => localStorage.getItem(k))"
    )
    return {"said": page.evaluate("said"), "stored": stored}


def test_the_handle_stays_out_of_the_host_page_while_the_cookie_works(page, themed):
    kept = started_and_kept(page, themed)
    assert kept == {"said": [""], "stored": []}
    page.reload()
    reopened_after_reload(page)
    expect(page.frame_locator(FRAME).locator(MESSAGE).first).to_be_visible(timeout=WAIT * 1000)


def test_the_handle_is_kept_by_the_host_page_where_the_cookie_is_lost(browser, themed):
    from .test_embed_modes import CookieStripper

    context = browser.new_context()
    context.route(f"{themed.widget}/**", CookieStripper())
    page = context.new_page()
    kept = started_and_kept(page, themed)
    assert len(kept["stored"]) == 1 and kept["said"] == kept["stored"] and kept["stored"][0]
    context.close()
