"""One process at a time through the set-up of a file that several processes share.

gunicorn forks its workers at once and each builds the app: each switches the same
fresh SQLite file to WAL and creates its tables, and each reads or writes the demo's
signing key. SQLite answers `PRAGMA journal_mode=WAL` with "database is locked" at
once, without waiting out its busy timeout, when another process is doing the same, and
a key file can be read between its creation and its first byte. An advisory lock on a
sibling file makes that set-up one process after the other; it costs one lock per boot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows has no fcntl; there the demo runs as one process anyway.
    fcntl = None  # type: ignore[assignment]


@contextmanager
def startup_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on `<path>.lock` (created if missing) while the block runs."""
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        if fcntl is not None:
            # Blocks until the holder is done; the kernel releases it if the holder dies.
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
