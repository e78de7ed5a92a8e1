"""The per-app ChatCaptain client, behind a circuit breaker, observed through callbacks.

The chat core calls a `GuardedClient`: the same four operations as
`ChatCaptainClient`, but every call first asks the app's circuit breaker. After
`fail_max` upstream failures in a row the breaker opens and calls fail at once with
`CircuitOpen` (an `UpstreamUnavailable`, so a 503 with the reconnecting notice)
instead of tying up a worker thread for the whole deadline; after `reset_timeout`
(1 s by default) one probe goes through, and its success closes the breaker again: a
worker is back within about a second of the upstream, and a down upstream gets at most
one call per worker per `reset_timeout`.

Only failures of the upstream itself count: unreachable, 5xx, timeouts. An answer that
breaks the contract, a 2xx carrying `error` or a 4xx (a rejected token, bad input) may
concern one conversation alone, says the upstream is up, and resets the count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Concatenate, ParamSpec, TypeVar

from flask import Flask

from . import clock
from .breaker import Breaker, BreakerOpen
from .call_slots import CallSkipped, CallSlots
from .chatcaptain.client import ChatCaptainClient
from .chatcaptain.errors import (
    UpstreamError,
    UpstreamUnavailable,
)

EXTENSION = "webwidget.upstream"

T = TypeVar("T")
P = ParamSpec("P")


class CircuitOpen(UpstreamUnavailable):
    """The breaker is open: the upstream failed repeatedly and is not being called."""

    kind = "circuit_open"


def is_outage(error: BaseException) -> bool:
    """Whether `error` says the upstream itself is failing: unreachable, a timeout, a 5xx.

    Not an answer about one conversation: a list too large to read, a body that breaks
    the contract, a 2xx carrying `error`, a refusal. Those can come from one chat alone,
    and one chat must not open the breaker for every visitor.
    """
    return isinstance(error, UpstreamUnavailable)


Observer = Callable[[str, float, "UpstreamError | None"], None]


def guarded(
    call: Callable[Concatenate[ChatCaptainClient, P], T], *, sends: bool = False
) -> Callable[Concatenate[GuardedClient, P], T]:
    """`call`, made on the guarded client's ChatCaptainClient through its breaker (and
    reported to its observers). A send (`sends`) where the upstream takes no messages is
    no upstream call at all: no breaker, no metrics."""

    def through_breaker(self: GuardedClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if sends and not self.client.supports_sending:
            return call(self.client, *args, **kwargs)
        return self._guarded(call.__name__, lambda: call(self.client, *args, **kwargs))

    through_breaker.__doc__ = f"ChatCaptainClient.{call.__name__}, guarded."
    return through_breaker


class GuardedClient:
    """The app's ChatCaptain client behind its circuit breaker; thread-safe."""

    def __init__(
        self,
        client: ChatCaptainClient,
        *,
        fail_max: int = 5,
        reset_timeout: float = 1.0,
        observe: Observer | None = None,
        on_state: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        slots: CallSlots | None = None,
    ) -> None:
        self.client = client
        self.slots = slots or CallSlots(0)
        self.breaker = Breaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            counts=is_outage,
            clock=clock,
            on_state=on_state,
        )
        self._observe = observe

    @property
    def base_url(self) -> str:
        """The upstream API root (no query, no secret)."""
        return self.client.base_url

    @property
    def supports_sending(self) -> bool:
        """Whether the upstream can take the visitor's messages."""
        return self.client.supports_sending

    @property
    def circuit_state(self) -> str:
        """closed, open or half-open."""
        return self.breaker.state

    # ChatCaptainClient's four calls, each asking the breaker first (`guarded`).
    create_contact = guarded(ChatCaptainClient.create_contact)
    create_conversation = guarded(ChatCaptainClient.create_conversation)
    list_messages = guarded(ChatCaptainClient.list_messages)
    send_message = guarded(ChatCaptainClient.send_message, sends=True)

    def close(self) -> None:
        """Release the client's pooled connections."""
        self.client.close()

    def _guarded(self, operation: str, call: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            with self.slots.take(operation):
                result = self.breaker.call(lambda: self._attempt(call))
        except CallSkipped:
            raise  # not made: nothing to observe
        except BreakerOpen:
            error: UpstreamError = CircuitOpen("circuit open", operation=operation)
        except UpstreamError as upstream_error:
            self._report(operation, started, upstream_error)
            raise
        else:
            self._report(operation, started, None)
            return result
        # Raised outside the except block so it carries no chained traceback.
        self._report(operation, started, error)
        raise error

    def _attempt(self, call: Callable[[], T]) -> T:
        if self.breaker.probing_here:
            # The probe asks whether the upstream is back: one attempt, no retries, so a
            # down upstream gets one call per worker per reset_timeout.
            with self.client.single_attempt():
                return call()
        return call()

    def _report(self, operation: str, started: float, error: UpstreamError | None) -> None:
        if self._observe is not None:
            self._observe(operation, time.monotonic() - started, error)


def init_app(
    app: Flask,
    client: ChatCaptainClient,
    *,
    observers: Sequence[Observer] = (),
    on_state: Callable[[str], None] | None = None,
    skipped: Callable[[str], None] = lambda operation: None,
) -> GuardedClient:
    """Wrap `client` in the app's breaker and call slots, and attach it to `app`.

    `observers` hear of every upstream call, `on_state` of every breaker change and
    `skipped` of every optional call not made; the factory passes them in, so the client
    knows nothing of metrics or health.
    """
    settings = app.config.get("WEBWIDGET_SETTINGS")

    def observe(operation: str, seconds: float, error: UpstreamError | None) -> None:
        for observer in observers:
            observer(operation, seconds, error)

    guarded = GuardedClient(
        client,
        fail_max=getattr(settings, "UPSTREAM_BREAKER_FAIL_MAX", 5),
        reset_timeout=getattr(settings, "UPSTREAM_BREAKER_RESET_SECONDS", 1.0),
        observe=observe,
        on_state=on_state,
        clock=clock.get_clock(app),
        slots=CallSlots(getattr(settings, "UPSTREAM_CALLS_BUSY", 0), skipped=skipped),
    )
    app.extensions[EXTENSION] = guarded
    return guarded
