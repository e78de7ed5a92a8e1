"""Upstream faults through the widget: friendly fragments, intact sessions, recovery,
the circuit breaker, and a chat the upstream has forgotten."""

from __future__ import annotations

import html as html_module
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    CHANNEL_TOKEN,
    StoppedClock,
    Visitor,
    advance,
    faults,
    free_port,
    heal,
    https_client,
    make_app,
    stats,
    wait_for_server,
    wait_until,
)

MESSAGE_ID = re.compile(r'data-message-id="([^"]+)"')
POLLER = re.compile(r'<div id="ww-poller"[^>]*hx-get="([^"]+)".*?</div>', re.S)
STATUS_BOX = re.compile(r'<div id="ww-status"[^>]*>(.*?)</div>', re.S)


def reached(sandbox, operation: str) -> int:
    """How many requests for `operation` reached the sandbox so far."""
    return stats(sandbox)[operation]


def short_timeout_app(upstream, tmp_path: Path, clock, **overrides):
    """A widget app whose upstream calls give up well before a slow fault's latency (and
    well after a healthy call's, on a machine busy with parallel tests)."""
    values = {
        "UPSTREAM_CONNECT_TIMEOUT": 1.0,
        "UPSTREAM_READ_TIMEOUT": 2.0,
        "UPSTREAM_DEADLINE": 3.0,
        "UPSTREAM_BREAKER_FAIL_MAX": 1000,
        "WIDGET_POLL_SECONDS": 0.5,
        **overrides,
    }
    return make_app(upstream, tmp_path, clock=clock, **values)


def poll(visitor: Visitor, url: str):
    """An htmx poll, as the page's poller sends it."""
    return visitor.get(url, headers={"HX-Request": "true"})


def poll_through(visitor: Visitor, url: str, clock):
    """Poll until the answer is not "unchanged": a list fetched a moment ago may be
    shared with this poll (upstream-call coalescing), so move the clock past it."""
    for _ in range(10):
        answer = poll(visitor, url)
        if answer.status_code != 204:
            return answer
        clock.advance(0.5)  # WIDGET_POLL_SECONDS: past the share of a poll interval
    return answer


def poller_version(html: str) -> str:
    """The version the page's poller reports (in its URL or a hidden field)."""
    div = POLLER.search(html)
    assert div, "no poller in the page"
    found = re.search(r'name="v" value="([^"]*)"', div.group(0)) or re.search(
        r"[?&]v=([^&\"]*)", div.group(1)
    )
    return found.group(1) if found else ""


def poller_url(html: str) -> str:
    """The URL the page's poller will fetch next, version included."""
    div = POLLER.search(html)
    assert div, "no poller in the page"
    url = re.sub(r"([?&])v=[^&]*&?", r"\1", div.group(1).replace("&amp;", "&")).rstrip("?&")
    return url + ("&" if "?" in url else "?") + "v=" + poller_version(html)


def status_text(html: str) -> str:
    """What the #ww-status box says."""
    match = STATUS_BOX.search(html)
    assert match, "no #ww-status"
    return html_module.unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


def assert_no_secrets(response, *secrets: str) -> None:
    """Nothing the browser receives holds a secret or a stack trace."""
    blob = response.get_data(as_text=True) + repr(dict(response.headers))
    for secret in (CHANNEL_TOKEN, *secrets):
        assert secret not in blob
    assert "Traceback" not in blob
    assert "wt_" not in blob  # the sandbox's widget tokens
    assert "?token" not in blob


@pytest.fixture
def fast_app(sandbox, tmp_path, clock):
    return short_timeout_app(sandbox, tmp_path, clock)


@pytest.fixture
def chatting(fast_app):
    """A visitor with a started chat, and the page they see."""
    visitor = Visitor(https_client(fast_app))
    assert visitor.start().status_code == 303
    page = visitor.get("/w/default")
    assert page.status_code == 200
    return visitor, page.get_data(as_text=True)


# Longer than the short-timeout app's deadline (3 s), by a margin a busy machine keeps.
SLOW_MS = 5000

# fault config, the statuses htmx may get for it: a failing GET is retried, and on a
# busy machine the retries can run into the deadline, which makes a 503 a 504.
FAULTS = {
    "slow": ({"latency_ms": SLOW_MS}, {504}),
    "5xx": ({"error_status": 500}, {503, 504}),
    "503": ({"error_status": 503}, {503, 504}),
    "reset": ({"reset_rate": 1.0}, {503, 504}),
    "malformed_json": ({"malformed_rate": 1.0}, {502}),
    "schema_violation": ({"schema_violation_rate": 1.0}, {502}),
    "2xx_with_error": ({"error_body_rate": 1.0}, {502}),
}


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_poll_during_a_fault_reconnects_and_recovers_on_the_next_poll(chatting, sandbox, fault,
                                                                     clock):
    visitor, html = chatting
    config, status = FAULTS[fault]
    before = MESSAGE_ID.findall(html)
    assert before
    url = poller_url(html)

    faults(sandbox, operations=["list_messages"], **config)
    down = poll_through(visitor, url, clock)
    assert down.status_code in status
    body = down.get_data(as_text=True)
    assert "Reconnecting" in status_text(body)
    assert 'class="ww-retry"' in body
    # The poller comes back with an empty version, so the next success re-renders all.
    assert poller_version(body) == ""
    assert 'id="ww-log"' not in body  # the log on the page stays as it was
    assert_no_secrets(down)

    # Without JavaScript: a whole friendly page with the same status.
    page = visitor.get("/w/default")
    assert page.status_code in status
    assert "<html" in page.get_data(as_text=True).lower()
    assert "Reconnecting" in page.get_data(as_text=True)
    assert_no_secrets(page)

    heal(sandbox)
    back = poll(visitor, poller_url(body))
    assert back.status_code == 200
    recovered = back.get_data(as_text=True)
    assert MESSAGE_ID.findall(recovered)[: len(before)] == before
    assert status_text(recovered) == ""  # the notice is cleared
    assert poller_version(recovered) != ""
    # The session survived: the same conversation, no new contact upstream.
    assert reached(sandbox, "create_contact") == 1


# Faults the upstream answers without storing the message. A slow upstream is not one of
# them: it stores the message after the widget gave up, so it has its own test below.
@pytest.mark.parametrize("fault", ["5xx", "reset", "malformed_json", "2xx_with_error"])
def test_send_during_a_fault_says_so_and_the_message_is_not_pretended(chatting, sandbox, fault):
    visitor, html = chatting
    config, status = FAULTS[fault]
    faults(sandbox, operations=["send_message"], **config)

    sent = visitor.send("are you there?", htmx=True)
    assert sent.status_code in status
    body = sent.get_data(as_text=True)
    assert "could not be sent" in status_text(body)
    assert 'class="ww-retry"' in body
    assert_no_secrets(sent)

    plain = visitor.send("are you there?")  # no JavaScript: a friendly page, no redirect
    assert plain.status_code in status
    assert "could not be sent" in plain.get_data(as_text=True)
    # The words come back in the box, so nothing the visitor typed is lost.
    assert re.search(r"<textarea[^>]*>are you there\?</textarea>", plain.get_data(as_text=True))
    assert re.search(r'name="client_id" value="[0-9a-f]{24}"', plain.get_data(as_text=True))

    heal(sandbox)
    page = visitor.get("/w/default").get_data(as_text=True)
    assert "are you there?" not in page
    assert MESSAGE_ID.findall(page) == MESSAGE_ID.findall(html)
    assert visitor.send("are you there?").status_code == 303
    assert "are you there?" in visitor.get("/w/default").get_data(as_text=True)


def test_a_send_that_outlives_the_deadline_is_not_pretended_nor_resent(chatting, sandbox):
    """The widget cannot know whether a timed-out send was stored: it says it could not
    be sent, never sends it again, and later shows what the upstream really holds."""
    visitor, html = chatting
    config, status = FAULTS["slow"]
    faults(sandbox, operations=["send_message"], **config)
    sent = visitor.send("are you there?", htmx=True)
    assert sent.status_code in status
    assert "could not be sent" in status_text(sent.get_data(as_text=True))
    assert "are you there?" not in sent.get_data(as_text=True)
    assert_no_secrets(sent)
    assert reached(sandbox, "send_message") == 1  # a POST is sent once, never retried

    heal(sandbox)
    # The upstream stores the message once its latency has passed; until then the page
    # shows the log as it was, afterwards the message once: what the upstream holds.

    def shown_once() -> bool:
        page = visitor.get("/w/default").get_data(as_text=True)
        shown = len(re.findall(r"(?<!You said: )are you there\?", page))  # not the echo
        assert shown in (0, 1)
        return shown == 1

    wait_until(shown_once, timeout=SLOW_MS / 1000 + 10,
               what="the message the slow upstream stored")


def test_start_during_an_outage_keeps_the_welcome_and_works_after(fast_app, sandbox):
    visitor = Visitor(https_client(fast_app))
    faults(sandbox, error_status=503, operations=["create_contact"])
    failed = visitor.post("/w/default/start", htmx=True)
    assert failed.status_code == 503
    assert "could not start" in failed.get_data(as_text=True)
    assert_no_secrets(failed)
    heal(sandbox)
    assert visitor.start().status_code == 303
    assert MESSAGE_ID.findall(visitor.get("/w/default").get_data(as_text=True))


def test_breaker_fails_fast_while_down_and_probes_after_its_reset_time(sandbox, tmp_path):
    clock = StoppedClock()  # no real second may count towards the reset time
    app = short_timeout_app(sandbox, tmp_path, clock, UPSTREAM_BREAKER_FAIL_MAX=3,
                   UPSTREAM_BREAKER_RESET_SECONDS=2.0)
    visitor = Visitor(https_client(app))
    visitor.start()
    html = visitor.get("/w/default").get_data(as_text=True)
    url = poller_url(html)

    faults(sandbox, error_status=503, operations=["list_messages"])
    for _ in range(3):
        assert poll_through(visitor, url, clock).status_code in (503, 504)
    reached_when_open = reached(sandbox, "list_messages")
    assert app.extensions["webwidget.upstream"].circuit_state == "open"

    for _ in range(5):  # fail fast: nothing reaches the upstream
        fast = poll(visitor, url)
        assert fast.status_code == 503
        assert "Reconnecting" in status_text(fast.get_data(as_text=True))
    assert visitor.get("/w/default").status_code == 503
    assert reached(sandbox, "list_messages") == reached_when_open

    heal(sandbox)
    url = poller_url(fast.get_data(as_text=True))  # what the page polls after an error
    assert poll(visitor, url).status_code == 503  # still open: it has not probed yet
    assert reached(sandbox, "list_messages") == reached_when_open
    clock.advance(2.1)
    back = poll(visitor, url)
    assert back.status_code == 200  # the probe went through and closed the circuit
    assert MESSAGE_ID.findall(back.get_data(as_text=True)) == MESSAGE_ID.findall(html)
    assert reached(sandbox, "list_messages") == reached_when_open + 1
    assert app.extensions["webwidget.upstream"].circuit_state == "closed"


def test_a_failed_probe_opens_the_circuit_again(sandbox, tmp_path):
    clock = StoppedClock()  # no real second may count towards the reset time
    app = short_timeout_app(sandbox, tmp_path, clock, UPSTREAM_BREAKER_FAIL_MAX=2,
                   UPSTREAM_BREAKER_RESET_SECONDS=1.0)
    visitor = Visitor(https_client(app))
    visitor.start()
    url = poller_url(visitor.get("/w/default").get_data(as_text=True))
    faults(sandbox, error_status=500, operations=["list_messages"])
    for _ in range(2):
        poll_through(visitor, url, clock)
    assert app.extensions["webwidget.upstream"].circuit_state == "open"
    clock.advance(1.1)
    count = reached(sandbox, "list_messages")
    assert poll(visitor, url).status_code in (503, 504)  # the probe, which fails
    assert reached(sandbox, "list_messages") > count
    assert app.extensions["webwidget.upstream"].circuit_state == "open"
    count = reached(sandbox, "list_messages")
    assert poll(visitor, url).status_code == 503
    assert reached(sandbox, "list_messages") == count


def test_with_the_default_settings_the_breaker_closes_within_a_second_of_the_upstreams_return(
    sandbox, tmp_path, clock
):
    # Each worker has its own breaker: at 15 s between probes it stayed open up to 15 s
    # after ChatCaptain was back (13.9 s measured under gunicorn).
    app = short_timeout_app(sandbox, tmp_path, clock, UPSTREAM_BREAKER_FAIL_MAX=3)
    visitor = Visitor(https_client(app))
    visitor.start()
    url = poller_url(visitor.get("/w/default").get_data(as_text=True))
    faults(sandbox, error_status=503, operations=["list_messages"])
    for _ in range(3):
        poll_through(visitor, url, clock)
    assert app.extensions["webwidget.upstream"].circuit_state == "open"
    heal(sandbox)
    clock.advance(1.0)
    assert poll(visitor, url).status_code in (200, 204)
    assert app.extensions["webwidget.upstream"].circuit_state == "closed"


def test_while_the_upstream_stays_down_each_breaker_probes_once_a_second_at_most(
    sandbox, tmp_path
):
    # One attempt per probe (a list call otherwise retries a 503 twice), one probe a second.
    clock = StoppedClock()
    app = short_timeout_app(sandbox, tmp_path, clock, UPSTREAM_BREAKER_FAIL_MAX=3)
    visitors = [Visitor(https_client(app)) for _ in range(5)]
    urls = []
    for visitor in visitors:
        visitor.start()
        urls.append(poller_url(visitor.get("/w/default").get_data(as_text=True)))
    faults(sandbox, error_status=503, operations=["list_messages"])
    for _ in range(3):
        poll_through(visitors[0], urls[0], clock)
    assert app.extensions["webwidget.upstream"].circuit_state == "open"
    count = reached(sandbox, "list_messages")
    for _ in range(40):  # ten seconds of five visitors polling every quarter second
        clock.advance(0.25)
        for visitor, url in zip(visitors, urls, strict=True):
            assert poll(visitor, url).status_code in (502, 503, 504)
    assert reached(sandbox, "list_messages") - count <= 10


# What one conversation can bring about alone: a refusal, or an answer that breaks the
# contract (a list too large or malformed). None may open the breaker for every visitor.
ONE_CONVERSATION = {
    "400": {"error_status": 400},
    "404": {"error_status": 404},
    "malformed_json": {"malformed_rate": 1.0},
    "schema_violation": {"schema_violation_rate": 1.0},
    "2xx_with_error": {"error_body_rate": 1.0},
}


@pytest.mark.parametrize("fault", ONE_CONVERSATION, ids=list(ONE_CONVERSATION))
def test_failures_of_one_conversation_do_not_count_towards_the_breaker(
    sandbox, tmp_path, clock, fault
):
    app = short_timeout_app(sandbox, tmp_path, clock, UPSTREAM_BREAKER_FAIL_MAX=2)
    visitor = Visitor(https_client(app))
    visitor.start()
    url = poller_url(visitor.get("/w/default").get_data(as_text=True))
    faults(sandbox, operations=["list_messages"], **ONE_CONVERSATION[fault])
    for _ in range(5):
        count = reached(sandbox, "list_messages")
        assert poll_through(visitor, url, clock).status_code == 502
        assert reached(sandbox, "list_messages") == count + 1  # every poll is really sent
    assert app.extensions["webwidget.upstream"].circuit_state == "closed"


# -- a chat the upstream refuses: kept, never ended (docs/reliability.md) ---------------


def test_a_refused_token_renewal_keeps_the_chat_and_offers_a_new_one(chatting, sandbox):
    visitor, html = chatting
    shown = MESSAGE_ID.findall(html)
    advance(sandbox, 4000)  # the widget token has expired
    faults(sandbox, error_status=404, operations=["create_conversation"])
    page = visitor.get("/w/default")
    assert page.status_code == 502
    body = page.get_data(as_text=True)
    assert "can't be reached right now" in status_text(body)
    assert 'formaction="/w/default/start?new=1"' in body
    assert_no_secrets(page)
    # The chat is still the visitor's: once the upstream renews the token, it is back.
    heal(sandbox)
    again = visitor.get("/w/default")
    assert again.status_code == 200
    assert MESSAGE_ID.findall(again.get_data(as_text=True))[: len(shown)] == shown


def test_a_poll_on_a_refused_renewal_keeps_the_messages_and_the_chat(chatting, sandbox, clock):
    visitor, html = chatting
    advance(sandbox, 4000)
    faults(sandbox, error_status=401, operations=["create_conversation"])
    answer = poll_through(visitor, poller_url(html), clock)
    assert answer.status_code == 502
    assert "HX-Retarget" not in answer.headers  # out of band: the messages stay on screen
    assert "can't be reached right now" in status_text(answer.get_data(as_text=True))
    heal(sandbox)
    assert poll_through(visitor, poller_url(html), clock).status_code in (200, 204)


def start_sandbox_process(port: int, log: Path) -> subprocess.Popen:
    """The sandbox as its own process with in-memory state, ready on `port`."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "webwidget.cli", "sandbox", "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_server(f"http://127.0.0.1:{port}/_sandbox/stats", process, log=log)
    except AssertionError:
        process.kill()
        process.wait()  # reaped here, not in some later test's garbage collection
        raise
    return process


def test_an_upstream_that_lost_all_state_keeps_the_chat_until_the_visitor_leaves_it(
    tmp_path, clock
):
    """A 404 for every call of the chat is no proof: the chat stays, the visitor is told
    it cannot be reached, and a new chat (with the words in the box) is their choice."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = start_sandbox_process(port, tmp_path / "sandbox.log")
    try:
        app = short_timeout_app(url, tmp_path, clock, UPSTREAM_DEADLINE=3.0,
                                UPSTREAM_READ_TIMEOUT=2.0)
        visitor = Visitor(https_client(app))
        visitor.start()
        html = visitor.get("/w/default").get_data(as_text=True)
        assert MESSAGE_ID.findall(html)
    finally:
        first.terminate()
        first.wait(timeout=10)
    second = start_sandbox_process(port, tmp_path / "sandbox.log")  # it knows nobody
    try:
        answer = poll_through(visitor, poller_url(html), clock)
        assert answer.status_code == 502
        assert "can't be reached right now" in status_text(answer.get_data(as_text=True))
        assert_no_secrets(answer)
        # A send is not acknowledged, and the chat is still there for the next try.
        form = {"text": "are you there?", "client_id": "lost-state-0123456789"}
        refused = visitor.post("/w/default/send", form, htmx=True)
        assert refused.status_code == 502
        assert visitor.get("/w/default").status_code == 502
        # The visitor leaves it for a new chat, and the words go with them, once.
        started = visitor.post("/w/default/start?new=1", form)
        assert started.status_code == 303
        page = visitor.get("/w/default").get_data(as_text=True)
        assert page.count(">are you there?<") == 1
    finally:
        second.terminate()
        second.wait(timeout=10)


def test_a_retried_send_with_the_same_client_id_is_stored_once(chatting, sandbox):
    """The send reached the upstream but its answer failed: the retry adds no second copy."""
    visitor, _html = chatting
    form = {"text": "just once", "client_id": "retry-0123456789"}
    # Stored upstream, but the list call that makes the htmx answer fails: "not sent".
    faults(sandbox, operations=["list_messages"], error_status=503)
    failed = visitor.post("/w/default/send", form, htmx=True)
    assert failed.status_code == 503
    assert "could not be sent" not in failed.get_data(as_text=True)  # it says: reconnecting
    heal(sandbox)
    assert visitor.post("/w/default/send", form).status_code == 303
    page = visitor.get("/w/default").get_data(as_text=True)
    assert page.count(">just once<") == 1
    assert reached(sandbox, "send_message") == 2
    # A new id is a new message, even with the same words.
    visitor.post("/w/default/send", {**form, "client_id": "retry-abcdefghij"})
    assert visitor.get("/w/default").get_data(as_text=True).count(">just once<") == 2
