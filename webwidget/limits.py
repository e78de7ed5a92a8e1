"""Abuse limits (Flask-Limiter): chat starts per client IP and per widget, sends per session.

Each app gets its own Limiter, so limits and counters never leak between apps (tests
build many). The counters must be shared by every worker and instance, or N workers
allow N times the limit: storage is `RATE_LIMIT_STORAGE_URL`, else the session store's
Redis (or `REDIS_URL`), else the session store's SQLite file (`limit_storage.py`).
`memory://` is only ever used when set, and start-up then warns that it is per process.
The client IP is `request.remote_addr`: X-Forwarded-For counts only through ProxyFix
with `TRUSTED_PROXY_HOPS` configured, so a spoofed header cannot dodge the per-IP limit.

Limits are checked after the same-origin check and before the view, so a refused
request costs nothing upstream. Limiter storage down fails open (logged): the limits
protect the upstream, they must not take the widget down.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from pathlib import Path

from flask import Flask, current_app, request, session
from flask_limiter import Limiter

from . import limit_storage
from .current import current_widget
from .sessions import SessionStoreUnavailable

log = logging.getLogger(__name__)

EXTENSION_KEY = "webwidget.limiter"


def storage_url(settings, sqlite_path: str | Path | None = None) -> str:
    """Where counters live: the setting, the session store's Redis, REDIS_URL, or the
    session store's SQLite file; memory only when nothing shared is there."""
    if settings.RATE_LIMIT_STORAGE_URL:
        return settings.RATE_LIMIT_STORAGE_URL
    for url in (settings.SESSION_STORE_URL, getattr(settings, "REDIS_URL", None)):
        if url and str(url).startswith(("redis://", "rediss://")):
            return str(url)
    if sqlite_path is not None:
        return limit_storage.storage_uri(sqlite_path)
    return "memory://"


def client_ip() -> str:
    """The client address the per-IP limit counts."""
    return "ip:" + (request.remote_addr or "unknown")


def widget_key() -> str:
    """All visitors of one widget share this key; unknown ids share one bucket."""
    widget = current_widget()
    return "widget:" + (widget.id if widget is not None else "?")


def session_key() -> str:
    """The visitor's session, hashed (the handle is a bearer secret); the IP without one."""
    try:
        handle = session.handle
    except SessionStoreUnavailable:
        handle = None
    if not handle:
        return client_ip()
    return "session:" + hashlib.sha256(handle.encode()).hexdigest()[:32]


def _setting(name: str):
    return lambda: getattr(current_app.config["WEBWIDGET_SETTINGS"], name)


def retry_after(response):
    """A 429 says when to come back, in whole seconds."""
    if response.status_code == 429 and "Retry-After" not in response.headers:
        seconds = 60
        limiter = current_app.extensions.get(EXTENSION_KEY)
        current = limiter.current_limit if limiter is not None else None
        if current is not None:
            try:
                seconds = max(1, math.ceil(current.reset_at - time.time()))
            except Exception:  # noqa: BLE001 - storage trouble must not turn a 429 into a 500
                seconds = 60
        response.headers["Retry-After"] = str(seconds)
    return response


def init_app(app: Flask) -> Limiter | None:
    """Put the limits on the start and send views; call after the views are registered."""
    settings = app.config["WEBWIDGET_SETTINGS"]
    app.after_request(retry_after)
    if not settings.RATE_LIMIT_ENABLED:
        return None
    session_store = app.extensions.get("webwidget.sessions")
    storage = storage_url(settings, getattr(session_store, "path", None))
    if storage.startswith("memory://"):
        log.warning(
            "RATE_LIMIT_STORAGE_URL=memory:// counts per process: with %s workers (and every "
            "further instance) the limits multiply; unset it to share the session store's "
            "SQLite file, or set redis://host:port/db",
            os.environ.get("WEB_CONCURRENCY", "several"),
        )
    limiter = Limiter(
        key_func=client_ip,
        app=app,
        storage_uri=storage,
        # Several apps may share one Redis: their counters must not mix.
        key_prefix="webwidget",
        strategy="moving-window",
        swallow_errors=True,
        headers_enabled=False,
    )
    app.extensions[EXTENSION_KEY] = limiter
    start = app.view_functions["widget.start"]
    start = limiter.limit(_setting("RATE_LIMIT_START_PER_IP"), key_func=client_ip)(start)
    start = limiter.limit(_setting("RATE_LIMIT_START_PER_WIDGET"), key_func=widget_key)(start)
    app.view_functions["widget.start"] = start
    app.view_functions["widget.send"] = limiter.limit(
        _setting("RATE_LIMIT_SEND_PER_SESSION"), key_func=session_key
    )(app.view_functions["widget.send"])
    return limiter
