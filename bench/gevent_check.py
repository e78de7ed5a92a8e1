#!/usr/bin/env python
"""What the app's libraries do under gevent's monkey-patching (issue 13's other mechanism).

Patches like gunicorn's gevent worker, then runs 200 visitors (start + poll), 50
greenlets at a time (one per request, as the worker spawns them), against a sandbox in
its own process, once with SQLite sessions and once with Redis, and prints errors,
SQLite connections opened (the store keeps one per thread: under gevent, per greenlet),
upstream connections the client's pool had to throw away (pool full), and wall time.
redis-py, the coalescer's locks and events, prometheus_client and the rate limits (on)
run in the same requests.

Loopback only: starts its own sandbox and redis-server (bench/servers.py). Needs gevent,
which the widget does not depend on: `.venv/bin/pip install gevent`.

    .venv/bin/python bench/gevent_check.py
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent.pool  # noqa: E402
from servers import START_HEADERS, Servers  # noqa: E402

GREENLETS = 200


def main() -> int:
    import logging
    import sqlite3

    from webwidget.sessions import sqlite_store

    connects = [0]
    real_connect = sqlite3.connect

    def counting_connect(*args, **kwargs):
        connects[0] += 1
        return real_connect(*args, **kwargs)

    sqlite_store.sqlite3.connect = counting_connect
    discarded = [0]

    class PoolFull(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "pool is full" in record.getMessage():
                discarded[0] += 1

    logging.getLogger("urllib3.connectionpool").addHandler(PoolFull())
    with Servers("ww-gevent-") as servers:
        stores = {
            "sqlite": f"sqlite:///{servers.work / 'sessions.sqlite3'}",
            "redis": servers.redis(),
        }
        sandbox_url = servers.sandbox().url
        for store, url in stores.items():
            app = build_app(url, sandbox_url, servers.work / store)
            connects[0] = discarded[0] = 0
            wall, errors = visitors(app)
            open_fds = len(os.listdir("/proc/self/fd"))
            print(
                f"{store}: {GREENLETS} visitors (start + poll) in {wall:.1f} s, 50 greenlets"
                f" at a time; errors {len(errors)} {sorted(set(errors))[:3]}; SQLite"
                f" connections opened {connects[0]}; upstream connections discarded (pool"
                f" full) {discarded[0]}; open file descriptors now {open_fds}",
                flush=True,
            )
    return 0


def build_app(store_url: str, sandbox_url: str, instance: Path):
    """The widget app in this process, on `sandbox_url`, with sessions in `store_url`."""
    from webwidget.app import create_app
    from webwidget.settings import Settings

    settings = Settings(
        _env_file=None,
        SECRET_KEY="gevent-check-secret-0123456789abcdefghijklmnop",
        CHATCAPTAIN_BASE_URL=sandbox_url,
        CHATCAPTAIN_CHATBOT_ID="demo-bot",
        CHATCAPTAIN_CHANNEL_ID="channel_abc123",
        CHATCAPTAIN_CHANNEL_TOKEN="channel_token_xyz789",
        CHATCAPTAIN_SENDING_ENABLED=True,
        WIDGET_ALLOWED_ORIGINS="https://host.example",
        SESSION_STORE_URL=store_url,
        RATE_LIMIT_ENABLED=True,
        RATE_LIMIT_START_PER_IP="1000/minute",
        RATE_LIMIT_START_PER_NETWORK="1000/minute",
    )
    app = create_app(settings=settings, instance_path=str(instance))
    app.config["PREFERRED_URL_SCHEME"] = "https"
    return app


def visitors(app) -> tuple[float, list[str]]:
    """GREENLETS visitors, 50 at a time, through `app`: (wall seconds, errors)."""
    errors: list[str] = []

    def visitor(_: int) -> None:
        web = app.test_client()
        started = web.post("/w/default/start", headers=START_HEADERS)
        if started.status_code != 200:
            errors.append(f"start {started.status_code}")
            return
        polled = web.get("/w/default/messages?v=x&i=1", headers={"HX-Request": "true"})
        if polled.status_code not in (200, 204):
            errors.append(f"poll {polled.status_code}")

    began = time.perf_counter()
    gevent.pool.Pool(50).map(visitor, range(GREENLETS))
    return time.perf_counter() - began, errors


if __name__ == "__main__":
    sys.exit(main())
