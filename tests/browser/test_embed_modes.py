"""The four embedding modes in a real browser: each keeps the conversation across host reloads."""

from __future__ import annotations

import requests
from playwright.sync_api import expect

from .conftest import (
    FRAME,
    LAUNCHER,
    MESSAGE,
    REPLY,
    WAIT,
    message_ids,
    reopened_after_reload,
    start_chat,
    wait_for,
)


def chat(page, frame, site) -> list[str]:
    """Start, see the greeting, send, see the reply; returns the conversation's ids."""
    # start_chat waits for htmx: a plain form post's 303 would lose the new session when the
    # cookie is stripped (a visitor is never that fast; a test can be).
    start_chat(frame)
    greeting = message_ids(frame)
    frame.get_by_label("Your message").fill("help")
    frame.get_by_role("button", name="Send").click()
    reply = frame.locator(REPLY)
    wait_for(page, lambda: reply.count(), "the bot's reply", site)
    ids = message_ids(frame)
    assert ids[: len(greeting)] == greeting and len(ids) > len(greeting) + 1
    return ids


def same_after_reload(page, frame, ids, reopen=True) -> None:
    """Reload the host page (the loader reopens the chat that was open): the same
    messages come back."""
    page.reload()
    if reopen:
        reopened_after_reload(page)
    try:
        wait_for(page, lambda: message_ids(frame) == ids, "the same conversation after the reload")
    except AssertionError:
        raise AssertionError(f"{message_ids(frame)} != {ids}") from None


def loader_round_trip(page, site, query=""):
    page.goto(f"{site.host}/loader{query}")
    page.locator(LAUNCHER).click()
    frame = page.frame_locator(FRAME)
    return frame, chat(page, frame, site)


def test_a_default_profile_partitioned_cookie(page, fresh_site):
    frame, ids = loader_round_trip(page, fresh_site)
    cookies = [c for c in page.context.cookies() if c["name"] == "__Host-ww_session-default"]
    assert cookies and all(c["secure"] and c["httpOnly"] for c in cookies)
    same_after_reload(page, frame, ids)


def test_b_third_party_cookies_allowed(persistent_context, fresh_site):
    context = persistent_context
    page = context.pages[0] if context.pages else context.new_page()
    frame, ids = loader_round_trip(page, fresh_site)
    assert any(c["name"] == "__Host-ww_session-default" for c in persistent_context.cookies())
    same_after_reload(page, frame, ids)


class CookieStripper:
    """Fetches every widget request with a plain HTTP client and drops each Set-Cookie."""

    def __init__(self) -> None:
        self.stripped = 0

    def __call__(self, route, req) -> None:
        if "m=h" in req.url:
            # A held poll waits for a change: fetched here it would hold up every other
            # request (Playwright runs route handlers one at a time). The browser fetches
            # it itself; it sets no cookie, which the test's cookie check would catch.
            route.continue_()
            return
        headers = {
            k: v
            for k, v in req.all_headers().items()
            if k.lower() not in ("cookie", "accept-encoding", "content-length", "host")
        }
        # Not route.fetch(): it would store the cookies in the browser context anyway.
        try:
            answer = requests.request(
                req.method, req.url, headers=headers, data=req.post_data_buffer,
                allow_redirects=False, timeout=10,
            )
        except requests.ConnectionError:
            # The widget server is gone (this test's teardown) while the page still polls:
            # the browser sees a refused connection, as it would without the route. Raised
            # here, the error would surface in whichever test Playwright dispatches next.
            route.abort("connectionrefused")
            return
        self.stripped += "set-cookie" in answer.headers
        drop = (
            "set-cookie", "content-encoding", "content-length", "transfer-encoding", "connection"
        )
        route.fulfill(
            status=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in drop},
            body=answer.content,
        )


def close_routed(context) -> None:
    """Unroute, then close, even when the test failed: no handler outlives its test."""
    context.unroute_all(behavior="ignoreErrors")
    context.close()


def test_c_every_set_cookie_stripped(browser, fresh_site):
    context = browser.new_context()
    stripper = CookieStripper()
    context.route(f"{fresh_site.widget}/**", stripper)
    try:
        page = context.new_page()
        frame, ids = loader_round_trip(page, fresh_site)
        assert stripper.stripped > 0, "the widget set no cookie, so nothing was stripped"
        assert not [c for c in context.cookies() if c["name"] == "__Host-ww_session-default"]
        same_after_reload(page, frame, ids)
    finally:
        close_routed(context)


def test_c_proof_a_cookie_only_widget_loses_the_conversation(browser, fresh_site):
    """Without the loader's hand-off (data-storage="none") the same setup forgets the chat."""
    context = browser.new_context()
    context.route(f"{fresh_site.widget}/**", CookieStripper())
    try:
        page = context.new_page()
        frame, ids = loader_round_trip(page, fresh_site, "?storage=none")
        page.reload()
        page.locator(LAUNCHER).click()
        expect(frame.get_by_role("button", name="Start chat")).to_be_visible(timeout=WAIT * 1000)
        assert message_ids(frame) == []
    finally:
        close_routed(context)


def test_d_javascript_disabled_plain_iframe(browser, fresh_site):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{fresh_site.host}/plain")
    frame = page.frame_locator("iframe")
    frame.get_by_role("button", name="Start chat").click()
    expect(frame.locator(MESSAGE).first).to_be_visible(timeout=WAIT * 1000)
    greeting = message_ids(frame)
    frame.get_by_label("Your message").fill("help")
    frame.get_by_role("button", name="Send").click()
    reply = frame.locator(REPLY)
    # The page's <noscript> meta refresh brings the reply in without any script.
    wait_for(page, lambda: reply.count(), "the reply after the meta refresh", fresh_site)
    ids = message_ids(frame)
    assert ids[: len(greeting)] == greeting and len(ids) > len(greeting) + 1
    same_after_reload(page, frame, ids, reopen=False)
    context.close()


def test_foreign_origin_cannot_frame_the_widget(page, fresh_site):
    refused = []
    page.on(
        "console", lambda msg: refused.append(msg.text) if "frame-ancestors" in msg.text else None
    )
    page.goto(f"{fresh_site.host}/plain")
    expect(page.frame_locator("iframe").get_by_role("button", name="Start chat")).to_be_visible()
    assert not refused
    page.goto(f"{fresh_site.foreign}/plain")
    wait_for(page, lambda: refused, "Chromium to refuse the frame")
    assert page.frame_locator("iframe").locator(".ww-frame").count() == 0
    assert all("/w/default" not in frame.url for frame in page.frames[1:]) or refused
