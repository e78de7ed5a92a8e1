"""The app's chat core, wired to the app's upstream client, shared state, clock,
metrics and logs; and this request's visitor's chats (the core, given their session)."""

from __future__ import annotations

from flask import Flask, current_app

from ..clock import get_clock
from ..coalesce import Coalescer, Refresher
from ..conversation import ChatCore, Upstream, VisitorChats
from ..ops import logs, metrics
from ..renewal import Renewals
from ..sessions import get_store, visitor_session
from ..settings import Settings
from ..shared import Shared
from ..wake import Wakeups

EXTENSION = "webwidget.chats"
# sandbox/server.py's STOP_HOOKS, by its value: importing it would load the whole sandbox
# into every worker. Served in-process (tests, the demo), the server calls these on stop.
STOP_HOOKS = "background_server.on_stop"


def init_app(app: Flask, settings: Settings, shared: Shared, client: Upstream) -> ChatCore:
    """Build `app`'s chat core: renewals and lists shared through `shared`, held polls
    woken across workers and instances through its Redis (if any)."""
    wakeups = Wakeups.for_store(shared.redis, shared.url)
    # Stopping the in-process server ends the held polls.
    app.extensions.setdefault(STOP_HOOKS, []).append(lambda: wakeups.release_all(close=True))
    refresher = None
    if settings.UPSTREAM_REFRESH_CALLS > 0:
        refresher = Refresher(
            settings.UPSTREAM_REFRESH_CALLS,
            dropped=metrics.refresh_dropped_counter(app),
            carry=lambda job: logs.asked_by_this_request("refresh", job),
        )
    clock = get_clock(app)
    core = ChatCore(
        client=client,
        coalescer=Coalescer(
            shared.lists, clock=clock, refresher=refresher, on_change=wakeups.notify
        ),
        renewals=Renewals(shared.state, observe=metrics.renewal_observer(app)),
        wakeups=wakeups,
        clock=clock,
        messages_shown=settings.WIDGET_MESSAGES_SHOWN,
        check_store=get_store(app).probe_write,
    )
    app.extensions[EXTENSION] = core
    return core


def core_of(app: Flask) -> ChatCore:
    """`app`'s chat core."""
    core: ChatCore = app.extensions[EXTENSION]
    return core


def chat_core() -> ChatCore:
    """The current app's chat core."""
    core: ChatCore = current_app.extensions[EXTENSION]
    return core


def visitor_chats() -> VisitorChats:
    """The chats kept in this request's session."""
    return chat_core().for_visitor(visitor_session())
