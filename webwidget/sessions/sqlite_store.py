"""SQLite session store: the single-instance default, one row per session."""

from __future__ import annotations

import itertools
import json
import secrets
import sqlite3
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..shared.sqlite import make_private
from ..sqlite_connections import ThreadConnections
from ..startup_lock import startup_lock
from .errors import CorruptSessionRecord, SessionStoreUnavailable
from .store import SessionRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""


class SQLiteSessionStore:
    """Sessions in a SQLite file (WAL); merges run under BEGIN IMMEDIATE."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        purge_every: int = 200,
        connections: ThreadConnections | None = None,
    ):
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._purge_every = purge_every
        # Purging on every Nth write keeps the table small without a timer thread.
        self._writes = itertools.count(1)
        # The app's one pool on the shared file (shared/), else one of the store's own.
        self._connections = connections or ThreadConnections(self.path, self._busy_timeout)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            make_private(self.path)
            # Workers booting together on a fresh file would fail the WAL switch at random.
            with startup_lock(self.path), self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
        except OSError as exc:
            raise SessionStoreUnavailable(f"cannot create {self.path}: {exc}") from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread and process: opening one per operation cost about as
        # much as the query itself on every poll, and a connection never crosses a fork.
        try:
            yield self._connection()
        except sqlite3.Error as exc:
            self._forget_connection()
            raise SessionStoreUnavailable(f"SQLite session store: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        return self._connections.get()

    def _forget_connection(self) -> None:
        self._connections.forget()

    def load(self, sid: str) -> SessionRecord | None:
        """The record for sid, None if absent; CorruptSessionRecord if unreadable."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT data, created_at, last_seen FROM sessions WHERE id = ?", (sid,)
            ).fetchone()
        if row is None:
            return None
        return SessionRecord(created_at=row[1], last_seen=row[2], data=_decode(row[0]))

    def save(
        self,
        sid: str,
        *,
        changed: Mapping[str, str],
        deleted: Collection[str],
        created_at: float,
        last_seen: float,
        expires_at: float,
        create_with: Mapping[str, str] | None = None,
        previous_sid: str | None = None,
    ) -> bool:
        """Atomically merge changes into sid's record; False if it is gone and not created."""
        with self._connect() as conn:
            # IMMEDIATE takes the write lock before reading, so two merges cannot interleave.
            conn.execute("BEGIN IMMEDIATE")
            try:
                written = self._merge(
                    conn,
                    sid,
                    changed,
                    deleted,
                    created_at,
                    last_seen,
                    expires_at,
                    create_with,
                    previous_sid,
                )
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            if next(self._writes) % self._purge_every == 0:
                # last_seen is "now" on the interface's clock, which set every expires_at.
                conn.execute("DELETE FROM sessions WHERE expires_at < ?", (last_seen,))
        return written

    def _merge(
        self,
        conn: sqlite3.Connection,
        sid: str,
        changed: Mapping[str, str],
        deleted: Collection[str],
        created_at: float,
        last_seen: float,
        expires_at: float,
        create_with: Mapping[str, str] | None,
        previous_sid: str | None,
    ) -> bool:
        if previous_sid is not None:
            conn.execute("UPDATE sessions SET id = ? WHERE id = ?", (sid, previous_sid))
        row = conn.execute("SELECT data FROM sessions WHERE id = ?", (sid,)).fetchone()
        if row is None:
            if create_with is None:
                return False
            data = {key: json.loads(text) for key, text in create_with.items()}
            conn.execute(
                "INSERT INTO sessions (id, data, created_at, last_seen, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (sid, json.dumps(data), created_at, last_seen, expires_at),
            )
            return True
        try:
            data = _decode(row[0])
        except CorruptSessionRecord:
            # A merge onto garbage would keep the garbage; start the record over instead.
            data = {}
        for key in deleted:
            data.pop(key, None)
        data.update((key, json.loads(text)) for key, text in changed.items())
        conn.execute(
            "UPDATE sessions SET data = ?, last_seen = ?, expires_at = ? WHERE id = ?",
            (json.dumps(data), last_seen, expires_at, sid),
        )
        return True

    def delete(self, sid: str) -> None:
        """Remove sid's record if present."""
        with self._connect() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (sid,))

    def purge_expired(self, now: float | None = None) -> int:
        """Delete records past their expiry; returns how many went."""
        with self._connect() as conn:
            cur = conn.execute(
                "DELETE FROM sessions WHERE expires_at < ?", (time.time() if now is None else now,)
            )
            return cur.rowcount

    def count_active(self) -> int:
        """How many sessions have not expired."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM sessions WHERE expires_at >= ?", (time.time(),)
            ).fetchone()
        return int(row[0])

    def ping(self) -> None:
        """Raise SessionStoreUnavailable unless the database answers."""
        with self._connect() as conn:
            conn.execute("SELECT 1 FROM sessions LIMIT 1").fetchall()

    def probe_write(self) -> None:
        """Commit one small write, so a full disk or a read-only file shows now."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO store_meta (key, value) VALUES ('probe', ?)",
                    (repr(time.time()),),
                )
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    def store_id(self) -> str:
        """This file's identity, made by whichever process asks first."""
        with self._connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO store_meta (key, value) VALUES ('store_id', ?)",
                (secrets.token_urlsafe(12),),
            )
            row = conn.execute("SELECT value FROM store_meta WHERE key = 'store_id'").fetchone()
        return str(row[0])

    def close(self) -> None:
        """Close the calling thread's connection (others close with their threads)."""
        self._forget_connection()


def _rollback(conn: sqlite3.Connection) -> None:
    # A COMMIT that failed for a full disk has rolled back already: a second ROLLBACK
    # would raise "cannot rollback" and hide the real cause from the log.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _decode(text: Any) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise CorruptSessionRecord("session data is not JSON") from exc
    if not isinstance(data, dict):
        raise CorruptSessionRecord("session data is not a JSON object")
    return data
