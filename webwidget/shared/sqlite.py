"""Shared state in a SQLite file: every worker on the file shares it.

One table beside the sessions; each operation is one statement (SQLite runs each
atomically), so concurrent workers cannot both add the same key.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..sqlite_connections import ThreadConnections
from ..startup_lock import startup_lock
from .interface import SharedStateUnavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS shared_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shared_state_expires_at ON shared_state (expires_at);
"""
# Expired rows go on every Nth write: no timer thread needed.
PURGE_EVERY = 500


class SQLiteState:
    """Key-value rows with an expiry time in one table, timed by `clock`."""

    def __init__(
        self, connections: ThreadConnections, clock: Callable[[], float] = time.time
    ) -> None:
        self.connections = connections
        self.clock = clock
        self._writes = itertools.count(1)
        # Workers boot together; their set-up of the shared file goes one at a time.
        with startup_lock(connections.path), self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self.connections.get()
        except sqlite3.Error as error:
            # A broken connection is never reused: the state heals when the file does.
            self.connections.forget()
            raise SharedStateUnavailable(f"SQLite shared state: {error}") from error

    def _written(self, conn: sqlite3.Connection, now: float) -> None:
        if next(self._writes) % PURGE_EVERY == 0:
            conn.execute("DELETE FROM shared_state WHERE expires_at <= ?", (now,))

    def get(self, key: str) -> str | None:
        """The key's value, None when absent or expired."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT value FROM shared_state WHERE key = ? AND expires_at > ?",
                (key, self.clock()),
            ).fetchone()
        return row[0] if row else None

    def get_many(self, keys: list[str]) -> list[str | None]:
        """Each key's value, None when absent or expired (one statement: one snapshot)."""
        marks = ", ".join("?" * len(keys))
        with self._connection() as conn:
            found = dict(
                conn.execute(
                    f"SELECT key, value FROM shared_state WHERE key IN ({marks}) "
                    "AND expires_at > ?",
                    (*keys, self.clock()),
                ).fetchall()
            )
        return [found.get(key) for key in keys]

    def set(self, key: str, value: str, ttl: float) -> None:
        """Store `value` for `ttl` seconds."""
        now = self.clock()
        with self._connection() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO shared_state (key, value, expires_at) VALUES (?, ?, ?)",
                (key, value, now + ttl),
            )
            self._written(conn, now)

    def add(self, key: str, value: str, ttl: float) -> bool:
        """Store `value` unless the key is there; whether it was stored."""
        now = self.clock()
        with self._connection() as conn:
            # An expired row counts as absent: it is replaced, a live one is left alone.
            changed = conn.execute(
                "INSERT INTO shared_state (key, value, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                "expires_at = excluded.expires_at WHERE shared_state.expires_at <= ?",
                (key, value, now + ttl, now),
            ).rowcount
            self._written(conn, now)
        return changed == 1

    def incr(self, key: str, ttl: float) -> int:
        """The counter plus one, kept `ttl` seconds from now."""
        now = self.clock()
        with self._connection() as conn:
            (count,) = conn.execute(
                "INSERT INTO shared_state (key, value, expires_at) VALUES (?, '1', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = CASE "
                "WHEN shared_state.expires_at <= ? THEN '1' "
                "ELSE CAST(CAST(shared_state.value AS INTEGER) + 1 AS TEXT) END, "
                "expires_at = excluded.expires_at RETURNING value",
                (key, now + ttl, now),
            ).fetchone()
            self._written(conn, now)
        return int(count)

    def delete_if_equal(self, key: str, value: str) -> bool:
        """Delete the key while it holds `value`."""
        with self._connection() as conn:
            deleted = conn.execute(
                "DELETE FROM shared_state WHERE key = ? AND value = ? AND expires_at > ?",
                (key, value, self.clock()),
            ).rowcount
        return deleted == 1


def make_private(path: Path) -> None:
    """The database file for its owner alone (0600), created so if missing: it holds every
    visitor's widget token. SQLite gives its -wal and -shm files the database's mode."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        # An older release left 0644 files: tighten them (not ours to change: left alone).
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)
