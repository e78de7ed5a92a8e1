"""Wake held polls when their conversation's list changes (issue 21).

A held poll (polling.hold) waits on its conversation's key here between its checks of
the list. When a worker stores a list of another version (coalesce.py), `notify` wakes
that key's held polls in this process at once and, when the session store is Redis,
publishes the key so that every other worker and instance wakes its own. A poll takes a
`mark` before it reads the list and waits for a change after that mark, so a change in
between is never missed.

On SIGTERM (`release_on_exit`, from gunicorn's post_worker_init) every held poll is
released at once, so a graceful shutdown does not wait out the holds; `release_all` does
the same for one app (its in-process server stops). The held polls are counted per app
(`Wakeups.hold`), so that several apps in one process (tests, the demo) hold their own.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: gunicorn's master imports this module early
    import redis

log = logging.getLogger(__name__)

CHANNEL = "ww:changed"
# How long the listener waits before it subscribes again after losing Redis.
RESUBSCRIBE_SECONDS = 1.0
MAX_RESUBSCRIBE_SECONDS = 30.0
_closing = threading.Event()


class _Key:
    """One conversation's change counter and the condition its held polls wait on."""

    def __init__(self, lock: threading.Lock) -> None:
        self.changes = 0
        self.waiters = 0
        self.condition = threading.Condition(lock)


class Wakeups:
    """Change counters per conversation key, in-process, optionally fed by Redis pub/sub."""

    def __init__(
        self,
        redis_client: redis.Redis | None = None,
        subscriber: Callable[[], redis.Redis] | None = None,
    ) -> None:
        # `subscriber` makes the client that listens: one without a read timeout (a quiet
        # channel is no error), unlike the request path's client, which publishes.
        self.redis = redis_client
        self._subscriber = subscriber
        self._lock = threading.Lock()
        self._keys: dict[str, _Key] = {}
        self._listener: threading.Thread | None = None
        self._closed = threading.Event()
        self._held = 0
        _registry.add(self)

    @classmethod
    def for_store(
        cls, redis_client: redis.Redis | None = None, store_url: str | None = None
    ) -> Wakeups:
        """Wakeups that publish with `redis_client` (the app's shared one) and listen on a
        client of their own for `store_url`; in-process only without Redis."""
        if redis_client is None or not store_url:
            return cls(redis_client)
        import redis

        url = store_url
        return cls(redis_client, lambda: redis.Redis.from_url(url))

    @property
    def held(self) -> int:
        """Polls held now."""
        return self._held

    def closed(self) -> bool:
        """Whether held polls must answer at once (the app's server or the process stops)."""
        return self._closed.is_set() or _closing.is_set()

    def hold(self, limit: int) -> AbstractContextManager[None] | None:
        """A context for one held poll, or None when `limit` are held already."""
        with self._lock:
            if self._held >= limit:
                return None
            self._held += 1
        return self._release_slot()

    @contextmanager
    def _release_slot(self) -> Iterator[None]:
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1

    def mark(self, key: str) -> int:
        """The key's change count now: pass it to `wait`."""
        with self._lock:
            entry = self._keys.get(key)
            return entry.changes if entry is not None else 0

    def wait(self, key: str, mark: int, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a change of `key` after `mark`; whether one came
        (or the process is shutting down)."""
        self._ensure_listener()
        with self._lock:
            entry = self._keys.get(key)
            if entry is None:
                entry = self._keys[key] = _Key(self._lock)
            if entry.changes != mark or self.closed():
                return True
            entry.waiters += 1
            try:
                entry.condition.wait_for(lambda: entry.changes != mark or self.closed(), timeout)
                return entry.changes != mark or self.closed()
            finally:
                entry.waiters -= 1
                if entry.waiters == 0:
                    # Nobody waits: the count need not survive (a mark of 0 is taken anew).
                    self._keys.pop(key, None)

    def notify(self, key: str, *, publish: bool = True) -> None:
        """`key`'s list changed: wake its held polls here and, with Redis, everywhere."""
        self._notify_local(key)
        if publish and self.redis is not None:
            try:
                self.redis.publish(CHANNEL, key)
            except Exception as error:  # waking is best effort: the polls' own checks remain
                log.warning("could not publish a change: %s", type(error).__name__)

    def release_all(self, *, close: bool = False) -> None:
        """Wake every held poll (shutdown); with `close`, later ones answer at once too."""
        if close:
            self._closed.set()
        with self._lock:
            for entry in self._keys.values():
                entry.condition.notify_all()

    def resync(self) -> None:
        """Wake every held poll to check its list again: changes published while this
        process was not yet (or no longer) subscribed did not reach it."""
        with self._lock:
            for entry in self._keys.values():
                entry.changes += 1
                entry.condition.notify_all()

    def _notify_local(self, key: str) -> None:
        with self._lock:
            entry = self._keys.get(key)
            if entry is not None:
                entry.changes += 1
                entry.condition.notify_all()

    def _ensure_listener(self) -> None:
        """Subscribe to other processes' changes, once per process (after gunicorn forks)."""
        if self._subscriber is None or self._listener is not None:
            return
        with self._lock:
            if self._listener is not None:
                return
            self._listener = threading.Thread(
                target=self._listen, name="ww-wakeups", daemon=True
            )
        self._listener.start()

    def _listen(self) -> None:
        assert self._subscriber is not None  # _ensure_listener starts none without one
        client = self._subscriber()
        pause = RESUBSCRIBE_SECONDS
        while not self.closed():
            try:
                pubsub = client.pubsub()
                pubsub.subscribe(CHANNEL)
                pause = RESUBSCRIBE_SECONDS
                # redis-py leaves PubSub.listen untyped: each message is a dict.
                for message in pubsub.listen():  # type: ignore[no-untyped-call]
                    if message.get("type") == "subscribe":
                        self.resync()  # subscribed (again) from here on
                        continue
                    data = message.get("data")
                    if message.get("type") == "message" and isinstance(data, bytes):
                        self._notify_local(data.decode())
            except Exception as error:  # Redis away: held polls still check on their own
                if pause == RESUBSCRIBE_SECONDS:
                    log.info("change listener reconnecting: %s", type(error).__name__)
                time.sleep(pause)
                pause = min(pause * 2, MAX_RESUBSCRIBE_SECONDS)


def release_on_exit() -> None:
    """On SIGTERM, release every held poll at once, then let the previous handler (gunicorn's
    graceful exit) run. Call from the worker's main thread."""
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: FrameType | None) -> None:
        _closing.set()
        for wakeups in list(_registry):
            wakeups.release_all()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)


# Every app's wakeups in this process, for the SIGTERM handler.
_registry: weakref.WeakSet[Wakeups] = weakref.WeakSet()
