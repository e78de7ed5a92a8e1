"""Shared state in one process's memory: for a single process, and for unit tests."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

# Expired entries go on every Nth write: no timer thread, and no full scan per write.
PURGE_EVERY = 256


class MemoryState:
    """A dict of (value, expires_at) behind a lock, timed by `clock`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float]] = {}
        self._writes = itertools.count(1)

    def _live(self, key: str, now: float) -> str | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def _put(self, key: str, value: str, until: float, now: float) -> None:
        self._entries[key] = (value, until)
        if next(self._writes) % PURGE_EVERY == 0:
            for stale in [k for k, (_, at) in self._entries.items() if at <= now]:
                del self._entries[stale]

    def get(self, key: str) -> str | None:
        """The key's value, None when absent or expired."""
        with self._lock:
            return self._live(key, self.clock())

    def get_many(self, keys: list[str]) -> list[str | None]:
        """Each key's value, None when absent or expired."""
        now = self.clock()
        with self._lock:
            return [self._live(key, now) for key in keys]

    def set(self, key: str, value: str, ttl: float) -> None:
        """Store `value` for `ttl` seconds."""
        now = self.clock()
        with self._lock:
            self._put(key, value, now + ttl, now)

    def add(self, key: str, value: str, ttl: float) -> bool:
        """Store `value` unless the key is there; whether it was stored."""
        now = self.clock()
        with self._lock:
            if self._live(key, now) is not None:
                return False
            self._put(key, value, now + ttl, now)
            return True

    def incr(self, key: str, ttl: float) -> int:
        """The counter plus one, kept `ttl` seconds from now."""
        now = self.clock()
        with self._lock:
            count = int(self._live(key, now) or 0) + 1
            self._put(key, str(count), now + ttl, now)
            return count

    def delete_if_equal(self, key: str, value: str) -> bool:
        """Delete the key while it holds `value`."""
        with self._lock:
            if self._live(key, self.clock()) != value:
                return False
            del self._entries[key]
            return True
