"""Widget-token renewal: at most one upstream renewal per expired token, for every tab,
worker and instance.

The contract's only way to trade an expired widget token for a new one is
`create conversation` (its `newWebToken`), which also leaves an empty conversation
upstream. Several tabs, workers or instances that meet the same expired token at once
would each make that call. Here the first takes a short lease on the expired token, makes
the one call and publishes the new token; the others wait for it and adopt it.

Keys are a digest of (chatbot, contact, expired token): never a token, and only a holder
of the expired token can find the new one. Leases and results live in the app's shared
state (shared/: Redis when the sessions are there, else their SQLite file).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable

from .chatcaptain.errors import UpstreamTimeout
from .shared import SharedState, SharedStateUnavailable

log = logging.getLogger(__name__)

KEY_PREFIX = "ww:renew:"
# Longer than the upstream deadline, so a lease outlives the call it guards; a holder
# that died frees it after this.
LEASE_SECONDS = 15.0
# How long a renewed token is handed to requests that still hold the expired one: longer
# than any request that loaded the session before the renewal was written.
RESULT_SECONDS = 300.0
WAIT_STEP = 0.02


def renewal_key(chatbot_id: str, contact_id: str, expired_token: str) -> str:
    """The lease and result key for one expired token (a digest)."""
    material = f"{chatbot_id}\x1f{contact_id}\x1f{expired_token}".encode()
    return KEY_PREFIX + hashlib.sha256(material).hexdigest()[:40]


class Renewals:
    """Single-flight renewal over shared state: a lease under `<key>:lease`, the renewed
    token under `<key>:token`."""

    def __init__(
        self,
        state: SharedState,
        *,
        wait_seconds: float = LEASE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        pause: Callable[[float], None] = time.sleep,
        observe: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self.state = state
        self.wait_seconds = wait_seconds
        self._monotonic = monotonic
        self._pause = pause
        # Told each outcome (renewed, shared, failed): the app counts them in /metrics.
        self.observe = observe

    def renew_once(self, key: str, renew: Callable[[], str]) -> str:
        """The new token for `key`: renewed here if nobody else is, else the other's result."""
        holder = uuid.uuid4().hex
        deadline = self._monotonic() + self.wait_seconds
        while True:
            try:
                token = self.state.get(key + ":token")
                # Waiters only read while the lease is held: on SQLite a write per wait step
                # from every waiter kept the holder's publish from the file's write lock.
                leased = (
                    token is None
                    and self.state.get(key + ":lease") is None
                    and self.state.add(key + ":lease", holder, LEASE_SECONDS)
                )
            except SharedStateUnavailable as error:
                # Without the shared place the visitor still gets a renewed token.
                log.warning("token renewal not coordinated: %s", error)
                return self._renew_counted(renew)
            if leased:
                return self._renew_holding(key, holder, renew)
            if token is not None:
                self.observe("shared")
                return token
            if self._monotonic() > deadline:
                self.observe("failed")
                raise UpstreamTimeout("another request's token renewal did not finish")
            # Another tab, worker or instance is renewing: its call takes one round trip.
            self._pause(WAIT_STEP)

    def _renew_counted(self, renew: Callable[[], str]) -> str:
        try:
            token = renew()
        except BaseException:
            self.observe("failed")
            raise
        self.observe("renewed")
        return token

    def _renew_holding(self, key: str, holder: str, renew: Callable[[], str]) -> str:
        try:
            token = self._renew_counted(renew)
        except BaseException:
            # A waiter may try now, rather than after the lease runs out.
            self._quietly(lambda: self.state.delete_if_equal(key + ":lease", holder))
            raise
        # The lease is left to run out: a request that found no token just before this one
        # was published must not find the lease free either, or it would renew again.
        if not self._quietly(lambda: self.state.set(key + ":token", token, RESULT_SECONDS)):
            # Unpublished: rather a waiter's own renewal than its wait for the whole lease.
            self._quietly(lambda: self.state.delete_if_equal(key + ":lease", holder))
        return token

    @staticmethod
    def _quietly(call: Callable[[], object]) -> bool:
        try:
            call()
        except SharedStateUnavailable as error:
            log.warning("token renewal not shared: %s", error)
            return False
        return True
