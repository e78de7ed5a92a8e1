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
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import current_app, render_template, request
from flask_babel import get_locale

from . import clock, coalesce
from . import conversation as chats
from .chatcaptain.models import MessageDto
from .coalesce import get_coalescer
from .rendering import build_message_views
from .upstream import get_client
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


def message_states(messages: Sequence[MessageDto]) -> list[list[str]]:
    """[id, digest] of each message: what may change once shown (content, status, grouping).

    The same content-aware digest as the list's version (see `coalesce.message_states`),
    worked out from the upstream messages alone, so a poll builds view models only for
    the messages its delta sends.
    """
    return coalesce.message_states(list(messages))


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


@dataclass
class PollState:
    """What the poller's URL says about the page."""

    version: str | None
    interval: float
    changed_at: int


def _number(value: str | None, default: float) -> float:
    try:
        number = float(value) if value is not None else default
    except ValueError:
        return default
    return number if math.isfinite(number) else default


def read_state(now: float) -> PollState:
    """The poll's parameters, clamped: they come from the browser."""
    base = current_app.config["WEBWIDGET_SETTINGS"].WIDGET_POLL_SECONDS
    # A poll is a GET: its query string alone (request.values would also parse a body).
    values = request.args if request.method == "GET" else request.values
    interval = min(max(_number(values.get("i"), base), MIN_INTERVAL), MAX_INTERVAL)
    changed_at = int(min(max(_number(values.get("t"), now), now - 86400 * 7), now))
    version = values.get("v") or None
    return PollState(
        version=version[:32] if version else None, interval=interval, changed_at=changed_at
    )


def poller_context(*, interval: float, changed_at: int) -> dict[str, object]:
    """The poller template's interval and last-change time."""
    return {"poll_interval": format_seconds(interval), "poll_changed": changed_at}


def active_poller() -> dict[str, object]:
    """Poller context right after activity (page load, start, send): poll fast."""
    base = current_app.config["WEBWIDGET_SETTINGS"].WIDGET_POLL_SECONDS
    return poller_context(interval=interval_for(0, base), changed_at=int(clock.now()))


def remember(
    widget: WidgetConfig, chat: chats.Chat, version: str, messages: Sequence[MessageDto]
) -> list[list[str]]:
    """Keep what `version` shows, so the page's next changed poll can get a delta."""
    states = message_states(messages)
    get_coalescer().remember_states(chats.listing_key(widget, chat), version, states)
    return states


def poll(
    widget: WidgetConfig,
    chat: chats.Chat,
    context: Callable[[], dict[str, object]],
    *,
    activity: bool = False,
):
    """Answer a poll (or a send, with `activity`): 204, a new poller, or the changes.

    `context` makes the page context the update template shares with the page; it is
    called only when something is rendered, so an unchanged poll never pays for it.
    """
    now = clock.now()
    base = current_app.config["WEBWIDGET_SETTINGS"].WIDGET_POLL_SECONDS
    state = read_state(now)
    max_age = 0.0 if activity else state.interval * SHARE_OF_INTERVAL
    listing = chats.message_listing(
        widget,
        chat,
        max_age=max_age,
        background=not activity,
        # A page that shows a version has a list: this worker's first poll of it (the page
        # came from another worker, or this one restarted) need not wait for one either.
        cold_ok=state.version is not None and not activity,
    )
    if listing is None:
        return "", 204
    if listing.version == state.version and not activity:
        wanted = interval_for(now - state.changed_at, base)
        # A poll without `i` (an older page) keeps its interval: nothing to hint.
        if wanted == state.interval or "i" not in request.values:
            return "", 204
        # Nothing new, but idle long enough to poll less often: swap in a slower poller.
        return render_template(
            "widget/_update.html",
            poller_only=True,
            widget=widget.id,
            version=listing.version,
            **poller_context(interval=wanted, changed_at=state.changed_at),
        )
    key = chats.listing_key(widget, chat)
    states = listing.states
    get_coalescer().remember_states(key, listing.version, states)
    base_states = get_coalescer().recall_states(key, state.version) if state.version else None
    positions = compute_delta(base_states, range(len(listing.messages)), states)
    build = functools.partial(
        build_message_views,
        listing.messages,
        locale=str(get_locale()),
        can_send=get_client().supports_sending,
    )
    if positions is None:
        views, delta = build(), None
    else:
        # Only the messages the page lacks or shows differently get a view model.
        appended, replaced = build(only=positions.append), build(only=positions.replace)
        views, delta = appended + replaced, Delta(append=appended, replace=replaced)
    return render_template(
        "widget/_update.html",
        **{
            **context(),
            "messages": views,
            "delta": delta,
            "version": listing.version,
            **poller_context(interval=interval_for(0, base), changed_at=int(now)),
        },
    )
