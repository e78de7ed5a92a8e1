"""A circuit breaker for the upstream: fail fast while it is down, probe once in a while.

Closed, it counts failures in a row; at `fail_max` it opens and every call fails at
once with `BreakerOpen`, until `reset_timeout` seconds have passed on its clock. Then
it is half-open: exactly one call goes through as a probe (every other call still
fails fast); the probe's success closes the breaker, its failure opens it again.

`counts(error)` says which errors are failures; any other error says the protected
service answered, so it resets the count like a success does. The lock covers only
the bookkeeping: calls run outside it, so many may be in flight at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class BreakerOpen(Exception):
    """The breaker is open (or half-open with its probe in flight): nothing was called."""


class Breaker:
    """A thread-safe circuit breaker with an injected clock (seconds, any epoch)."""

    def __init__(
        self,
        *,
        fail_max: int,
        reset_timeout: float,
        counts: Callable[[BaseException], bool] = lambda error: True,
        clock: Callable[[], float] = time.monotonic,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self.fail_max = max(1, fail_max)
        self.reset_timeout = reset_timeout
        self._counts = counts
        self._clock = clock
        self._on_state = on_state
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._here = threading.local()

    @property
    def state(self) -> str:
        """closed, open or half-open (an open breaker turns half-open on its next call)."""
        return self._state

    @property
    def probing_here(self) -> bool:
        """Whether the call running on this thread is the half-open breaker's probe."""
        return getattr(self._here, "probe", False)

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`func(*args, **kwargs)` unless the breaker is open; its outcome is recorded."""
        with self._lock:
            probe = self._admit()
        self._here.probe = probe
        try:
            result = func(*args, **kwargs)
        except BaseException as error:
            self._here.probe = False
            with self._lock:
                self._record(failed=self._counts(error), probe=probe)
            raise
        self._here.probe = False
        with self._lock:
            self._record(failed=False, probe=probe)
        return result

    # --- under the lock ------------------------------------------------------------------

    def _admit(self) -> bool:
        """Whether this call is the probe; raises BreakerOpen when it may not run."""
        if self._state == OPEN:
            if self._clock() < self._opened_at + self.reset_timeout:
                raise BreakerOpen("circuit open")
            self._enter(HALF_OPEN)
        if self._state == HALF_OPEN:
            if self._probing:
                raise BreakerOpen("circuit half-open, probe in flight")
            self._probing = True
            return True
        return False

    def _record(self, *, failed: bool, probe: bool) -> None:
        if probe:
            self._probing = False
            self._failures = 0
            if failed:
                self._open()
            else:
                self._enter(CLOSED)
        elif self._state == CLOSED:
            # Calls that began before the breaker opened do not move it once it has.
            self._failures = self._failures + 1 if failed else 0
            if self._failures >= self.fail_max:
                self._open()

    def _open(self) -> None:
        self._failures = 0
        self._opened_at = self._clock()
        self._enter(OPEN)

    def _enter(self, state: str) -> None:
        if state != self._state:
            self._state = state
            if self._on_state is not None:
                self._on_state(state)
