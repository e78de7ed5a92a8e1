"""Cheap polls: 204 when nothing changed, deltas when something did, and an adaptive interval.

The poller's URL carries what the page shows and how it polls, none of it secret:
`v` the version of the message list on screen, `i` the poll interval in seconds, and
`t` when the list last changed (epoch seconds). From these the server answers:

- unchanged, interval still right: 204, no body, no template, no session write;
- unchanged, but idle long enough for a slower interval: only a new poller (a few
  hundred bytes) that polls less often;
- changed: only new messages appended to the log and changed messages replaced by id,
  against the states remembered for `v`; a full list when `v` is unknown (first poll,
  after an error, a message deleted or reordered).

`decide` makes that choice, a pure function of the page's state and the newest list's
version; `poll` gets the list (never waiting on the upstream) and returns the answer as
data; the views render it.

Held polls (issue 21, `WIDGET_HOLD_SECONDS` > 0): the poller asks again as soon as it is
replaced (htmx `hx-trigger="load"`), and the server holds each request until the list
changes or the hold ends (`hold_poll`), checking the upstream at a cadence that follows the
chat (`upstream_cadence`: every 0.3 s while the visitor's message is the newest, slower
when idle), shared with every other tab and instance through the coalescer, and woken
at once when another request stores a newer list (wake.py). Their URL adds `m=h`. A held
poll whose answer did not replace the poller is asked again by widget.js: soon with
`now=1` when the connection dropped (answered at once: the page learns it is back);
with `cut=1` when a proxy answered instead of us (it cut the held request), and the
server then answers with a short poller (`m=s`, `every Ns`), which the page keeps. The
poller's own `every` (the hold plus `BACKUP_MARGIN`) asks again should neither happen.
On `offline` widget.js ends a held poll at once, so the page says it is reconnecting.
A page without script refreshes itself (meta refresh) and holds nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from .call_slots import CallSkipped, optional_calls
from .chatcaptain.models import MessageDto
from .conversation import Chat, VisitorChats, listing_key
from .cooperative import is_cooperative
from .listing import Listing
from .widgets import WidgetConfig

T = TypeVar("T")

# Idle seconds -> multiple of WIDGET_POLL_SECONDS: fast right after a change, slower when idle.
SCHEDULE = ((0, 0.5), (20, 1.0), (60, 2.0), (180, 5.0))
MIN_INTERVAL = 1.0
MAX_INTERVAL = 60.0
# A cached list may be this share of the poller's interval old: a lone tab still gets
# a fresh list on every poll, while more tabs share one upstream call per interval.
SHARE_OF_INTERVAL = 0.9

# Held polls: the upstream cadence. A reply is likely while the visitor's message is the
# newest and fresh; more parts of a reply may follow one that just came; else as idle.
EXPECTING_CADENCE = 0.3
EXPECTING_SECONDS = 10.0
STILL_EXPECTING_CADENCE = 1.0
STILL_EXPECTING_SECONDS = 30.0
AFTER_CHANGE_CADENCE = 0.6
AFTER_CHANGE_SECONDS = 1.2
# Idle: what a reply costs in checks above is saved here (short polls checked every
# 1.5 s for the first 20 s), so that a chat costs no more calls than short polls did.
IDLE_CADENCE = 4.0
# A held poller asks again this long after its hold by itself: only if no answer
# replaced it and widget.js did not ask again either.
BACKUP_MARGIN = 10.0


def interval_for(idle_seconds: float, base: float) -> float:
    """The poll interval after `idle_seconds` without a change, rounded to half seconds."""
    factor = SCHEDULE[0][1]
    for after, multiple in SCHEDULE:
        if idle_seconds >= after:
            factor = multiple
    value = min(max(base * factor, MIN_INTERVAL), MAX_INTERVAL)
    return math.ceil(value * 2) / 2


def upstream_cadence(idle_seconds: float, expecting: bool, base: float) -> float:
    """How often a held poll checks the upstream `idle_seconds` after the chat's last
    change: fast where a reply is likely, slower than short polls when idle, so that a
    chatting conversation costs no more upstream calls than short polls did."""
    if expecting and idle_seconds < EXPECTING_SECONDS:
        return EXPECTING_CADENCE
    if idle_seconds < AFTER_CHANGE_SECONDS:
        return AFTER_CHANGE_CADENCE
    if expecting and idle_seconds < STILL_EXPECTING_SECONDS:
        return STILL_EXPECTING_CADENCE
    return max(interval_for(idle_seconds, base), IDLE_CADENCE)


def expecting_reply(listing: Listing) -> bool:
    """Whether the newest message is the visitor's (a reply is on its way, likely)."""
    messages = listing.messages
    return bool(messages) and not messages[-1].outgoing


def format_seconds(value: float) -> str:
    """`1.5`, `3`: what htmx's `every Ns` and the URL show."""
    return f"{value:g}"


@dataclass
class Delta(Generic[T]):
    """What a page showing an older version needs: messages to append and to replace."""

    append: list[T]
    replace: list[T]


def compute_delta(
    base: list[list[str]] | None, items: Sequence[T], states: list[list[str]]
) -> Delta[T] | None:
    """The delta from `base` to `items` (views, or their positions), or None when only a
    full list is right."""
    if base is None or len(base) > len(items):
        return None
    if [entry[0] for entry in base] != [entry[0] for entry in states[: len(base)]]:
        return None  # deleted or reordered: the log must be rebuilt
    replace = [
        item for item, old, new in zip(items, base, states, strict=False) if old[1] != new[1]
    ]
    return Delta(append=list(items[len(base) :]), replace=replace)


@dataclass(frozen=True)
class PollState:
    """What the poller's URL (or a send's form) says about the page."""

    version: str | None
    interval: float
    changed_at: int
    # Pages older than the interval hint send no `i`: they keep their interval.
    hinted: bool = True
    # "h": a held poller's request; "s": short polls because held ones were lost; "":
    # a page from before held polls, or a send.
    mode: str = ""
    # The page's last held poll was cut by a proxy (widget.js saw its error, not ours).
    cut: bool = False
    # The page's last held poll failed (the connection dropped): answer at once.
    now: bool = False


def _number(value: str | None, default: float) -> float:
    try:
        number = float(value) if value is not None else default
    except ValueError:
        return default
    return number if math.isfinite(number) else default


def read_state(values: Mapping[str, str], now: float, base: float) -> PollState:
    """The poll's parameters, clamped: they come from the browser."""
    interval = min(max(_number(values.get("i"), base), MIN_INTERVAL), MAX_INTERVAL)
    changed_at = int(min(max(_number(values.get("t"), now), now - 86400 * 7), now))
    version = values.get("v") or None
    mode = values.get("m", "")
    return PollState(
        version=version[:32] if version else None,
        interval=interval,
        changed_at=changed_at,
        hinted="i" in values,
        mode=mode if mode in ("h", "s") else "",
        cut=values.get("cut") == "1",
        now=values.get("now") == "1",
    )


def poller_context(
    *, interval: float, changed_at: int, hold: float = 0.0, fallback: bool = False
) -> dict[str, object]:
    """The poller template's interval and last-change time; with `hold`, a held poller
    (its own fallback trigger fires `hold + BACKUP_MARGIN` seconds after it came); with
    `fallback`, a short poller the page keeps (a proxy cut its held polls)."""
    context: dict[str, object] = {
        "poll_interval": format_seconds(interval),
        "poll_changed": changed_at,
        "poll_fallback": fallback,
    }
    if hold > 0:
        context.update(poll_hold=True, poll_backup=format_seconds(math.ceil(hold + BACKUP_MARGIN)))
    return context


def active_poller(now: float, base: float, hold: float = 0.0) -> dict[str, object]:
    """Poller context right after activity (page load, start, send): poll fast (held,
    with `hold`)."""
    return poller_context(interval=interval_for(0, base), changed_at=int(now), hold=hold)


def answer_lost(state: PollState) -> bool:
    """Whether a proxy cut this held poller's last request (widget.js says so)."""
    return state.mode == "h" and state.cut


# --- What a poll answers --------------------------------------------------------------


@dataclass(frozen=True)
class Unchanged:
    """Nothing new and the interval is still right: 204, no body."""


@dataclass(frozen=True)
class SlowerPoller:
    """Nothing new, only a new poller: idle long enough to poll less often, the end of
    a hold (the page asks again), or the switch to short polls."""

    version: str
    interval: float
    changed_at: int


@dataclass(frozen=True)
class Changes:
    """The page must show another version: the messages it lacks or shows differently
    (`delta`, positions in `messages`), or all of them when `delta` is None."""

    version: str
    interval: float
    changed_at: int
    messages: Sequence[MessageDto] = ()
    delta: Delta[int] | None = None


Answer = Unchanged | SlowerPoller | Changes


def decide(
    state: PollState, version: str | None, *, now: float, base: float, activity: bool
) -> Answer:
    """What to answer a page in `state` when the newest list is at `version` (None: no
    list yet, one is on its way). Pure: the same inputs give the same answer."""
    if version is None:
        return Unchanged()
    if version == state.version and not activity:
        wanted = interval_for(now - state.changed_at, base)
        if wanted == state.interval or not state.hinted:
            return Unchanged()
        return SlowerPoller(version=version, interval=wanted, changed_at=state.changed_at)
    # Changed, or a send: the page gets the changes and polls fast again.
    return Changes(version=version, interval=interval_for(0, base), changed_at=int(now))


def poll(
    chats: VisitorChats,
    widget: WidgetConfig,
    chat: Chat,
    state: PollState,
    *,
    now: float,
    base: float,
    activity: bool = False,
) -> Answer:
    """Answer a poll (or, with `activity`, a send): 204, a slower poller, or the changes.

    A poll takes the cached list, however old its share of the interval allows, and
    never waits on the upstream (see coalesce.py); a send waits for a fresh list.
    """
    listing = chats.message_listing(
        widget,
        chat,
        max_age=0.0 if activity else state.interval * SHARE_OF_INTERVAL,
        background=not activity,
        # A page that shows a version has a list: this worker's first poll of it (the page
        # came from another worker, or this one restarted) need not wait for one either.
        cold_ok=state.version is not None and not activity,
    )
    answer = decide(
        state, listing.version if listing else None, now=now, base=base, activity=activity
    )
    if not isinstance(answer, Changes):
        return answer
    assert listing is not None
    delta = _delta(chats, widget, chat, state, listing)
    return replace(answer, messages=listing.messages, delta=delta)


@dataclass(frozen=True)
class Transport:
    """How the page polls after this answer: held for `hold` seconds (0: short polls);
    `fallback`: short for good, its held polls got lost."""

    hold: float
    fallback: bool = False


def respond(
    chats: VisitorChats,
    widget: WidgetConfig,
    chat: Chat,
    state: PollState,
    *,
    clock: Callable[[], float],
    base: float,
    activity: bool,
    hold: float,
    limit: int,
) -> tuple[Answer, Transport]:
    """Answer a poll or (`activity`) a send, holding a held poller's request for up to
    `hold` seconds if this process holds fewer than `limit`, and how the page polls next."""
    now = clock()
    lost = not activity and answer_lost(state)
    if hold <= 0 or state.mode == "s" or lost:
        answer = poll(chats, widget, chat, state, now=now, base=base, activity=activity)
        transport = Transport(0.0, fallback=hold > 0 and (state.mode == "s" or lost))
        if lost and isinstance(answer, Unchanged):
            answer = _same_poller(state)  # the held poller must go
        elif state.mode == "h" and isinstance(answer, Unchanged):
            answer = _same_poller(state)  # held polls were switched off: poll short
        return answer, transport
    if state.mode == "h" and state.now and not activity:
        # Asked again after a failed held poll: at once, so the page knows it is back.
        answer = poll(chats, widget, chat, state, now=now, base=base, activity=False)
        return (_same_poller(state) if isinstance(answer, Unchanged) else answer), Transport(hold)
    slot = chats.core.wakeups.hold(limit) if state.mode == "h" and not activity else None
    if slot is None:
        answer = poll(chats, widget, chat, state, now=now, base=base, activity=activity)
        if state.mode == "h":
            # No room to hold it here: a short poller until the page's next change.
            short = _same_poller(state) if isinstance(answer, Unchanged) else answer
            return short, Transport(0.0)
        return answer, Transport(hold)
    with slot:
        answer = hold_poll(chats, widget, chat, state, clock=clock, base=base, seconds=hold)
        return answer, Transport(hold)


def _same_poller(state: PollState) -> SlowerPoller:
    return SlowerPoller(
        version=state.version or "", interval=state.interval, changed_at=state.changed_at
    )


# Held polls per process: a cooperative worker holds one as a greenlet (about as many as
# the worker's connections); elsewhere each is a thread of a bounded pool.
COOPERATIVE_HOLD_LIMIT = 4000
THREAD_HOLD_LIMIT = 8


def default_hold_limit() -> int:
    """How many polls this process holds at once unless WIDGET_HOLD_MAX says otherwise."""
    return COOPERATIVE_HOLD_LIMIT if is_cooperative() else THREAD_HOLD_LIMIT


def hold_poll(
    chats: VisitorChats,
    widget: WidgetConfig,
    chat: Chat,
    state: PollState,
    *,
    clock: Callable[[], float],
    base: float,
    seconds: float,
) -> Answer:
    """Answer a held poll: the changes as soon as the list differs from the page's, else
    after `seconds` only a new poller. Between checks of the list (as fresh as the
    cadence asks, one upstream call shared by every tab and instance) it waits for
    another request's newer list (wake.py) or the cadence's next check.

    An idle chat's checks are optional (call_slots.py): when the worker's upstream calls
    are at their bound, such a check is skipped and the poll waits for its next turn, so
    idle held polls never crowd out a start, a send or a chat whose reply is due."""
    key = listing_key(widget, chat)
    wakeups = chats.core.wakeups
    deadline = time.monotonic() + seconds
    # The first check wants a list as fresh as the fastest cadence: a reply may be due.
    cadence = upstream_cadence(clock() - state.changed_at, True, base)
    expecting = True
    while True:
        mark = wakeups.mark(key)
        try:
            with optional_calls() if cadence >= IDLE_CADENCE else nullcontext():
                listing = chats.message_listing(widget, chat, max_age=cadence * SHARE_OF_INTERVAL)
        except CallSkipped:
            listing = None  # no check this turn: as if unchanged
        now = clock()
        if listing is not None and listing.version != state.version:
            return _changes(chats, widget, chat, state, listing, now=now, base=base)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or wakeups.closed():
            idle = now - state.changed_at
            return SlowerPoller(
                version=listing.version if listing is not None else state.version or "",
                interval=interval_for(idle, base),
                changed_at=state.changed_at,
            )
        if listing is not None:
            expecting = expecting_reply(listing)
        cadence = upstream_cadence(now - state.changed_at, expecting, base)
        wakeups.wait(key, mark, min(cadence, remaining))


def _changes(
    chats: VisitorChats, widget: WidgetConfig, chat: Chat, state: PollState, listing: Listing,
    *, now: float, base: float,
) -> Changes:
    return Changes(
        version=listing.version,
        interval=interval_for(0, base),
        changed_at=int(now),
        messages=listing.messages,
        delta=_delta(chats, widget, chat, state, listing),
    )


def _delta(
    chats: VisitorChats, widget: WidgetConfig, chat: Chat, state: PollState, listing: Listing
) -> Delta[int] | None:
    """The page's delta to `listing` from the version it shows; `listing` is remembered
    for the page's next one."""
    chats.core.remember(widget, chat, listing)
    base_states = chats.core.recall(widget, chat, state.version) if state.version else None
    return compute_delta(base_states, range(len(listing.messages)), listing.states)
