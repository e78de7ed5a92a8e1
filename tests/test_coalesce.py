"""Single-flight: polls of one conversation from many tabs and instances share one upstream call."""

from __future__ import annotations

import threading

import pytest
import redis
from conftest import faults, heal, https_client, make_app, message_payload, stats

from webwidget.coalesce import KEY_PREFIX

HX = {"HX-Request": "true"}


def list_calls(sandbox) -> int:
    return stats(sandbox)["list_messages"]


def slow_upstream(sandbox, ms: int) -> None:
    faults(sandbox, latency_ms=ms, operations=["list_messages"])


def start_chat(app) -> str:
    """Start a chat on `app`; the session handle, as the page script would keep it."""
    client = https_client(app, use_cookies=False)
    started = client.post("/w/default/start", headers={**HX, "Sec-Fetch-Site": "same-origin"})
    assert started.status_code == 200
    return started.headers["X-Widget-Session"]


def concurrent_polls(apps, handle: str, tabs: int, query: str = "v=stale&i=1") -> list[int]:
    """`tabs` polls at once, spread over `apps`, each from its own client (its own tab)."""
    barrier = threading.Barrier(tabs)
    statuses: list[int] = []

    def tab(n: int) -> None:
        client = https_client(apps[n % len(apps)], use_cookies=False)
        barrier.wait()
        response = client.get(
            f"/w/default/messages?{query}", headers={**HX, "X-Widget-Session": handle}
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=tab, args=(n,)) for n in range(tabs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses


def test_concurrent_polls_of_one_conversation_make_one_upstream_call(app, sandbox, clock):
    handle = start_chat(app)
    clock.advance(1.0)  # past the start's own cached list
    slow_upstream(sandbox, 300)  # so the polls overlap the one call in flight
    before = list_calls(sandbox)
    statuses = concurrent_polls([app], handle, tabs=8)
    assert statuses == [200] * 8
    assert list_calls(sandbox) - before == 1


def test_two_instances_on_one_redis_share_one_call(sandbox, redis_url, tmp_path, clock):
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/15")
    client.flushdb()
    url = redis_url.rsplit("/", 1)[0] + "/15"
    apps = [make_app(sandbox, tmp_path / name, store_url=url, clock=clock) for name in ("a", "b")]
    handle = start_chat(apps[0])
    clock.advance(1.0)
    slow_upstream(sandbox, 300)
    before = list_calls(sandbox)
    statuses = concurrent_polls(apps, handle, tabs=6)
    assert statuses == [200] * 6
    assert list_calls(sandbox) - before == 1
    # Redis keys and values name no token and no conversation id.
    keys = [k.decode() for k in client.keys(KEY_PREFIX + "*")]
    assert keys
    dump = " ".join(keys) + " ".join(
        (client.get(k) or b"").decode(errors="replace") for k in keys if not k.endswith(":lock")
    )
    interface = apps[0].session_interface
    chat = interface.store.load(interface.signer.unsign(handle, "default")).data["chat:default"]
    for secret in (chat["widgetToken"], chat["conversationId"], chat["contactId"]):
        assert secret not in dump
    client.flushdb()
    client.close()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_polls_within_the_interval_share_a_call_and_sends_invalidate_it(app, sandbox, clock):
    handle = start_chat(app)
    clock.advance(1.0)
    tab_a = https_client(app, use_cookies=False)
    tab_b = https_client(app, use_cookies=False)
    headers = {**HX, "X-Widget-Session": handle}
    before = list_calls(sandbox)
    # The first poll (1 s interval) needs a list newer than the start's; the rest share it.
    for tab, interval in ((tab_a, 1), (tab_b, 5), (tab_a, 5), (tab_b, 5)):
        polled = tab.get(f"/w/default/messages?v=x&i={interval}", headers=headers)
        assert polled.status_code == 200
    assert list_calls(sandbox) - before == 1

    sent = tab_a.post(
        "/w/default/send",
        data={"text": "mine at once"},
        headers={**headers, "Sec-Fetch-Site": "same-origin"},
    )
    assert "mine at once" in sent.get_data(as_text=True)
    # The other tab gets the list the send fetched, not the one cached before it.
    other = tab_b.get("/w/default/messages?v=x&i=5", headers=headers)
    assert "mine at once" in other.get_data(as_text=True)
    assert list_calls(sandbox) - before == 2


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_failed_call_is_not_cached(app, sandbox, clock):
    handle = start_chat(app)
    clock.advance(1.0)
    headers = {**HX, "X-Widget-Session": handle}
    tab = https_client(app, use_cookies=False)
    faults(sandbox, error_status=503, operations=["list_messages"])
    assert tab.get("/w/default/messages?v=x&i=1", headers=headers).status_code in (502, 503)
    heal(sandbox)
    assert tab.get("/w/default/messages?v=x&i=1", headers=headers).status_code == 200


def test_a_long_running_process_keeps_a_bounded_number_of_lists(monkeypatch):
    from webwidget import list_cache
    from webwidget.coalesce import Coalescer

    monkeypatch.setattr(list_cache, "LISTINGS_KEPT", 3)
    coalescer = Coalescer(clock=lambda: 1000.0)
    fetched: list[int] = []

    def read(n: int) -> None:
        coalescer.get(f"conversation-{n}", lambda: fetched.append(n) or [], max_age=60)

    for n in range(10):
        coalescer.invalidate(f"conversation-{n}")
        read(n)
    assert fetched == list(range(10))
    for n in (9, 8, 7):  # the three most recent lists are still kept
        read(n)
    assert fetched == list(range(10))
    read(0)  # an older one was let go: reading it fetches again
    assert fetched == [*range(10), 0]


def _message(message_id: str, text: str, *, status: str = "sent"):
    from webwidget.chatcaptain.models import MessageDto

    return MessageDto.model_validate(message_payload(message_id, {"text": text}, status=status))


def test_the_version_and_the_states_change_with_a_message_s_content():
    from webwidget.listing import Listing

    before = Listing.of([_message("m1", "Hello"), _message("m2", "Bye")], 0.0)
    edited = Listing.of([_message("m1", "Hello"), _message("m2", "Bye!")], 0.0)
    same = Listing.of([_message("m1", "Hello"), _message("m2", "Bye")], 5.0)
    assert before.version == same.version and before.states == same.states
    assert edited.version != before.version
    assert edited.states[0] == before.states[0]
    assert edited.states[1][0] == "m2" and edited.states[1][1] != before.states[1][1]


def test_a_cached_list_is_validated_once_per_process(redis_url, monkeypatch):
    from webwidget import listing
    from webwidget.coalesce import Coalescer

    url = redis_url.rsplit("/", 1)[0] + "/14"
    client = redis.Redis.from_url(url)
    client.flushdb()
    fetching, reading = Coalescer(client), Coalescer(redis.Redis.from_url(url))
    messages = [_message("m1", "Hello"), _message("m2", "Bye", status="read")]
    fetched = fetching.get("k", lambda: messages, max_age=10)
    assert fetching.get("k", lambda: [], max_age=10) is fetched  # the fetcher's own objects

    parses = []
    original = listing._Stored.model_validate_json

    def counting(raw, **kwargs):
        parses.append(1)
        return original(raw, **kwargs)

    monkeypatch.setattr(listing._Stored, "model_validate_json", counting)
    first = reading.get("k", lambda: [], max_age=10)
    assert first.version == fetched.version
    assert parses == []  # the version alone answers an unchanged poll
    assert first.messages == messages and first.states == fetched.states
    again = reading.get("k", lambda: [], max_age=10)
    assert again is first and again.messages == messages
    assert parses == [1]
    client.flushdb()
    client.close()


class Upstream:
    """Counts calls and answers with the current list (or raises `error`)."""

    def __init__(self, text: str = "Hello") -> None:
        self.text, self.calls, self.error = text, 0, None

    def __call__(self):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return [_message("m1", self.text)]


def background_coalescer(limit: int = 2):
    """A coalescer on a fake clock whose background refreshes the test runs by hand."""
    from webwidget.coalesce import Coalescer, Refresher

    now, tasks = [1000.0], []
    coalescer = Coalescer(clock=lambda: now[0], refresher=Refresher(limit, spawn=tasks.append))
    return coalescer, now, tasks


def run_all(tasks: list) -> None:
    while tasks:
        tasks.pop(0)()


def test_a_stale_list_answers_at_once_and_is_refreshed_in_the_background():
    coalescer, now, tasks = background_coalescer()
    upstream = Upstream()
    first = coalescer.get("k", upstream, max_age=1, refresh=upstream)
    assert upstream.calls == 1 and tasks == []  # nothing cached yet: fetched in the poll
    upstream.text = "Hello again"
    now[0] += 5
    stale = coalescer.get("k", upstream, max_age=1, refresh=upstream)
    assert stale is first and upstream.calls == 1  # answered without an upstream call
    assert len(tasks) == 1
    assert coalescer.get("k", upstream, max_age=1, refresh=upstream) is first
    assert len(tasks) == 1  # one refresh per conversation at a time
    run_all(tasks)
    assert upstream.calls == 2
    fresh = coalescer.get("k", upstream, max_age=1, refresh=upstream)
    assert fresh.version != first.version and fresh.messages[0].content.text == "Hello again"
    assert coalescer.refresher.pending == 0


def test_refreshes_beyond_the_budget_are_dropped_and_asked_again_later():
    coalescer, now, tasks = background_coalescer(limit=2)
    upstream = Upstream()
    for key in ("a", "b", "c"):
        coalescer.get(key, upstream, max_age=1, refresh=upstream)
    now[0] += 5
    for key in ("a", "b", "c"):
        assert coalescer.get(key, upstream, max_age=1, refresh=upstream).messages
    assert len(tasks) == 2 and upstream.calls == 3  # "c" answered stale, no refresh queued
    run_all(tasks)
    coalescer.get("c", upstream, max_age=1, refresh=upstream)
    assert len(tasks) == 1  # budget free again: "c" is refreshed now
    run_all(tasks)
    assert upstream.calls == 6


def test_a_failed_refresh_makes_the_next_poll_fetch_itself():
    from webwidget.chatcaptain.errors import TokenExpired

    coalescer, now, tasks = background_coalescer()
    upstream = Upstream()
    coalescer.get("k", upstream, max_age=1, refresh=upstream)
    now[0] += 5
    upstream.error = TokenExpired(401, "Widget token expired.")
    coalescer.get("k", upstream, max_age=1, refresh=upstream)
    run_all(tasks)
    # The next poll goes to the upstream itself, so its error (or renewal) happens there.
    with pytest.raises(TokenExpired):
        coalescer.get("k", upstream, max_age=1, refresh=upstream)
    assert tasks == []
    upstream.error = None
    assert coalescer.get("k", upstream, max_age=1, refresh=upstream).messages
    now[0] += 5
    coalescer.get("k", upstream, max_age=1, refresh=upstream)
    assert len(tasks) == 1  # back to background refreshes once a fetch succeeded


def test_a_list_too_old_or_invalidated_is_not_answered_stale():
    from webwidget.list_cache import STALE_SECONDS

    coalescer, now, tasks = background_coalescer()
    upstream = Upstream()
    coalescer.get("k", upstream, max_age=1, refresh=upstream)
    now[0] += STALE_SECONDS + 1
    coalescer.get("k", upstream, max_age=1, refresh=upstream)
    assert upstream.calls == 2 and tasks == []  # too old to show: fetched in the poll

    now[0] += 5
    coalescer.get("k", upstream, max_age=1, refresh=upstream)
    assert len(tasks) == 1
    coalescer.invalidate("k")  # a send: the refresh in flight predates it
    upstream.text = "after the send"
    run_all(tasks)
    listing = coalescer.get("k", upstream, max_age=1, refresh=upstream)
    assert upstream.calls == 4 and listing.messages[0].content.text == "after the send"


def test_a_poll_of_a_list_this_process_never_saw_need_not_wait_for_it():
    coalescer, now, tasks = background_coalescer()
    upstream = Upstream()
    assert coalescer.get("k", upstream, max_age=1, refresh=upstream, cold_ok=True) is None
    assert upstream.calls == 0 and len(tasks) == 1
    run_all(tasks)
    listing = coalescer.get("k", upstream, max_age=1, refresh=upstream, cold_ok=True)
    assert listing is not None and upstream.calls == 1
    # Without cold_ok (a page load, a send) the first read fetches in the request.
    assert coalescer.get("other", upstream, max_age=1, refresh=upstream).messages
    assert upstream.calls == 2 and tasks == []


# --- the coalescer on the key-value interface, memory backend: no redis-server, no sandbox --


def test_two_instances_on_one_shared_state_share_a_fetch_until_a_send():
    from conftest import StoppedClock

    from webwidget.coalesce import Coalescer
    from webwidget.shared import MemoryState

    clock = StoppedClock()
    state = MemoryState(clock)
    one, two = Coalescer(state, clock=clock), Coalescer(state, clock=clock)
    upstream = Upstream("Hello")
    fetched = one.get("k", upstream, max_age=10)
    clock.advance(1)
    shared = two.get("k", upstream, max_age=10)
    assert upstream.calls == 1
    assert shared.version == fetched.version and shared.messages == fetched.messages
    one.invalidate("k")  # a send on instance one: instance two must not serve the old list
    upstream.text = "Edited"
    assert two.get("k", upstream, max_age=10).version != fetched.version
    assert upstream.calls == 2
    # What a version showed is remembered for both.
    one.remember_states("k", fetched.version, fetched.states)
    assert two.recall_states("k", fetched.version) == fetched.states


def test_a_poll_fetches_on_its_own_when_the_shared_state_does_not_answer():
    from webwidget.coalesce import Coalescer
    from webwidget.shared import SharedStateUnavailable

    class Down:
        def __getattr__(self, name):
            def fail(*args):
                raise SharedStateUnavailable("down")

            return fail

    changed: list[str] = []
    coalescer = Coalescer(Down(), clock=lambda: 1000.0, on_change=changed.append)
    upstream = Upstream("Hello")
    listing = coalescer.get("k", upstream, max_age=10)
    assert [m.id for m in listing.messages] == ["m1"] and upstream.calls == 1
    assert changed == ["k"]  # held polls here still learn of the new list
    coalescer.invalidate("k")
    coalescer.remember_states("k", listing.version, listing.states)
    assert coalescer.recall_states("k", listing.version) == listing.states  # kept locally
