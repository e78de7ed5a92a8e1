"""Choosing a store from SESSION_STORE_URL and wiring sessions into an app."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Request

from .interface import ServerSessionInterface
from .redis_store import RedisSessionStore
from .sqlite_store import SQLiteSessionStore
from .store import SessionStore

EXTENSION_KEY = "webwidget.sessions"


def store_from_url(url: str, *, base_dir: str | Path | None = None) -> SessionStore:
    """A store for sqlite:///<path> or redis[s]://host:port/db; ValueError otherwise."""
    if url.startswith("sqlite:///"):
        # SQLAlchemy's convention: sqlite:///rel/path.db, sqlite:////abs/path.db.
        raw = url[len("sqlite:///") :]
        if not raw or raw == ":memory:" or "?" in raw:
            raise ValueError(
                f"SESSION_STORE_URL {url!r}: give a file path, e.g. sqlite:///sessions.db "
                "(relative to the instance folder) or sqlite:////var/lib/webwidget/sessions.db"
            )
        path = Path(raw)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        return SQLiteSessionStore(path)
    if url.startswith(("redis://", "rediss://")):
        return RedisSessionStore(url)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ValueError(
        f"SESSION_STORE_URL has unsupported scheme {scheme!r}: use sqlite:///<path> "
        "or redis://host:port/db (rediss:// for TLS)"
    )


def init_sessions(
    app: Flask,
    *,
    store_url: str,
    secret_keys: list[str],
    idle_timeout: float,
    absolute_timeout: float,
    scope_of: Callable[[Request], str | None] | None = None,
    clock: Callable[[], float] = time.time,
) -> ServerSessionInterface:
    """Install server-side sessions on app; the store lands in app.extensions.

    `scope_of` names the scope (widget) of a request: one session per scope; `clock`
    (seconds since the epoch) is what the idle and absolute timeouts are measured on.
    """
    store = store_from_url(store_url, base_dir=app.instance_path)
    interface = ServerSessionInterface(
        store,
        secret_keys=secret_keys,
        idle_timeout=idle_timeout,
        absolute_timeout=absolute_timeout,
        scope_of=scope_of,
        clock=clock,
    )
    app.session_interface = interface
    # Every store method may raise SessionStoreUnavailable: the app answers it (a 503).
    app.extensions[EXTENSION_KEY] = store
    return interface


def get_store(app: Flask) -> SessionStore:
    """The app's session store, e.g. for /readyz to ping()."""
    return app.extensions[EXTENSION_KEY]

