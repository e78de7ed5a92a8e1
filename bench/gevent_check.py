#!/usr/bin/env python
"""What the app's libraries do under gevent's monkey-patching (issue 13's other mechanism).

Patches like gunicorn's gevent worker, then runs 200 visitors (start + poll), 50
greenlets at a time (one per request, as the worker spawns them), against a sandbox in
its own process, once with SQLite sessions and once with Redis, and prints errors,
SQLite connections opened (the store keeps one per thread: under gevent, per greenlet),
upstream connections the client's pool had to throw away (pool full), and wall time.
redis-py, the coalescer's locks and events, prometheus_client and Flask-Limiter run in
the same requests (rate limits on).

Loopback only: starts its own sandbox and redis-server.

    .venv/bin/python bench/gevent_check.py
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402

GREENLETS = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    import logging
    import sqlite3

    from webwidget import create_app
    from webwidget.sessions import sqlite_store
    from webwidget.settings import Settings

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
    work = Path(tempfile.mkdtemp(prefix="ww-gevent-"))
    sport = free_port()
    sandbox_proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "webwidget"), "sandbox", "--port", str(sport)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sandbox_url = f"http://127.0.0.1:{sport}"
    rport = free_port()
    redis_proc = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(rport), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", sport), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        results = {}
        for store in ("sqlite", "redis"):
            url = (
                f"sqlite:///{work / 'sessions.sqlite3'}"
                if store == "sqlite"
                else f"redis://127.0.0.1:{rport}/0"
            )
            settings = Settings(
                _env_file=None,
                SECRET_KEY="gevent-check-secret-0123456789abcdefghijklmnop",
                CHATCAPTAIN_BASE_URL=sandbox_url,
                CHATCAPTAIN_CHATBOT_ID="demo-bot",
                CHATCAPTAIN_CHANNEL_ID="channel_abc123",
                CHATCAPTAIN_CHANNEL_TOKEN="channel_token_xyz789",
                CHATCAPTAIN_SENDING_ENABLED=True,
                WIDGET_ALLOWED_ORIGINS="https://host.example",
                SESSION_STORE_URL=url,
                RATE_LIMIT_ENABLED=True,
                RATE_LIMIT_START_PER_IP="1000/minute",
            )
            app = create_app(settings=settings, instance_path=str(work / store))
            app.config["PREFERRED_URL_SCHEME"] = "https"
            errors: list[str] = []
            connects[0] = discarded[0] = 0

            def visitor(_: int, app=app, errors=errors) -> None:
                web = app.test_client()
                started = web.post(
                    "/w/default/start",
                    headers={"HX-Request": "true", "Sec-Fetch-Site": "same-origin"},
                )
                if started.status_code != 200:
                    errors.append(f"start {started.status_code}")
                    return
                polled = web.get("/w/default/messages?v=x&i=1", headers={"HX-Request": "true"})
                if polled.status_code not in (200, 204):
                    errors.append(f"poll {polled.status_code}")

            began = time.perf_counter()
            pool = gevent.pool.Pool(50)
            pool.map(visitor, range(GREENLETS))
            wall = time.perf_counter() - began
            open_fds = len(os.listdir("/proc/self/fd"))
            results[store] = (wall, errors)
            print(
                f"{store}: {GREENLETS} visitors (start + poll) in {wall:.1f} s, 50 greenlets"
                f" at a time; errors {len(errors)} {sorted(set(errors))[:3]}; SQLite"
                f" connections opened {connects[0]}; upstream connections discarded (pool"
                f" full) {discarded[0]}; open file descriptors now {open_fds}",
                flush=True,
            )
        return 0
    finally:
        sandbox_proc.terminate()
        sandbox_proc.wait(timeout=10)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
