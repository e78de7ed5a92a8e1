"""Where the rate-limit counters live, and their SQLite storage for `limits`.

`open_limit_storage` puts them with the rest of the shared state: on its one Redis client
(`limits`' own Redis storage, given that client's connection pool) or in its SQLite file
(on its one pool of connections), unless RATE_LIMIT_STORAGE_URL names another place, or
the sessions are in SQLite while REDIS_URL names a Redis.

`limits` keeps counters in memory (one process), Redis or a few other servers; with the
default SQLite session store the counters lived in each worker's memory, so N workers
allowed N times the limit. This storage registers the `webwidget+sqlite` scheme with
`limits` (its documented way to add a backend: subclass `Storage`) and keeps one row per
hit in the session database, each check and hit in one `BEGIN IMMEDIATE` transaction, so
concurrent workers cannot both take the last slot.

Only the moving-window strategy (the one limits.py uses) and the fixed-window counters
the base class requires are implemented.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from limits.storage import MovingWindowSupport, RedisStorage, Storage, storage_from_string

from ..settings import Settings
from ..sqlite_connections import ThreadConnections
from ..startup_lock import startup_lock
from .open import BUSY_TIMEOUT, Shared

SCHEME = "webwidget+sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_limit_hits (
    key TEXT NOT NULL,
    at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_limit_hits_key_at ON rate_limit_hits (key, at);
CREATE INDEX IF NOT EXISTS rate_limit_hits_expires_at ON rate_limit_hits (expires_at);
CREATE TABLE IF NOT EXISTS rate_limit_counters (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
"""


def storage_uri(path: str | Path) -> str:
    """The `limits` storage URI for a SQLite file."""
    return f"{SCHEME}:///{Path(path).resolve()}"


def open_limit_storage(settings: Settings, shared: Shared) -> Storage:
    """The counters' storage: RATE_LIMIT_STORAGE_URL's place when set; REDIS_URL when the
    sessions are in SQLite beside a Redis; else the app's shared state."""
    elsewhere = settings.RATE_LIMIT_STORAGE_URL or (
        shared.redis is None and settings.REDIS_URL
    )
    if elsewhere:
        storage = storage_from_string(elsewhere)
        assert isinstance(storage, Storage)  # memory:// and redis[s]:// (settings.py)
        return storage
    if shared.redis is not None:
        return RedisStorage(shared.url, connection_pool=shared.redis.connection_pool)
    assert shared.sqlite is not None
    return SQLiteLimitStorage(storage_uri(shared.sqlite.path), connections=shared.sqlite)


class SQLiteLimitStorage(Storage, MovingWindowSupport):
    """Moving-window rate limits in a SQLite file (WAL), safe across processes."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(
        self,
        uri: str,
        wrap_exceptions: bool = False,
        busy_timeout: float = BUSY_TIMEOUT,
        purge_every: int = 500,
        connections: ThreadConnections | None = None,
        **options: float | str | bool,
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = connections.path if connections else Path(uri[len(f"{SCHEME}://") :])
        self._purge_every = int(purge_every)
        self._calls = itertools.count(1)
        # The app's one pool on its shared file, else (another process's URI) one of its own.
        self._connections = connections or ThreadConnections(self.path, float(busy_timeout))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Workers boot together; their set-up of the shared file goes one at a time.
        with startup_lock(self.path), self._transaction() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @property
    def base_exceptions(self) -> type[Exception]:
        """What limits treats as storage trouble (limits.py then fails open)."""
        return sqlite3.Error

    def _connection(self) -> sqlite3.Connection:
        return self._connections.get()

    @contextmanager
    def _transaction(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        try:
            if immediate:
                conn.execute("BEGIN IMMEDIATE")
            yield conn
            if immediate:
                conn.execute("COMMIT")
        except sqlite3.Error:
            # A broken connection is never reused: the next call opens a fresh one, so
            # the limits heal when the file does (it used to stay failed until a restart).
            self._connections.forget()
            raise
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _maybe_purge(self, conn: sqlite3.Connection, now: float) -> None:
        # Every Nth write drops expired rows of every key: no timer thread needed.
        if next(self._calls) % self._purge_every == 0:
            conn.execute("DELETE FROM rate_limit_hits WHERE expires_at < ?", (now,))
            conn.execute("DELETE FROM rate_limit_counters WHERE expires_at < ?", (now,))

    # Moving window: one row per hit.

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Record `amount` hits unless that would put more than `limit` in the window."""
        if amount > limit:
            return False
        now = time.time()
        with self._transaction(immediate=True) as conn:
            conn.execute(
                "DELETE FROM rate_limit_hits WHERE key = ? AND at < ?", (key, now - expiry)
            )
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM rate_limit_hits WHERE key = ?", (key,)
            ).fetchone()
            if count + amount > limit:
                return False
            conn.executemany(
                "INSERT INTO rate_limit_hits (key, at, expires_at) VALUES (?, ?, ?)",
                [(key, now, now + expiry)] * amount,
            )
            self._maybe_purge(conn, now)
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest hit in the window, hits in the window)."""
        now = time.time()
        with self._transaction() as conn:
            oldest, count = conn.execute(
                "SELECT MIN(at), COUNT(*) FROM rate_limit_hits WHERE key = ? AND at >= ?",
                (key, now - expiry),
            ).fetchone()
        return (oldest, count) if count else (now, 0)

    # Fixed-window counters: required by the base class, unused by the moving window.

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Add `amount` to the counter, starting a new window once the old one expired."""
        now = time.time()
        with self._transaction(immediate=True) as conn:
            conn.execute(
                "DELETE FROM rate_limit_counters WHERE key = ? AND expires_at <= ?", (key, now)
            )
            conn.execute(
                "INSERT INTO rate_limit_counters (key, count, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET count = count + excluded.count",
                (key, amount, now + expiry),
            )
            (count,) = conn.execute(
                "SELECT count FROM rate_limit_counters WHERE key = ?", (key,)
            ).fetchone()
            self._maybe_purge(conn, now)
        return int(count)

    def get(self, key: str) -> int:
        """The counter's value in its current window."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT count FROM rate_limit_counters WHERE key = ? AND expires_at > ?",
                (key, time.time()),
            ).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        """When the counter's window ends (now if there is none)."""
        now = time.time()
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT expires_at FROM rate_limit_counters WHERE key = ? AND expires_at > ?",
                (key, now),
            ).fetchone()
        return float(row[0]) if row else now

    def check(self) -> bool:
        """Whether the file answers."""
        try:
            with self._transaction() as conn:
                conn.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        """Forget every limit; the number of rows removed."""
        with self._transaction(immediate=True) as conn:
            removed = conn.execute("DELETE FROM rate_limit_hits").rowcount
            removed += conn.execute("DELETE FROM rate_limit_counters").rowcount
        return removed

    def clear(self, key: str) -> None:
        """Forget one limit's hits and counter."""
        with self._transaction(immediate=True) as conn:
            conn.execute("DELETE FROM rate_limit_hits WHERE key = ?", (key,))
            conn.execute("DELETE FROM rate_limit_counters WHERE key = ?", (key,))
