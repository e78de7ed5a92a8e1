"""The session store on the app's shared state (shared/ decides where: one decision for
sessions, renewals and rate limits), and wiring sessions into an app."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Request

from ..shared import Shared, SharedStateUnavailable
from ..shared.open import open_url
from .errors import SessionStoreUnavailable
from .interface import ServerSessionInterface
from .redis_store import RedisSessionStore
from .sqlite_store import SQLiteSessionStore
from .store import SessionStore

EXTENSION_KEY = "webwidget.sessions"


def store_of(shared: Shared) -> SessionStore:
    """The session store on the app's shared state: its Redis client or its SQLite pool."""
    if shared.redis is not None:
        return RedisSessionStore(shared.url, client=shared.redis)
    assert shared.sqlite is not None
    return SQLiteSessionStore(shared.sqlite.path, connections=shared.sqlite)


def store_from_url(url: str, *, base_dir: str | Path | None = None) -> SessionStore:
    """A store for sqlite:///<path> or redis[s]://host:port/db; ValueError otherwise."""
    try:
        return store_of(open_url(url, base_dir=base_dir))
    except SharedStateUnavailable as error:
        raise SessionStoreUnavailable(str(error)) from error


def init_sessions(
    app: Flask,
    *,
    shared: Shared,
    secret_keys: list[str],
    idle_timeout: float,
    absolute_timeout: float,
    scope_of: Callable[[Request], str | None] | None = None,
    clock: Callable[[], float] = time.time,
    skip_prefix: str | None = None,
) -> ServerSessionInterface:
    """Install server-side sessions on app; the store lands in app.extensions.

    `scope_of` names the scope (widget) of a request: one session per scope; `clock`
    (seconds since the epoch) is what the idle and absolute timeouts are measured on;
    requests under `skip_prefix` (static files) never open a session.
    """
    store = store_of(shared)
    interface = ServerSessionInterface(
        store,
        secret_keys=secret_keys,
        idle_timeout=idle_timeout,
        absolute_timeout=absolute_timeout,
        scope_of=scope_of,
        clock=clock,
        skip_prefix=skip_prefix,
    )
    app.session_interface = interface
    # Every store method may raise SessionStoreUnavailable: the app answers it (a 503).
    app.extensions[EXTENSION_KEY] = store
    return interface


def get_store(app: Flask) -> SessionStore:
    """The app's session store, e.g. for /readyz to ping()."""
    store: SessionStore = app.extensions[EXTENSION_KEY]
    return store

