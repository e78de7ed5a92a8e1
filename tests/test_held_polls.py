"""Held polls (issue 21): a poll waits until the conversation changes, woken at once by a
newer list from any request or instance; a cadence that spends upstream calls where a
reply is likely; short polls when held ones get lost; SIGTERM releases them."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import requests
from conftest import (
    Visitor,
    advance,
    hold,
    https_client,
    make_app,
    parse_html,
    stats,
    wait_until,
)
from test_polling import poll, poller_params, swaps
from test_scale_out import Browser, Instance, instance_env

from webwidget.polling import (
    EXPECTING_CADENCE,
    interval_for,
    upstream_cadence,
)
from webwidget.web.visitor import core_of

REPLY = "a minute later"  # the sandbox bot's answer to "later", due a minute on its clock


def poller(html: str) -> dict[str, str]:
    found = swaps(html).poller
    assert found is not None, "no poller in the answer"
    return found


def held_now(app) -> int:
    """Polls `app` holds now."""
    return core_of(app).wakeups.held


def held_app(sandbox, tmp_path, store_url, **settings):
    return make_app(sandbox, tmp_path, store_url=store_url, **settings)


def in_thread(call) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(r=call()))
    thread.start()
    return thread, result


def test_the_cadence_is_fast_where_a_reply_is_likely_and_slow_when_idle():
    assert upstream_cadence(0.5, True, 3.0) == EXPECTING_CADENCE == 0.3
    assert upstream_cadence(9, True, 3.0) == 0.3
    assert upstream_cadence(1, False, 3.0) == 0.6  # more parts of a reply may follow
    assert upstream_cadence(15, True, 3.0) == 1.0  # a slow answer (a human operator)
    assert upstream_cadence(5, False, 3.0) == 4.0  # idle: slower than short polls
    assert upstream_cadence(600, False, 3.0) == interval_for(600, 3.0) == 15.0


def test_a_chatting_conversation_costs_no_more_upstream_calls_than_short_polls():
    """A visitor who sends every 20 s and gets a reply 0.2-3 s later: the held polls'
    checks in a minute, against short polls at the fast interval (40 a minute)."""
    calls, now = 0, 0.0
    for reply_after in (0.2, 1.6, 3.0):  # a send every 20 s
        send, replied = now, False
        changed = send
        while now < send + 20:
            expecting = not replied
            if not replied and now - send >= reply_after:
                replied, changed, expecting = True, now, False
            now += upstream_cadence(now - changed, expecting, 3.0)
            calls += 1
    assert calls <= 60 / interval_for(0, 3.0), calls


def test_a_held_poll_answers_as_soon_as_the_reply_is_upstream(sandbox, tmp_path, store_url):
    app = held_app(sandbox, tmp_path, store_url, WIDGET_HOLD_SECONDS=10)
    visitor = Visitor(https_client(app))
    visitor.start()
    hold(sandbox)
    sent = visitor.send("later", htmx=True).get_data(as_text=True)
    held_poller = poller(sent)
    assert held_poller["hx-trigger"] == "load, every 20s, ww:visible"
    params = poller_params(sent)
    assert params["m"] == "h"
    thread, result = in_thread(lambda: poll(visitor, params))
    wait_until(lambda: held_now(app) == 1, timeout=10, what="the poll to be held")
    assert "r" not in result
    available = time.monotonic()
    advance(sandbox, 61)
    thread.join(timeout=10)
    took = time.monotonic() - available
    answer = result["r"]
    assert answer.status_code == 200
    assert REPLY in answer.get_data(as_text=True)
    assert took < 5, f"{took:.2f} s: the reply waited for the hold's end"
    # The page holds again at once with the new version.
    again = poller_params(answer.get_data(as_text=True))
    assert again["m"] == "h" and again["v"] != params["v"]


def test_a_held_poll_without_change_ends_with_a_new_held_poller(sandbox, tmp_path, store_url):
    app = held_app(sandbox, tmp_path, store_url, WIDGET_HOLD_SECONDS=0.5)
    visitor = Visitor(https_client(app))
    page = visitor.post("/w/default/start", htmx=True).get_data(as_text=True)
    params = poller_params(page)
    assert params["m"] == "h"
    answer = poll(visitor, params)
    html = answer.get_data(as_text=True)
    # Never a 204: the page asks again only when an answer replaces its poller.
    assert answer.status_code == 200
    assert not swaps(html).articles
    again = poller_params(html)
    assert (again["m"], again["v"]) == ("h", params["v"])
    assert poller(html)["hx-trigger"].startswith("load, ")


def test_a_page_whose_held_polls_a_proxy_cuts_falls_back_to_short_polls(
    sandbox, tmp_path, store_url, clock
):
    app = make_app(sandbox, tmp_path, store_url=store_url, clock=clock, WIDGET_HOLD_SECONDS=10)
    visitor = Visitor(https_client(app))
    params = poller_params(visitor.post("/w/default/start", htmx=True).get_data(as_text=True))
    # widget.js saw the held poll end in an error that was not ours (no new poller): it
    # asks again with cut=1.
    clock.advance(20)
    answer = poll(visitor, {**params, "cut": "1"})
    assert answer.status_code == 200
    short = poller_params(answer.get_data(as_text=True))
    assert short["m"] == "s"
    # Idle 20 s by now: every 3 s.
    assert poller(answer.get_data(as_text=True))["hx-trigger"] == "every 3s, ww:visible"
    # From then on: short polls, 204 when nothing changed, and changes keep the mode.
    assert poll(visitor, short).status_code == 204
    visitor.send("hello", htmx=True)
    changed = poll(visitor, short)
    assert changed.status_code == 200
    assert poller_params(changed.get_data(as_text=True))["m"] == "s"


def test_a_held_poll_asked_again_after_a_dropped_connection_answers_at_once(
    sandbox, tmp_path, store_url
):
    app = held_app(sandbox, tmp_path, store_url, WIDGET_HOLD_SECONDS=30)
    visitor = Visitor(https_client(app))
    params = poller_params(visitor.post("/w/default/start", htmx=True).get_data(as_text=True))
    started = time.monotonic()
    answer = poll(visitor, {**params, "now": "1"})
    assert time.monotonic() - started < 10  # not held for 30 s
    assert answer.status_code == 200
    again = poller_params(answer.get_data(as_text=True))
    assert (again["m"], again["v"]) == ("h", params["v"])  # and holding again from here


def test_a_process_at_its_hold_limit_answers_with_a_short_poller(sandbox, tmp_path, store_url):
    app = held_app(sandbox, tmp_path, store_url, WIDGET_HOLD_SECONDS=10, WIDGET_HOLD_MAX=0)
    visitor = Visitor(https_client(app))
    params = poller_params(visitor.post("/w/default/start", htmx=True).get_data(as_text=True))
    started = time.monotonic()
    answer = poll(visitor, params)
    assert time.monotonic() - started < 5
    assert answer.status_code == 200
    assert "m" not in poller_params(answer.get_data(as_text=True))


def test_a_change_from_another_tab_or_instance_wakes_a_held_poll(
    sandbox, tmp_path, store_url
):
    """The held tab's cadence is slow (idle for ten minutes); the other tab's send stores a
    newer list, which wakes it at once: in-process, or through Redis on another instance."""
    app = held_app(sandbox, tmp_path / "a", store_url, WIDGET_HOLD_SECONDS=30)
    (tmp_path / "a").mkdir(exist_ok=True)
    sender = Visitor(https_client(app))
    sender.start()
    cookie = sender.client.get_cookie("__Host-ww_session-default").value
    other = app
    if store_url.startswith("redis"):
        (tmp_path / "b").mkdir()
        other = held_app(sandbox, tmp_path / "b", store_url, WIDGET_HOLD_SECONDS=30)
    tab = Visitor(https_client(other))
    tab.client.set_cookie("__Host-ww_session-default", cookie, domain="localhost",
                          secure=True, path="/")
    params = poller_params(tab.get("/w/default").get_data(as_text=True))
    params["t"] = str(int(time.time()) - 600)  # idle ten minutes: checks every 15 s
    thread, result = in_thread(lambda: poll(tab, params))
    wait_until(lambda: held_now(other) == 1, timeout=10, what="the poll to be held")
    sent = time.monotonic()
    sender.send("hello from the other tab", htmx=True)
    thread.join(timeout=40)
    took = time.monotonic() - sent
    assert result["r"].status_code == 200
    assert "hello from the other tab" in result["r"].get_data(as_text=True)
    assert took < 10, f"{took:.2f} s: the held poll waited for its own next check"


def test_sigterm_releases_held_polls_at_once(sandbox, tmp_path):
    env = instance_env(sandbox.url, f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
                       WIDGET_HOLD_SECONDS="50")
    instance = Instance("held", tmp_path, env)
    instance.start()
    try:
        visitor = Browser()
        page = visitor.post(instance, "/w/default/start", htmx=True)
        params = poller_params(page.text)
        assert params["m"] == "h"
        url = f"{instance.url}/w/default/messages?" + "&".join(
            f"{k}={v}" for k, v in params.items()
        )
        listed = stats(sandbox).get("list_messages", 0)
        thread, result = in_thread(lambda: requests.get(
            url, headers={"X-Widget-Session": visitor.handle, "HX-Request": "true"}, timeout=60
        ))
        # Its first check reached the upstream: the poll is held now.
        wait_until(lambda: stats(sandbox).get("list_messages", 0) > listed, timeout=20,
                   what="the held poll's first check")
        signalled = time.monotonic()
        instance.process.send_signal(signal.SIGTERM)
        thread.join(timeout=60)
        assert instance.process.wait(timeout=60) == 0
        took = time.monotonic() - signalled
        instance.process = None
    finally:
        instance.stop()
    assert result["r"].status_code == 200
    assert poller_params(result["r"].text)["m"] == "h"
    # Released, not held to the end of its 50 s (gunicorn would wait that long for it).
    assert took < 25, f"shutdown took {took:.1f} s with a poll held for 50 s"


@pytest.mark.parametrize("held", [True, False])
def test_the_no_script_page_keeps_its_meta_refresh(sandbox, tmp_path, held):
    app = make_app(sandbox, tmp_path, WIDGET_HOLD_SECONDS=20 if held else 0)
    visitor = Visitor(https_client(app))
    visitor.post("/w/default/start")
    page = parse_html(visitor.get("/w/default").get_data(as_text=True))
    refresh = [
        e for e in page.elements if e.tag == "meta" and e.attrs.get("http-equiv") == "refresh"
    ]
    assert refresh and refresh[0].attrs["content"] == "6"


def test_a_held_poll_uses_the_documented_proxy_settings(sandbox):
    """A held poll outlasts no proxy read timeout we document (nginx: 30 s)."""
    from pathlib import Path

    from webwidget.settings import Settings

    root = Path(__file__).resolve().parent.parent
    conf = (root / "docs/hosting/webwidget-proxy.conf").read_text()
    timeout = int(conf.split("proxy_read_timeout", 1)[1].split("s;", 1)[0])
    assert Settings.model_fields["WIDGET_HOLD_SECONDS"].default + 5 <= timeout
