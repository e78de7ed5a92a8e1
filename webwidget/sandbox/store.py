"""Sandbox state in SQLite: in memory for one process, or a file shared by several.

One connection guarded by a lock keeps threads safe; ``BEGIN IMMEDIATE`` plus
SQLite's file locking keeps several processes on the same file consistent.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..startup_lock import startup_lock

SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id TEXT PRIMARY KEY, chatbot_id TEXT NOT NULL, channel_id TEXT NOT NULL,
    language TEXT NOT NULL, origin_url TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, contact_id TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, chatbot_id TEXT NOT NULL, contact_id TEXT NOT NULL,
    body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT NOT NULL,
    visible_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id, visible_at);
CREATE TABLE IF NOT EXISTS client_ids (
    conversation_id TEXT NOT NULL, client_id TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (conversation_id, client_id));
CREATE TABLE IF NOT EXISTS counters (op TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS control (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    """All sandbox state: contacts, tokens, conversations, messages and control values."""

    def __init__(self, path: str | None = None) -> None:
        self._lock = threading.RLock()
        # Autocommit mode: transactions are opened explicitly in transaction().
        self._db = sqlite3.connect(
            path or ":memory:", check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.row_factory = sqlite3.Row
        if path:
            # Demo workers share one state file and boot together: one set-up at a time.
            with startup_lock(path):
                self._db.execute("PRAGMA journal_mode=WAL")
                self._create_schema()
        else:
            self._create_schema()

    def _create_schema(self) -> None:
        with self.transaction() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, exclusive among threads and processes."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # --- contacts and tokens ------------------------------------------------------------

    def add_contact(
        self, contact_id: str, chatbot_id: str, channel_id: str, language: str,
        origin_url: str, created: float,
    ) -> None:
        """Record a new contact."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?)",
                (contact_id, chatbot_id, channel_id, language, origin_url, created),
            )

    def contact(self, contact_id: str) -> sqlite3.Row | None:
        """The contact row, or None."""
        rows = self._query("SELECT * FROM contacts WHERE id = ?", (contact_id,))
        return rows[0] if rows else None

    def add_token(self, token: str, contact_id: str, expires_at: float) -> None:
        """Issue a widget token to a contact."""
        with self.transaction() as db:
            db.execute("INSERT INTO tokens VALUES (?, ?, ?)", (token, contact_id, expires_at))

    def token(self, token: str) -> sqlite3.Row | None:
        """The token row (contact_id, expires_at), or None."""
        rows = self._query("SELECT * FROM tokens WHERE token = ?", (token,))
        return rows[0] if rows else None

    # --- conversations and messages -----------------------------------------------------

    def add_conversation(
        self, conversation_id: str, chatbot_id: str, contact_id: str, body: dict[str, Any]
    ) -> None:
        """Record a conversation with its ConversationDto body."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO conversations VALUES (?, ?, ?, ?)",
                (conversation_id, chatbot_id, contact_id, json.dumps(body)),
            )

    def conversation(self, conversation_id: str) -> sqlite3.Row | None:
        """The conversation row, or None."""
        rows = self._query("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return rows[0] if rows else None

    def add_messages(
        self, conversation_id: str, messages: list[tuple[float, dict[str, Any]]]
    ) -> None:
        """Store messages as (visible_at, body) pairs in one transaction."""
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO messages (conversation_id, visible_at, body) VALUES (?, ?, ?)",
                [(conversation_id, at, json.dumps(body)) for at, body in messages],
            )

    def add_visitor_message(
        self, conversation_id: str, at: float, body: dict[str, Any], client_id: str | None
    ) -> dict[str, Any]:
        """Store a visitor's message once per `client_id`; returns the one stored."""
        with self.transaction() as db:
            if client_id:
                row = db.execute(
                    "SELECT body FROM client_ids WHERE conversation_id = ? AND client_id = ?",
                    (conversation_id, client_id),
                ).fetchone()
                if row is not None:
                    return json.loads(row["body"])
                db.execute(
                    "INSERT INTO client_ids VALUES (?, ?, ?)",
                    (conversation_id, client_id, json.dumps(body)),
                )
            db.execute(
                "INSERT INTO messages (conversation_id, visible_at, body) VALUES (?, ?, ?)",
                (conversation_id, at, json.dumps(body)),
            )
        return body

    def messages(self, conversation_id: str, until: float) -> list[dict[str, Any]]:
        """Message bodies visible at time ``until``, in chronological order."""
        rows = self._query(
            "SELECT body FROM messages WHERE conversation_id = ? AND visible_at <= ?"
            " ORDER BY visible_at, seq",
            (conversation_id, until),
        )
        return [json.loads(row["body"]) for row in rows]

    # --- control: counters, faults, clock -------------------------------------------------

    def count(self, op: str) -> None:
        """Count one request that reached operation ``op``."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO counters VALUES (?, 1) ON CONFLICT(op) DO UPDATE SET n = n + 1",
                (op,),
            )

    def counters(self) -> dict[str, int]:
        """Request counts by operation."""
        return {row["op"]: row["n"] for row in self._query("SELECT op, n FROM counters")}

    def get_control(self, key: str) -> Any:
        """A control value (JSON-decoded), or None."""
        rows = self._query("SELECT value FROM control WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else None

    def set_control(self, key: str, value: Any, db: sqlite3.Connection | None = None) -> None:
        """Set (or with None, delete) a control value, optionally inside a transaction."""
        if db is None:
            with self.transaction() as tx:
                self.set_control(key, value, tx)
            return
        if value is None:
            db.execute("DELETE FROM control WHERE key = ?", (key,))
        else:
            db.execute(
                "INSERT INTO control VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                (key, json.dumps(value), json.dumps(value)),
            )

    def reset_control(self) -> None:
        """Clear counters, faults and the clock offset; conversations stay."""
        with self.transaction() as db:
            db.execute("DELETE FROM counters")
            db.execute("DELETE FROM control")
