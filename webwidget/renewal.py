"""Widget-token renewal: at most one upstream renewal per expired token, for every tab,
worker and instance.

The contract's only way to trade an expired widget token for a new one is
`create conversation` (its `newWebToken`), which also leaves an empty conversation
upstream. Several tabs, workers or instances that meet the same expired token at once
would each make that call. Here the first takes a short lease on the expired token, makes
the one call and publishes the new token; the others wait for it and adopt it.

Keys are a digest of (chatbot, contact, expired token): never a token, and only a holder
of the expired token can find the new one. Leases and results live where the sessions
live: Redis (shared by instances), else the session store's SQLite file (shared by the
workers on it), else process memory.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import redis
from flask import Flask, current_app

from .chatcaptain.errors import UpstreamTimeout
from .sqlite_connections import ThreadConnections

log = logging.getLogger(__name__)

EXTENSION = "webwidget.renewal"
KEY_PREFIX = "ww:renew:"
# Longer than the upstream deadline, so a lease outlives the call it guards; a holder
# that died frees it after this.
LEASE_SECONDS = 15.0
# How long a renewed token is handed to requests that still hold the expired one: longer
# than any request that loaded the session before the renewal was written.
RESULT_SECONDS = 300.0
WAIT_STEP = 0.02
WAIT = "\x00wait"  # not a token: someone else holds the lease


def renewal_key(chatbot_id: str, contact_id: str, expired_token: str) -> str:
    """The lease and result key for one expired token (a digest)."""
    material = f"{chatbot_id}\x1f{contact_id}\x1f{expired_token}".encode()
    return KEY_PREFIX + hashlib.sha256(material).hexdigest()[:40]


class Backend(Protocol):
    """Where leases and renewed tokens are shared."""

    def result(self, key: str) -> str | None:
        """The token a finished renewal published for `key`."""

    def acquire(self, key: str, holder: str, seconds: float) -> bool:
        """Take the lease on `key` unless another live holder has it."""

    def publish(self, key: str, holder: str, token: str, seconds: float) -> None:
        """Publish the renewed token and free the lease."""

    def release(self, key: str, holder: str) -> None:
        """Free the lease after a failed renewal, so a waiter may try."""


class MemoryBackend:
    """One process only (a store without a shared place)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[str, float]] = {}
        self._results: dict[str, tuple[str, float]] = {}

    def result(self, key: str) -> str | None:
        with self._lock:
            found = self._results.get(key)
            return found[0] if found and found[1] > time.time() else None

    def acquire(self, key: str, holder: str, seconds: float) -> bool:
        now = time.time()
        with self._lock:
            for table in (self._leases, self._results):
                for stale in [k for k, (_, until) in table.items() if until <= now]:
                    del table[stale]
            if key in self._leases:
                return False
            self._leases[key] = (holder, now + seconds)
            return True

    def publish(self, key: str, holder: str, token: str, seconds: float) -> None:
        with self._lock:
            self._results[key] = (token, time.time() + seconds)
            self._leases.pop(key, None)

    def release(self, key: str, holder: str) -> None:
        with self._lock:
            if self._leases.get(key, ("",))[0] == holder:
                del self._leases[key]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS token_renewals (
    key TEXT PRIMARY KEY,
    holder TEXT,
    lease_until REAL NOT NULL,
    token TEXT,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
"""


class SQLiteBackend:
    """Leases and results in the session store's SQLite file: every worker on it shares them."""

    def __init__(self, path: str | Path, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._connections = ThreadConnections(self.path, self._busy_timeout)
        conn = self._connection()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        return self._connections.get()

    def result(self, key: str) -> str | None:
        row = (
            self._connection()
            .execute(
                "SELECT token FROM token_renewals WHERE key = ? AND token IS NOT NULL "
                "AND expires_at > ?",
                (key, time.time()),
            )
            .fetchone()
        )
        return row[0] if row else None

    def acquire(self, key: str, holder: str, seconds: float) -> bool:
        now = time.time()
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM token_renewals WHERE expires_at <= ?", (now,))
            row = conn.execute(
                "SELECT holder, lease_until, token FROM token_renewals WHERE key = ?", (key,)
            ).fetchone()
            taken = row is not None and (row[2] is not None or row[1] > now)
            if not taken:
                conn.execute(
                    "INSERT OR REPLACE INTO token_renewals VALUES (?, ?, ?, NULL, ?)",
                    (key, holder, now + seconds, now + seconds),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return not taken

    def publish(self, key: str, holder: str, token: str, seconds: float) -> None:
        now = time.time()
        self._connection().execute(
            "INSERT OR REPLACE INTO token_renewals VALUES (?, NULL, ?, ?, ?)",
            (key, now, token, now + seconds),
        )

    def release(self, key: str, holder: str) -> None:
        self._connection().execute(
            "DELETE FROM token_renewals WHERE key = ? AND holder = ? AND token IS NULL",
            (key, holder),
        )


class RedisBackend:
    """Leases and results in Redis: every instance shares them."""

    # Delete the lease only if this holder still has it.
    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end"

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._release = self._client.register_script(self._RELEASE)

    def result(self, key: str) -> str | None:
        value = self._client.get(key + ":token")
        return value.decode() if value is not None else None

    def acquire(self, key: str, holder: str, seconds: float) -> bool:
        return bool(self._client.set(key + ":lease", holder, nx=True, px=int(seconds * 1000)))

    def publish(self, key: str, holder: str, token: str, seconds: float) -> None:
        self._client.set(key + ":token", token, px=int(seconds * 1000))
        self._release(keys=[key + ":lease"], args=[holder])

    def release(self, key: str, holder: str) -> None:
        self._release(keys=[key + ":lease"], args=[holder])


class Renewals:
    """Single-flight renewal over one backend."""

    def __init__(self, backend: Backend, *, wait_seconds: float = LEASE_SECONDS) -> None:
        self.backend = backend
        self.wait_seconds = wait_seconds
        # Told each outcome (renewed, shared, failed): the factory counts them in /metrics.
        self.observe: Callable[[str], None] = lambda outcome: None

    def renew_once(self, key: str, renew: Callable[[], str]) -> str:
        """The new token for `key`: renewed here if nobody else is, else the other's result."""
        holder = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                token = self.backend.result(key)
                if token is None and not self.backend.acquire(key, holder, LEASE_SECONDS):
                    token = WAIT
            except (redis.RedisError, sqlite3.Error) as error:
                # Without the shared place the visitor still gets a renewed token.
                log.warning("token renewal not coordinated: %s", type(error).__name__)
                return self._renew_counted(renew)
            if token is None:
                return self._renew_holding(key, holder, renew)
            if token is not WAIT:
                self.observe("shared")
                return token
            if time.monotonic() > deadline:
                self.observe("failed")
                raise UpstreamTimeout("another request's token renewal did not finish")
            # Another tab, worker or instance is renewing: its call takes one round trip.
            time.sleep(WAIT_STEP)

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
            self._quietly(self.backend.release, key, holder)
            raise
        self._quietly(self.backend.publish, key, holder, token, RESULT_SECONDS)
        return token

    @staticmethod
    def _quietly(call: Callable[..., None], *args: object) -> None:
        try:
            call(*args)
        except (redis.RedisError, sqlite3.Error) as error:
            log.warning("token renewal not shared: %s", type(error).__name__)


def init_app(app: Flask, store_url: str | None, sqlite_path: str | Path | None) -> Renewals:
    """Share renewals through Redis when sessions are there, else their SQLite file."""
    if store_url and store_url.startswith(("redis://", "rediss://")):
        backend: Backend = RedisBackend(store_url)
    elif sqlite_path is not None:
        backend = SQLiteBackend(sqlite_path)
    else:
        backend = MemoryBackend()
    renewals = Renewals(backend)
    app.extensions[EXTENSION] = renewals
    return renewals


def get_renewals() -> Renewals:
    """The current app's renewals."""
    return current_app.extensions[EXTENSION]
