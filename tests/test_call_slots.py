"""A worker's upstream calls are bounded (issue 21, under load): held polls' checks give
way to what a visitor waits on, are skipped rather than failed, and never make a
request that needs the list fail with them."""

from __future__ import annotations

import threading

import pytest
from conftest import StoppedClock, wait_until
from test_chat_core import WIDGET, DictSession, DictUpstream

from webwidget import polling
from webwidget.call_slots import CallSkipped, CallSlots, optional_calls
from webwidget.coalesce import Coalescer
from webwidget.conversation import ChatCore
from webwidget.renewal import Renewals
from webwidget.shared.memory import MemoryState
from webwidget.wake import Wakeups


def test_optional_calls_are_skipped_while_the_worker_is_busy_and_others_always_go():
    skipped: list[str] = []
    slots = CallSlots(3, skipped=skipped.append)
    with slots.take("a"), slots.take("b"):
        with optional_calls(), slots.take("list_messages"):  # 2 in flight: not busy yet
            assert slots.busy == 3
    with slots.take("a"), slots.take("b"), slots.take("c"):  # 3 in flight: busy
        with pytest.raises(CallSkipped), optional_calls(), slots.take("list_messages"):
            pass
        assert skipped == ["list_messages"]
        # What a visitor waits on goes all the same, however busy.
        with slots.take("send_message"), slots.take("create_contact"):
            assert slots.busy == 5
    assert slots.busy == 0


def test_a_call_that_fails_gives_its_count_back():
    slots = CallSlots(1)
    with pytest.raises(RuntimeError), slots.take("list_messages"):
        raise RuntimeError("the upstream failed")
    assert slots.busy == 0


def test_nothing_is_skipped_when_busy_at_is_zero():
    slots = CallSlots(0)
    with slots.take("a"), optional_calls(), slots.take("b"):
        assert slots.busy == 2


class SlottedUpstream(DictUpstream):
    """The dict upstream, each call through `slots` as the guarded client makes it."""

    def __init__(self, slots: CallSlots) -> None:
        super().__init__()
        self.slots = slots

    def list_messages(self, *args, **kwargs):
        with self.slots.take("list_messages"):
            return super().list_messages(*args, **kwargs)

    def create_contact(self, *args, **kwargs):
        with self.slots.take("create_contact"):
            return super().create_contact(*args, **kwargs)


def test_an_idle_held_poll_skips_its_check_while_a_start_and_a_due_reply_still_go():
    skipped: list[str] = []
    slots = CallSlots(1, skipped=skipped.append)
    upstream = SlottedUpstream(slots)
    clock = StoppedClock()
    wakeups = Wakeups()
    core = ChatCore(
        client=upstream, coalescer=Coalescer(None, clock=clock),
        renewals=Renewals(MemoryState(clock)), wakeups=wakeups, clock=clock,
        messages_shown=50,
    )
    chats = core.for_visitor(DictSession())
    chat = chats.start(WIDGET, origin_url="https://shop.example/", language="EN")
    shown = chats.message_listing(WIDGET, chat)
    upstream.conversations[chat.conversation_id].append(upstream._message("A reply", True))
    clock.advance(600)
    # Idle for ten minutes: its checks are optional.
    state = polling.read_state(
        {"v": shown.version, "i": "30", "t": str(int(clock()) - 600), "m": "h"}, clock(), 3.0
    )
    wakeups.release_all(close=True)  # one check, then the answer (no real time waits)
    calls = upstream.calls.count("list_messages")

    with slots.take("another request's call"):  # the worker is busy
        answer = polling.hold_poll(chats, WIDGET, chat, state, clock=clock, base=3.0,
                                   seconds=30)
        assert isinstance(answer, polling.SlowerPoller) and answer.version == shown.version
        assert skipped == ["list_messages"]
        assert upstream.calls.count("list_messages") == calls  # no call was made
        # A visitor's start goes meanwhile.
        other = core.for_visitor(DictSession())
        assert other.start(WIDGET, origin_url="https://shop.example/", language="EN")
        # A chat whose visitor has just written is checked all the same: a reply is due.
        chats.send_text(WIDGET, chat, "hello?", "c1")
        due = polling.read_state(
            {"v": shown.version, "i": "1.5", "t": str(int(clock())), "m": "h"}, clock(), 3.0
        )
        answer = polling.hold_poll(chats, WIDGET, chat, due, clock=clock, base=3.0, seconds=30)
        assert isinstance(answer, polling.Changes)
        assert answer.messages[-1].content.text == "hello?"
        assert skipped == ["list_messages"]

    # Slots free again: the idle poll's next check is made and brings the news.
    answer = polling.hold_poll(chats, WIDGET, chat, state, clock=clock, base=3.0, seconds=30)
    assert isinstance(answer, polling.Changes)
    assert [m.content.text for m in answer.messages][-2:] == ["A reply", "hello?"]


def test_a_request_that_joined_a_skipped_check_fetches_the_list_itself():
    coalescer = Coalescer(None, clock=StoppedClock())
    joined = threading.Event()
    calls: list[str] = []
    outcome: dict[str, object] = {}

    class NoticingEvent(threading.Event):
        def wait(self, timeout=None):
            joined.set()
            return super().wait(timeout)

    def skipped_check():
        calls.append("check")
        coalescer._flights["k"].done = NoticingEvent()
        assert joined.wait(10), "the page load never joined the check's flight"
        raise CallSkipped("skipped", operation="list_messages")

    def check() -> None:
        with optional_calls():
            try:
                coalescer.get("k", skipped_check)
            except CallSkipped as error:
                outcome["check"] = error

    def page_load() -> None:
        outcome["page"] = coalescer.get("k", lambda: calls.append("page") or [])

    first = threading.Thread(target=check)
    first.start()
    wait_until(lambda: "k" in coalescer._flights and calls, timeout=10,
               what="the held poll's check under way")
    second = threading.Thread(target=page_load)
    second.start()
    first.join(10)
    second.join(10)
    assert isinstance(outcome["check"], CallSkipped)
    assert calls == ["check", "page"]
    assert outcome["page"] is not None and not isinstance(outcome["page"], Exception)
