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
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "bench"))
from load import SECRET, free_port, wait_http  # noqa: E402

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream webwidget {{ server 127.0.0.1:{app_port}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ include {proxy_conf}; }}
  }}
}}
"""


class SlowClients:
    """N connections that send their headers one byte a second and never finish them."""

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.stopped = threading.Event()
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(self.count):
            try:
                conn = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                self.sockets.append(conn)
            except OSError:
                pass
        while not self.stopped.wait(1.0):
            for conn in list(self.sockets):
                try:
                    conn.send(b"X")
                except OSError:
                    self.sockets.remove(conn)  # the server gave up on it: open another
                    try:
                        fresh = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                        fresh.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-")
                        self.sockets.append(fresh)
                    except OSError:
                        pass

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
    nginx_binary = shutil.which("nginx") or "/usr/sbin/nginx"
    workdir = Path(tempfile.mkdtemp(prefix="webwidget-slow-"))
    processes: list[subprocess.Popen] = []

    def spawn(command: list[str], name: str, env: dict[str, str] | None = None):
        log = (workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        processes.append(proc)
        return proc

    try:
        sandbox_port = free_port()
        sandbox = spawn([str(BIN / "webwidget"), "sandbox", "--host", "127.0.0.1",
                         "--port", str(sandbox_port)], "sandbox")
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        wait_http(sandbox_url + "/_sandbox/stats", sandbox)
        app_port, proxy_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CHATCAPTAIN_", "WIDGET_", "SESSION_", "RATE_LIMIT_"))}
        env.update(
            SECRET_KEY=SECRET, CHATCAPTAIN_BASE_URL=sandbox_url, CHATCAPTAIN_CHATBOT_ID="demo-bot",
            CHATCAPTAIN_CHANNEL_ID="channel_abc123",
            CHATCAPTAIN_CHANNEL_TOKEN="channel_token_xyz789",
            WIDGET_ALLOWED_ORIGINS="https://host.example",
            WEBWIDGET_INSTANCE_PATH=str(workdir / "instance"),
        )
        gunicorn = spawn([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--no-control-socket",
                          "--bind", f"127.0.0.1:{app_port}", "--access-logfile", "/dev/null",
                          "wsgi:app"], "gunicorn", env)
        wait_http(f"http://127.0.0.1:{app_port}/healthz", gunicorn)
        conf = workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            tmp=workdir, app_port=app_port, port=proxy_port,
            proxy_conf=ROOT / "docs" / "hosting" / "webwidget-proxy.conf",
            user="user root;" if os.geteuid() == 0 else "",
        ))
        nginx = spawn([nginx_binary, "-p", str(workdir), "-c", str(conf), "-e",
                       str(workdir / "nginx-error.log")], "nginx")
        wait_http(f"http://127.0.0.1:{proxy_port}/healthz", nginx)
        config = subprocess.run(
            [str(BIN / "python"), "-c",
             "import runpy; c = runpy.run_path('gunicorn.conf.py'); "
             "print(c['worker_class'], c['workers'], c['threads'])"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        ).stdout.split()
        print(f"gunicorn.conf.py: {config[0]} workers={config[1]} threads={config[2]}; "
              f"{args.connections} slow-header connections, one byte a second; "
              f"/healthz probed once a second for {args.seconds:g} s (2 s timeout)", flush=True)
        for name, port in (("gunicorn alone", app_port), ("behind nginx", proxy_port)):
            with SlowClients(port, args.connections):
                time.sleep(2)  # let every slow connection reach the server
                answered, asked, longest = probe(f"http://127.0.0.1:{port}/healthz",
                                                 args.seconds)
            print(f"{name:15s}: {answered}/{asked} probes answered, "
                  f"longest outage {longest:.0f} s", flush=True)
    finally:
        for proc in reversed(processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
