"""The app's clock: wall-clock seconds, passed to create_app so tests move time, not wait.

The breaker, the list cache, the poller's idle time and the session timeouts read this
one clock. It is wall time (not monotonic) because cached lists, poll parameters and
sessions are shared between processes and with the browser.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, current_app

Clock = Callable[[], float]

EXTENSION = "webwidget.clock"


def init_app(app: Flask, clock: Clock | None = None) -> Clock:
    """Give `app` its clock (the system's wall clock unless one is injected)."""
    chosen = clock or time.time
    app.extensions[EXTENSION] = chosen
    return chosen


def get_clock(app: Flask | None = None) -> Clock:
    """The clock of `app` (the current app by default)."""
    clock: Clock = (app or current_app).extensions.get(EXTENSION, time.time)
    return clock


def now() -> float:
    """The current app's time in seconds since the epoch."""
    return get_clock()()
