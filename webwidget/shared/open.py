"""`open_shared`: the one decision of where shared state lives, made once per app.

The session store's URL decides (SESSION_STORE_URL, which REDIS_URL fills when unset;
else a SQLite file in the instance folder): redis[s]:// gives one Redis client for
everything shared, sqlite:///<path> one pool of per-thread connections to that file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ..sqlite_connections import ThreadConnections
from .interface import SharedState, SharedStateUnavailable
from .redis import RedisState
from .sqlite import SQLiteState, make_private

# Where create_app keeps the app's `Shared`.
EXTENSION = "webwidget.shared"
DEFAULT_FILE = "sessions.sqlite3"
REDIS_SCHEMES = ("redis://", "rediss://")
SQLITE_SCHEME = "sqlite:///"
# How long a request waits on Redis or a locked SQLite file before it gives up.
TIMEOUT = 2.0
BUSY_TIMEOUT = 5.0


@dataclass
class Shared:
    """Where shared state lives: the key-value `state`, and the one Redis client or SQLite
    pool it runs on (for the stores that need more than key-value: sessions, limits)."""

    url: str
    state: SharedState
    redis: redis.Redis | None = None
    sqlite: ThreadConnections | None = None
    # Where large, short-lived values (cached message lists) are shared: Redis. None on a
    # SQLite file, which would write megabytes per fetch: those stay in each process.
    lists: SharedState | None = None

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, when state lives in one."""
        return self.sqlite.path if self.sqlite is not None else None


def store_url(settings: Any, instance_path: str | Path | None) -> str:
    """The session store's URL: the setting, else a SQLite file in the instance folder."""
    if settings.SESSION_STORE_URL:
        return str(settings.SESSION_STORE_URL)
    return f"{SQLITE_SCHEME}{Path(instance_path or '.') / DEFAULT_FILE}"


def sqlite_path(url: str, base_dir: str | Path | None = None) -> Path:
    """The file of a sqlite:///<path> URL (relative to `base_dir`); ValueError if none."""
    # SQLAlchemy's convention: sqlite:///rel/path.db, sqlite:////abs/path.db.
    raw = url[len(SQLITE_SCHEME) :]
    if not raw or raw == ":memory:" or "?" in raw:
        raise ValueError(
            f"SESSION_STORE_URL {url!r}: give a file path, e.g. sqlite:///sessions.db "
            "(relative to the instance folder) or sqlite:////var/lib/webwidget/sessions.db"
        )
    path = Path(raw)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def redis_client(url: str, timeout: float = TIMEOUT) -> redis.Redis:
    """The one Redis client: text replies, and one quick retry, so a visitor waiting on a
    dead Redis gets an answer fast."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1),
        health_check_interval=30,
    )


def open_url(
    url: str, *, base_dir: str | Path | None = None, clock: Callable[[], float] = time.time
) -> Shared:
    """Shared state at `url` (redis[s]:// or sqlite:///<path>); ValueError otherwise.

    SQLite opens (and creates) its file here, SharedStateUnavailable if it cannot; Redis
    connects on first use.
    """
    if url.startswith(REDIS_SCHEMES):
        client = redis_client(url)
        in_redis = RedisState(client)
        return Shared(url=url, state=in_redis, redis=client, lists=in_redis)
    if url.startswith(SQLITE_SCHEME):
        path = sqlite_path(url, base_dir)
        connections = ThreadConnections(path, BUSY_TIMEOUT)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # The file holds every visitor's widget token (it is the sessions' file).
            make_private(path)
            state = SQLiteState(connections, clock)
        except OSError as error:
            raise SharedStateUnavailable(f"cannot create {path}: {error}") from error
        return Shared(url=url, state=state, sqlite=connections)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ValueError(
        f"SESSION_STORE_URL has unsupported scheme {scheme!r}: use sqlite:///<path> "
        "or redis://host:port/db (rediss:// for TLS)"
    )


def open_shared(
    settings: Any,
    instance_path: str | Path | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> Shared:
    """Open the app's shared state where its sessions live (see the module's docstring)."""
    return open_url(store_url(settings, instance_path), base_dir=instance_path, clock=clock)
