"""The SQLite rate-limit counters heal with their file: a connection that failed is
dropped, not kept, so a worker thread that met a read-only file (and opened its
connection read-only) counts again once the file is writable, without a restart."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

from test_health import read_only

from webwidget.shared.limit_storage import SQLiteLimitStorage, storage_uri


def test_the_limit_storage_heals_when_its_file_does(tmp_path):
    database = tmp_path / "sessions.sqlite3"
    storage = SQLiteLimitStorage(storage_uri(database))
    # One long-lived request thread, as a gunicorn worker's pool has.
    thread = ThreadPoolExecutor(max_workers=1)

    def hit() -> str:
        try:
            return "counted" if storage.acquire_entry("ip:203.0.113.9", 100, 60) else "full"
        except sqlite3.Error as error:
            return f"failed: {error}"

    with read_only(database):
        # The thread's first connection opens the file read-only.
        assert thread.submit(hit).result() == "failed: attempt to write a readonly database"
        assert thread.submit(hit).result().startswith("failed")
    assert [thread.submit(hit).result() for _ in range(2)] == ["counted", "counted"]
    thread.shutdown()
