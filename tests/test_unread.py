"""The launcher's unread badge across page loads (issue 21): the loader asks how many bot
messages came after the newest one the visitor saw, without a frame and without an
upstream call per page view."""

from __future__ import annotations

import re

import pytest
from conftest import (
    MovableClock,
    Visitor,
    advance,
    hold,
    https_client,
    make_app,
    message_payload,
    stats,
    wait_until,
)

from webwidget.chatcaptain.models import MessageDto
from webwidget.unread import MOST, ask_again_in, unread_after

HOST = "https://shop.example"
BOT_IDS = re.compile(r'<article[^>]*class="[^"]*ww-msg--bot[^"]*"[^>]*data-message-id="([^"]+)"')


def message(id: str, outgoing: bool) -> MessageDto:
    return MessageDto.model_validate(message_payload(id, {"text": id}, outgoing=outgoing))


def test_counts_the_bot_messages_after_the_one_seen():
    messages = [message("b1", True), message("v1", False), message("b2", True), message("b3", True)]
    assert unread_after(messages, "b3") == 0
    assert unread_after(messages, "b1") == 2  # the visitor's own message is not unread
    assert unread_after(messages, "gone") == 3  # seen before the list's window: all of it
    assert unread_after(messages, "") == 0  # never seen where the loader could note it
    many = [message(f"b{i}", True) for i in range(500)]
    assert unread_after(many, "none") == MOST


def test_asks_again_soon_while_a_reply_is_due_or_the_list_is_refreshed():
    replied = [message("v1", False), message("b1", True)]
    waiting = [message("b1", True), message("v1", False)]
    assert ask_again_in(replied, age=1) == 15
    assert ask_again_in(waiting, age=1) == 2
    assert ask_again_in(replied, age=6) == 2


@pytest.fixture
def clock():
    return MovableClock()


@pytest.fixture
def unread_app(sandbox, tmp_path, clock):
    # The production default: polls (and the badge) answer from the cached list and leave
    # the upstream call to a background refresh.
    return make_app(sandbox, tmp_path, clock=clock, WIDGET_ALLOWED_ORIGINS=HOST,
                    UPSTREAM_REFRESH_CALLS=2)


def ask(client, seen: str = "", origin: str = HOST, **headers):
    return client.get("/w/default/unread", query_string={"seen": seen},
                      headers={"Origin": origin, **headers})


def newest_bot(visitor: Visitor) -> str:
    return BOT_IDS.findall(visitor.get("/w/default").get_data(as_text=True))[-1]


def test_a_reply_after_the_newest_seen_is_counted_from_the_cached_list(
    sandbox, unread_app, clock
):
    visitor = Visitor(https_client(unread_app))
    hold(sandbox)
    visitor.start()
    visitor.send("later", htmx=True)  # the bot answers a minute later on the sandbox's clock
    seen = newest_bot(visitor)
    answer = ask(visitor.client, seen)
    assert answer.status_code == 200
    assert answer.json == {"chat": True, "unread": 0, "every": 2}  # a reply is due
    assert answer.headers["Access-Control-Allow-Origin"] == HOST
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    assert answer.headers["Cache-Control"] == "no-store"

    advance(sandbox, 61)  # the reply is upstream now
    listed = stats(sandbox).get("list_messages", 0)
    for _ in range(20):  # page views within the cached list's age: no upstream call
        assert ask(visitor.client, seen).json["unread"] == 0
    assert stats(sandbox).get("list_messages", 0) == listed

    clock.advance(6)  # the cached list is old: one page view asks for a refresh
    wait_until(lambda: ask(visitor.client, seen).json["unread"] == 1, timeout=10,
               what="the background refresh to bring the reply")
    assert stats(sandbox).get("list_messages", 0) == listed + 1
    # Seen in the open frame: the loader notes its id, and nothing is unread.
    assert ask(visitor.client, newest_bot(visitor)).json == {"chat": True, "unread": 0, "every": 15}


def test_the_handle_in_the_header_finds_the_chat_where_the_cookie_is_lost(sandbox, unread_app):
    visitor = Visitor(https_client(unread_app))
    started = visitor.start()
    handle = visitor.client.get_cookie("__Host-ww_session-default").value
    assert started.status_code in (200, 303)
    stranger = https_client(unread_app)  # no cookie
    assert ask(stranger, "x").json == {"chat": False, "unread": 0}
    found = ask(stranger, "x", **{"X-Widget-Session": handle}).json
    assert found["chat"] is True
    # The header needs a preflight: only an allowed origin gets one.
    preflight = stranger.options("/w/default/unread", headers={
        "Origin": HOST, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-widget-session",
    })
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == HOST
    assert preflight.headers["Access-Control-Allow-Headers"] == "X-Widget-Session"
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"


def test_only_an_allowed_origin_may_ask(unread_app):
    visitor = Visitor(https_client(unread_app))
    visitor.start()
    for origin in ("https://evil.example", ""):
        refused = ask(visitor.client, "x", origin=origin)
        assert refused.status_code == 403
        assert "Access-Control-Allow-Origin" not in refused.headers
        assert "unread" not in refused.get_data(as_text=True)
    assert ask(visitor.client, "x").status_code == 200
    assert visitor.client.get("/w/nosuch/unread", headers={"Origin": HOST}).status_code == 404
