"""Cheap polls: 204 without a template or a session write, deltas by id, adaptive interval."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import Visitor, advance, hold, https_client, make_app, message_payload, parse_html
from flask import template_rendered

from webwidget.polling import (
    Changes,
    PollState,
    SlowerPoller,
    Unchanged,
    compute_delta,
    decide,
    interval_for,
    read_state,
)
from webwidget.rendering.domids import dom_id

HX = {"HX-Request": "true"}
NOW = 1_800_000_000.0


def test_the_poll_decision_is_a_function_of_the_page_and_the_newest_version():
    fresh = PollState(version="v1", interval=1.5, changed_at=int(NOW) - 5)
    assert decide(fresh, "v1", now=NOW, base=3, activity=False) == Unchanged()
    # No list yet (a refresh is on its way): nothing to say.
    assert decide(fresh, None, now=NOW, base=3, activity=False) == Unchanged()
    # Idle for 30 s: the same version, but a slower poller (3 s from 20 s idle).
    idle = PollState(version="v1", interval=1.5, changed_at=int(NOW) - 30)
    assert decide(idle, "v1", now=NOW, base=3, activity=False) == SlowerPoller(
        version="v1", interval=3.0, changed_at=int(NOW) - 30
    )
    # A page older than the interval hint keeps its interval.
    unhinted = PollState(version="v1", interval=1.5, changed_at=int(NOW) - 30, hinted=False)
    assert decide(unhinted, "v1", now=NOW, base=3, activity=False) == Unchanged()
    # Changed, or a send: the changes, and a fast poller from now.
    changed = Changes(version="v2", interval=1.5, changed_at=int(NOW))
    assert decide(idle, "v2", now=NOW, base=3, activity=False) == changed
    assert decide(idle, "v1", now=NOW, base=3, activity=True) == replace(changed, version="v1")


def test_the_poll_parameters_are_clamped_they_come_from_the_browser():
    assert read_state({}, NOW, 3) == PollState(
        version=None, interval=3, changed_at=int(NOW), hinted=False
    )
    wild = read_state({"v": "x" * 99, "i": "1e9", "t": "nan"}, NOW, 3)
    assert (wild.version, wild.interval, wild.changed_at) == ("x" * 32, 60.0, int(NOW))
    assert read_state({"i": "0", "t": "0"}, NOW, 3).interval == 1.0
    assert read_state({"t": "0"}, NOW, 3).changed_at == int(NOW) - 86400 * 7
    assert read_state({"t": str(NOW + 999)}, NOW, 3).changed_at == int(NOW)
    assert read_state({"i": "soon"}, NOW, 3) == PollState(None, 3, int(NOW), hinted=True)



@dataclass
class Swaps:
    """The out-of-band swaps of an update, and the message articles inside each."""

    swaps: list[tuple[str, str]]  # (hx-swap-oob, id)
    articles: list[dict[str, str]]  # attrs, plus "in": the swap of the nearest enclosing one
    poller: dict[str, str] | None


def swaps(html: str) -> Swaps:
    found = Swaps([], [], None)
    for e in parse_html(html).elements:
        attrs = {k: v or "" for k, v in e.attrs.items()}
        if "hx-swap-oob" in attrs:
            found.swaps.append((attrs["hx-swap-oob"], attrs.get("id", "")))
        if attrs.get("id") == "ww-poller":
            found.poller = attrs
        if e.tag == "article":
            enclosing = next((a.attrs["hx-swap-oob"] or "" for a in e.ancestors()
                              if "hx-swap-oob" in a.attrs), "")
            found.articles.append({**attrs, "in": enclosing})
    return found


ARTICLE = re.compile(r"<article\b.*?</article>", re.S)


def articles(html: str) -> dict[str, str]:
    """Each message article's HTML by data-message-id, in page order, without oob markers."""
    found = {}
    for chunk in ARTICLE.findall(html):
        chunk = chunk.replace(' hx-swap-oob="true"', "")
        found[re.search(r'data-message-id="([^"]*)"', chunk).group(1)] = chunk
    return found


def poller_params(html: str) -> dict[str, str]:
    found = swaps(html).poller
    assert found is not None, "no poller in the response"
    url = found["hx-get"].replace("&amp;", "&")
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def poll(visitor, params: dict[str, str]):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return visitor.get(f"/w/default/messages?{query}", headers=HX)


def test_schedule_is_fast_after_activity_and_slow_when_idle():
    assert interval_for(0, 3.0) == 1.5
    assert interval_for(30, 3.0) == 3.0
    assert interval_for(90, 3.0) == 6.0
    assert interval_for(600, 3.0) == 15.0
    assert interval_for(10**6, 30.0) == 60.0  # capped


def test_dom_ids_are_stable_and_safe():
    assert dom_id("msg_1") == "m-msg_1" == dom_id("msg_1")
    odd = dom_id('a"b c')
    assert odd.startswith("mh-") and re.fullmatch(r"mh-[a-p]{20}", odd)


def test_delta_falls_back_to_a_full_list_unless_the_base_is_a_prefix():
    class V:
        def __init__(self, id):
            self.id = id

    views = [V("a"), V("b"), V("c")]
    states = [["a", "1"], ["b", "2"], ["c", "3"]]
    assert compute_delta(None, views, states) is None
    assert compute_delta([["a", "1"], ["x", "2"]], views, states) is None  # deleted
    assert compute_delta([["b", "2"], ["a", "1"]], views, states) is None  # reordered
    assert compute_delta(states + [["d", "4"]], views, states) is None  # shrank
    delta = compute_delta([["a", "1"], ["b", "old"]], views, states)
    assert [v.id for v in delta.replace] == ["b"]
    assert [v.id for v in delta.append] == ["c"]


def test_unchanged_poll_is_204_without_template_or_session_write(app, visitor):
    visitor.start()
    page = visitor.get("/w/default").get_data(as_text=True)
    params = poller_params(page)
    assert set(params) == {"v", "i", "t"}
    handle = visitor.client.get_cookie("__Host-ww_session-default").value
    interface = app.session_interface
    sid = interface.signer.unsign(handle, "default")
    before = interface.store.load(sid)

    rendered = []

    def record(sender, template, context, **extra):
        rendered.append(template.name)

    template_rendered.connect(record, app)
    try:
        same = poll(visitor, params)
    finally:
        template_rendered.disconnect(record, app)
    assert same.status_code == 204
    assert same.get_data() == b""
    assert rendered == []
    assert "Set-Cookie" not in same.headers
    assert "X-Widget-Session" not in same.headers
    after = interface.store.load(sid)
    assert (after.data, after.last_seen) == (before.data, before.last_seen)


def test_changes_arrive_as_deltas_that_rebuild_the_same_log(visitor, sandbox, clock):
    # The bot's echo falls due only when the test moves the sandbox's clock (on a busy
    # machine its 0.4 s could pass before the send's own list call).
    hold(sandbox)
    visitor.start()
    page = visitor.get("/w/default").get_data(as_text=True)
    shown = articles(page)
    assert len(shown) == 1
    # The composer sends the version on screen (hx-include="#ww-base").
    base = re.search(r'id="ww-base" name="v" value="([0-9a-f]+)"', page).group(1)
    assert base == poller_params(page)["v"]

    sent = visitor.post("/w/default/send", {"text": "hello delta", "v": base}, htmx=True)
    assert sent.status_code == 200
    html = sent.get_data(as_text=True)
    found = swaps(html)
    assert ("innerHTML", "ww-log") not in found.swaps  # no full re-render
    appended = [a for a in found.articles if a["in"] == "beforeend:#ww-log"]
    assert len(appended) == 1 and "hello delta" in html
    shown.update(articles(html))

    # The bot echoes, and the visitor's message moves from sent to delivered to read.
    advance(sandbox, 5)
    # A poll shares the list fetched up to 0.9 of its interval ago (coalescing): move past it.
    params = {**poller_params(html), "i": "1"}
    clock.advance(0.95)
    changed = poll(visitor, params)
    assert changed.status_code == 200
    html = changed.get_data(as_text=True)
    found = swaps(html)
    assert ("innerHTML", "ww-log") not in found.swaps
    replaced = [a for a in found.articles if a.get("hx-swap-oob") == "true"]
    new = [a for a in found.articles if a["in"] == "beforeend:#ww-log"]
    assert [a["data-message-id"] for a in new] == [
        mid for mid in articles(html) if mid not in shown
    ]
    assert new, "the echo is appended"
    for article in replaced:
        assert article["data-message-id"] in shown
        assert article["id"] == dom_id(article["data-message-id"])
    assert any("Read" in chunk for chunk in articles(html).values())
    # Applying the delta to what was shown gives exactly what a fresh page shows.
    for mid, chunk in articles(html).items():
        shown[mid] = chunk
    full = articles(visitor.get("/w/default").get_data(as_text=True))
    assert list(shown) == list(full)
    assert shown == full


def test_unknown_base_version_gets_the_full_list(visitor, clock):
    visitor.start()
    # "later" is answered a minute later on the sandbox clock: an echo due 0.4 s after the
    # send would be in the list too whenever this test runs slowly.
    visitor.send("later")
    changed = poll(visitor, {"v": "0123456789abcdef", "i": "1.5", "t": str(int(clock()))})
    assert changed.status_code == 200
    found = swaps(changed.get_data(as_text=True))
    assert ("innerHTML", "ww-log") in found.swaps
    assert len(found.articles) == 2
    assert all(a["in"] == "innerHTML" for a in found.articles)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_idle_poller_slows_down_and_activity_speeds_it_up(visitor, sandbox, clock):
    visitor.start()
    page = visitor.get("/w/default").get_data(as_text=True)
    params = poller_params(page)
    assert params["i"] == "1.5"
    assert 'hx-trigger="every 1.5s, ww:visible"' in page
    assert poll(visitor, params).status_code == 204

    idle = {**params, "t": str(int(clock()) - 400)}
    slower = poll(visitor, idle)
    assert slower.status_code == 200
    html = slower.get_data(as_text=True)
    found = swaps(html)
    assert found.swaps == [("true", "ww-poller")]  # only the poller, no messages
    assert 'hx-trigger="every 15s, ww:visible"' in html
    slow = poller_params(html)
    assert (slow["i"], slow["t"], slow["v"]) == ("15", idle["t"], params["v"])
    assert poll(visitor, slow).status_code == 204

    visitor.send("wake up")
    fast = poller_params(poll(visitor, slow).get_data(as_text=True))
    assert fast["i"] == "1.5"
    assert abs(int(fast["t"]) - clock()) < 5


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_hostile_poll_parameters_are_clamped_not_errors(visitor):
    visitor.start()
    for params in (
        {"v": "x" * 500, "i": "nan", "t": "inf"},
        {"i": "-5", "t": "-1e300"},
        {"i": "1e9", "t": "abc"},
    ):
        assert poll(visitor, params).status_code in (200, 204)


def test_views_built_for_a_delta_equal_those_of_the_whole_list():
    from webwidget.chatcaptain.models import MessageDto
    from webwidget.rendering import build_message_views

    def message(i, group=None, outgoing=True, status="sent"):
        return MessageDto.model_validate(
            message_payload(f"m{i}", {"text": f"part {i}"}, outgoing=outgoing, status=status,
                            streamGroupId=group)
        )

    messages = [message(0, outgoing=False), message(1, "g"), message(2, "g"), message(3, "g"),
                message(4), message(5, "h", outgoing=False), message(6, "h")]
    whole = build_message_views(messages)
    for positions in ([1], [2, 3], [6], [0, 4, 5], []):
        assert build_message_views(messages, only=positions) == [whole[i] for i in positions]


def test_a_stream_growing_part_by_part_arrives_as_deltas(visitor, sandbox, clock):
    visitor.start()
    page = visitor.get("/w/default").get_data(as_text=True)
    shown = articles(page)
    base = re.search(r'id="ww-base" name="v" value="([0-9a-f]+)"', page).group(1)
    sent = visitor.post("/w/default/send", {"text": "stream", "v": base}, htmx=True)
    html = sent.get_data(as_text=True)
    shown.update(articles(html))
    params = poller_params(html)
    for _ in range(3):  # the parts arrive over time; each poll brings what is new
        advance(sandbox, 2)
        clock.advance(0.95)
        answer = poll(visitor, {**params, "i": "1"})
        if answer.status_code == 204:
            continue
        html = answer.get_data(as_text=True)
        assert ("innerHTML", "ww-log") not in swaps(html).swaps
        shown.update(articles(html))
        params = poller_params(html)
    full = articles(visitor.get("/w/default").get_data(as_text=True))
    assert list(shown) == list(full)
    assert shown == full


@pytest.fixture
def editable_sandbox():
    """A sandbox of this test's own, whose stored messages the test may edit."""
    from webwidget.sandbox import create_sandbox_app
    from webwidget.sandbox.server import BackgroundServer

    upstream = create_sandbox_app()
    server = BackgroundServer(upstream).start()
    server.app = upstream
    yield server
    server.stop()


def edit_first_message(upstream, text: str) -> None:
    """Change the text of the conversation's first message, as an upstream edit would."""
    store = upstream.extensions["webwidget_sandbox"].store
    with store.transaction() as db:
        seq, body = db.execute("SELECT seq, body FROM messages ORDER BY seq LIMIT 1").fetchone()
        message = json.loads(body)
        message["content"]["text"] = text
        db.execute("UPDATE messages SET body = ? WHERE seq = ?", (json.dumps(message), seq))


@pytest.mark.parametrize("refresh", ["in the poll", "in the background"])
def test_a_message_edited_upstream_reaches_an_open_page(
    editable_sandbox, store_url, tmp_path, clock, refresh
):
    from webwidget.coalesce import Refresher
    from webwidget.web.visitor import core_of

    background = refresh == "in the background"
    app = make_app(editable_sandbox, tmp_path, store_url=store_url, clock=clock,
                   UPSTREAM_REFRESH_CALLS=4 if background else 0)
    coalescer = core_of(app).coalescer
    tasks = []
    if background:
        coalescer.refresher = Refresher(4, spawn=tasks.append)

    def poll_through(params):
        """A poll, then (in background mode) the refresh it asked for, as the pool would."""
        answer = poll(visitor, params)
        while tasks:
            tasks.pop(0)()
        return answer

    visitor = Visitor(https_client(app))
    visitor.start()
    page = visitor.get("/w/default").get_data(as_text=True)
    (shown_id,) = articles(page)
    params = poller_params(page)
    clock.advance(2)  # past the cached list's share of the interval: the poll wants a new one
    assert poll_through(params).status_code == 204

    edit_first_message(editable_sandbox.app, "Edited upstream")
    clock.advance(2)
    changed = poll_through(params)
    if background:
        # This poll answered from the list it had and refreshed it; the next one shows it.
        assert changed.status_code == 204
        changed = poll_through(params)
    assert changed.status_code == 200
    html = changed.get_data(as_text=True)
    found = swaps(html)
    assert ("innerHTML", "ww-log") not in found.swaps  # a delta, not a rebuilt log
    assert [a["data-message-id"] for a in found.articles] == [shown_id]
    assert found.articles[0].get("hx-swap-oob") == "true"  # replaced in place by id
    assert "Edited upstream" in articles(html)[shown_id]
    assert poller_params(html)["v"] != params["v"]

    clock.advance(2)
    assert poll_through(poller_params(html)).status_code == 204
