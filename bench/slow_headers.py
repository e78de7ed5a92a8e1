#!/usr/bin/env python
"""Slow-header clients against gunicorn alone and behind nginx: does /healthz still answer?

Loopback only; it starts what it needs on free ports: the ChatCaptain sandbox, the
widget under gunicorn with gunicorn.conf.py (its worker class, workers and threads), and
Debian's nginx with docs/hosting/webwidget-proxy.conf in front. Then N connections each
send a request line and one header byte per second, never finishing their headers, while
a probe asks for /healthz once a second (2 s timeout), first straight at gunicorn, then
through nginx. It prints how many probes were answered and the longest run of failures.

    .venv/bin/python bench/slow_headers.py --connections 200 --seconds 40
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time

import requests
from servers import Servers, gunicorn_settings


class SlowClients:
    """N connections that send their headers one byte a second and never finish them."""

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.stopped = threading.Event()
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, start: bytes) -> None:
        """One more connection that has sent `start` of its request; none if refused."""
        try:
            conn = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            conn.sendall(start)
            self.sockets.append(conn)
        except OSError:
            pass

    def _run(self) -> None:
        head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for _ in range(self.count):
            self._open(head)
        while not self.stopped.wait(1.0):
            for conn in list(self.sockets):
                try:
                    conn.send(b"X")
                except OSError:
                    self.sockets.remove(conn)  # the server gave up on it: open another
                    self._open(head + b"X-")

    def __enter__(self) -> SlowClients:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        for conn in self.sockets:
            conn.close()


def probe(url: str, seconds: float) -> tuple[int, int, float]:
    """(answered, asked, longest outage in seconds) over `seconds` of one probe a second."""
    answered = asked = 0
    outage_started: float | None = None
    longest = 0.0
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        began = time.monotonic()
        asked += 1
        try:
            ok = requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            ok = False
        if ok:
            answered += 1
            if outage_started is not None:
                longest = max(longest, began - outage_started)
                outage_started = None
        elif outage_started is None:
            outage_started = began
        time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
    if outage_started is not None:
        longest = max(longest, time.monotonic() - outage_started)
    return answered, asked, longest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=40)
    args = parser.parse_args(argv)
    with Servers("webwidget-slow-") as servers:
        env = servers.widget_env(servers.sandbox())
        app = servers.gunicorn(env)
        proxy = servers.nginx(app.port)
        if proxy is None:
            raise SystemExit("nginx is missing: apt-get install -y nginx")
        c = gunicorn_settings()
        print(f"gunicorn.conf.py: {c['worker_class']} workers={c['workers']} "
              f"threads={c['threads']}; {args.connections} slow-header connections, "
              "one byte a second; "
              f"/healthz probed once a second for {args.seconds:g} s (2 s timeout)", flush=True)
        for name, port in (("gunicorn alone", app.port), ("behind nginx", proxy.port)):
            with SlowClients(port, args.connections):
                time.sleep(2)  # let every slow connection reach the server
                answered, asked, longest = probe(f"http://127.0.0.1:{port}/healthz",
                                                 args.seconds)
            print(f"{name:15s}: {answered}/{asked} probes answered, "
                  f"longest outage {longest:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
