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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from . import conversation as chats
from .chatcaptain.models import MessageDto
from .coalesce import Listing, get_coalescer
from .widgets import WidgetConfig

T = TypeVar("T")

# Idle seconds -> multiple of WIDGET_POLL_SECONDS: fast right after a change, slower when idle.
SCHEDULE = ((0, 0.5), (20, 1.0), (60, 2.0), (180, 5.0))
MIN_INTERVAL = 1.0
MAX_INTERVAL = 60.0
# A cached list may be this share of the poller's interval old: a lone tab still gets
# a fresh list on every poll, while more tabs share one upstream call per interval.
SHARE_OF_INTERVAL = 0.9


def interval_for(idle_seconds: float, base: float) -> float:
    """The poll interval after `idle_seconds` without a change, rounded to half seconds."""
    factor = SCHEDULE[0][1]
    for after, multiple in SCHEDULE:
        if idle_seconds >= after:
            factor = multiple
    value = min(max(base * factor, MIN_INTERVAL), MAX_INTERVAL)
    return math.ceil(value * 2) / 2


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
    return PollState(
        version=version[:32] if version else None,
        interval=interval,
        changed_at=changed_at,
        hinted="i" in values,
    )


def poller_context(*, interval: float, changed_at: int) -> dict[str, object]:
    """The poller template's interval and last-change time."""
    return {"poll_interval": format_seconds(interval), "poll_changed": changed_at}


def active_poller(now: float, base: float) -> dict[str, object]:
    """Poller context right after activity (page load, start, send): poll fast."""
    return poller_context(interval=interval_for(0, base), changed_at=int(now))


# --- What a poll answers --------------------------------------------------------------


@dataclass(frozen=True)
class Unchanged:
    """Nothing new and the interval is still right: 204, no body."""


@dataclass(frozen=True)
class SlowerPoller:
    """Nothing new, but idle long enough to poll less often: only a new poller."""

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


def remember(widget: WidgetConfig, chat: chats.Chat, listing: Listing) -> None:
    """Keep what `listing`'s version shows, so the page's next changed poll can get a delta."""
    key = chats.listing_key(widget, chat)
    get_coalescer().remember_states(key, listing.version, listing.states)


def poll(
    widget: WidgetConfig,
    chat: chats.Chat,
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
    remember(widget, chat, listing)
    key = chats.listing_key(widget, chat)
    base_states = get_coalescer().recall_states(key, state.version) if state.version else None
    delta = compute_delta(base_states, range(len(listing.messages)), listing.states)
    return replace(answer, messages=listing.messages, delta=delta)
