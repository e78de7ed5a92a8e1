"""One SQLite connection per thread and process, for the modules that share a SQLite file."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path


class ThreadConnections:
    """Hands each thread its own connection to one file, opened on first use.

    sqlite3 connections must not cross threads, and a forked worker must not reuse its
    parent's, so a connection is kept per thread and tagged with the process id.
    Autocommit mode: callers open their own transactions (BEGIN IMMEDIATE where needed).
    """

    def __init__(self, path: str | Path, busy_timeout: float) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        """This thread's connection."""
        cached = getattr(self._local, "conn", None)
        if cached is not None and cached[0] == os.getpid():
            return cached[1]
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        # With the WAL journal, NORMAL syncs at checkpoints, not at every commit: a commit
        # survives the process dying, not the machine losing power. Every session, rate-
        # limit and renewal write waited for the disk before, and under the gevent worker
        # that wait stopped every request of the worker (a start's limit check and store
        # probe took 45 s on a busy disk, bench/lag.py --visitors).
        conn.execute("PRAGMA synchronous=NORMAL")
        self._local.conn = (os.getpid(), conn)
        return conn

    def forget(self) -> None:
        """Drop this thread's connection after an error, so the next call starts clean."""
        cached = getattr(self._local, "conn", None)
        self._local.conn = None
        if cached is not None and cached[0] == os.getpid():
            try:
                cached[1].close()
            except sqlite3.Error:
                pass
