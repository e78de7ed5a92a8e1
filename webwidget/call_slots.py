"""How many upstream calls a process has in flight, and which of them may be skipped.

Under the gevent worker nothing else bounds them: thousands of held polls each check
their conversation's list, and on a starved CPU every call in flight gets slower until
they pass the deadline, the breaker opens and every visitor gets a 503 (issue 21: 207
errors of 11,565 requests with 2,000 visitors on an overloaded machine). So an idle
chat's check is optional (`optional_calls`): while the process has `busy_at` calls in
flight or more, it is skipped (the held poll keeps waiting and checks again at its next
turn, or is woken by another request's newer list). Every other call (a start, a send,
a page, a chat whose reply is due) always goes, and counts: it is never made to wait or
fail for a slot.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .chatcaptain.errors import UpstreamUnavailable

_optional: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "optional_upstream_calls", default=False
)


class CallSkipped(UpstreamUnavailable):
    """An optional call (an idle held poll's check) not made: the process is busy. Not a
    failure of the upstream, and not one to pass on to a request that waits for a list."""

    kind = "skipped"


@contextmanager
def optional_calls() -> Iterator[None]:
    """Upstream calls made inside are skipped (CallSkipped) while the process is busy."""
    token = _optional.set(True)
    try:
        yield
    finally:
        _optional.reset(token)


def calls_are_optional() -> bool:
    """Whether upstream calls made here now may be skipped (see `optional_calls`)."""
    return _optional.get()


class CallSlots:
    """Counts the calls in flight; optional ones are skipped from `busy_at` (0: never)."""

    def __init__(self, busy_at: int, *, skipped: Callable[[str], None] = lambda op: None):
        self.busy_at = busy_at
        # Told of every optional call skipped (the app counts them in /metrics).
        self.skipped = skipped
        self._lock = threading.Lock()
        self._busy = 0

    @property
    def busy(self) -> int:
        """Calls in flight now."""
        return self._busy

    @contextmanager
    def take(self, operation: str) -> Iterator[None]:
        """Count one call of `operation` while it runs, or CallSkipped if it is optional
        and the process is busy."""
        with self._lock:
            if self.busy_at > 0 and self._busy >= self.busy_at and _optional.get():
                skip = True
            else:
                skip = False
                self._busy += 1
        if skip:
            self.skipped(operation)
            raise CallSkipped("skipped: the worker's upstream calls are busy", operation=operation)
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
