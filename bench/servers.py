"""What every benchmark here starts and measures with, on loopback ports.

`Servers` starts the ChatCaptain sandbox, redis-server, the widget under gunicorn with
the Procfile's command and `gunicorn.conf.py`, a bare Flask app under the same command,
and nginx with docs/hosting/webwidget-proxy.conf, each logging into one work folder, and
stops every one of them (and removes the folder) when the `with` block ends. `wrk` runs
wrk and parses what it prints. Imported by the scripts next to it, which run as
`python bench/NAME.py` and so find this module on their own path.
"""

from __future__ import annotations

import os
import re
import runpy
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET = "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
POLLER = re.compile(r'id="ww-poller".*?hx-get="([^"]+)"', re.S)
START_HEADERS = {"HX-Request": "true", "Sec-Fetch-Site": "same-origin"}
BARE = (
    "from flask import Flask\n\napp = Flask(__name__)\n\n\n"
    '@app.get("/")\ndef bare():\n    return "", 204\n'
)
NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
{user}
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream webwidget {{ server 127.0.0.1:{app_port}; keepalive 32; keepalive_timeout 4s; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ include {proxy_conf}; }}
  }}
}}
"""
# Settings a benchmark sets itself: none may leak in from the caller's shell.
OWN_SETTINGS = ("CHATCAPTAIN_", "WIDGET_", "SESSION_", "RATE_LIMIT_", "PROMETHEUS_")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def poller_url(html: str, *, held: bool = False) -> str:
    """The URL the page's htmx poller asks for next; without `held`, as a short poll
    (without the held poller's `m` and `s`: what a page behind a proxy that cuts held
    requests polls, and what wrk can measure)."""
    url = POLLER.search(html).group(1).replace("&amp;", "&")
    return url if held else re.sub(r"&(?:m|s)=[^&]*", "", url)


def procfile_command() -> list[str]:
    """The Procfile's web command, with gunicorn from this virtualenv."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            argv = shlex.split(line.removeprefix("web:"))
            if argv[0] == "gunicorn":
                argv[0] = str(BIN / "gunicorn")
            return argv
    raise SystemExit("no web: line in the Procfile")


def gunicorn_settings() -> dict:
    """gunicorn.conf.py's values as it computes them from this environment."""
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def wrk(
    url: str,
    seconds: float,
    connections: int,
    lua: Path,
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> dict:
    """requests/s, latency percentiles (ms), errors and wrk's own CPU share of one run.

    `errors` counts non-2xx/3xx answers and socket errors; `non_2xx` the answers alone.
    Without `timeout`, wrk's own default (2 s) applies.
    """
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency"]
    if timeout is not None:
        argv.append(f"--timeout={int(timeout)}s")
    proc = subprocess.Popen(
        [*argv, "-s", str(lua), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if "Requests/sec" not in out:
        raise SystemExit(f"wrk failed on {url}: {out[-500:]}")
    lat = {}
    for q in ("50", "99"):
        value, unit = re.search(rf"\s{q}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out).groups()
        lat[q] = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non_2xx = int(found.group(1)) if found else 0
    found = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = sum(int(n) for n in found.groups()) if found else 0
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": lat["50"],
        "p99": lat["99"],
        "errors": non_2xx + socket_errors,
        "non_2xx": non_2xx,
        "cpu": (usage.ru_utime + usage.ru_stime) / seconds,
    }


def worker_memory(parent: int) -> dict[int, tuple[int, int]]:
    """(peak RSS, current RSS) in KiB of each child process of `parent` (gunicorn's workers)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            status = (stat.parent / "status").read_text()
            found[int(stat.parent.name)] = (
                int(re.search(r"VmHWM:\s+(\d+)", status).group(1)),
                int(re.search(r"VmRSS:\s+(\d+)", status).group(1)),
            )
        except (OSError, AttributeError, IndexError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return found


def calls_per_minute_with_tabs(
    sandbox: Sandbox, n: int, poll: Callable[[requests.Session], object], seconds: float = 12.0
) -> float:
    """Upstream list calls per minute while `n` tabs, started evenly over one 1.5 s
    interval, each call `poll` (one GET of one conversation) every 1.5 s."""
    sandbox.settle()
    stop = time.monotonic() + seconds
    before = sandbox.list_calls()

    def tab(offset: float) -> None:
        time.sleep(offset)
        with requests.Session() as session:
            while time.monotonic() < stop:
                poll(session)
                time.sleep(1.5)

    threads = [threading.Thread(target=tab, args=(i * 1.5 / n,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (sandbox.list_calls() - before) * 60 / seconds


class Sandbox:
    """The ChatCaptain sandbox's test controls: its counters, injected latency, its clock."""

    def __init__(self, url: str) -> None:
        self.url = url

    def stats(self) -> dict[str, int]:
        return requests.get(self.url + "/_sandbox/stats", timeout=10).json()["requests"]

    def list_calls(self) -> int:
        return self.stats()["list_messages"]

    def settle(self, quiet: float = 1.0, at_most: float = 60.0) -> None:
        """Wait until no list call arrives for `quiet` seconds: refreshes a previous
        measurement left in flight must not count in the next one."""
        deadline = time.monotonic() + at_most
        last = self.list_calls()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.list_calls()
            if now == last:
                return
            last = now

    def latency(self, ms: int) -> None:
        requests.put(
            self.url + "/_sandbox/faults", json={"latency_ms": ms}, timeout=10
        ).raise_for_status()

    def advance(self, seconds: float) -> None:
        requests.post(self.url + "/_sandbox/clock", json={"advance": seconds}, timeout=10)


@dataclass(frozen=True)
class Server:
    """A process that answers HTTP on a loopback port."""

    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Servers:
    """Processes started for one benchmark run; all stopped when the `with` block ends."""

    def __init__(self, prefix: str = "ww-bench-") -> None:
        self.work = Path(tempfile.mkdtemp(prefix=prefix))
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spawn(self, cmd: list[str], name: str, env: dict[str, str] | None = None, cwd=ROOT):
        with open(self.work / f"{name}-{len(self.procs)}.log", "w") as log:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def wait_http(self, url: str, proc: subprocess.Popen, seconds: float = 180) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{url}: the server exited early (logs in {self.work})")
            try:
                requests.get(url, timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise SystemExit(f"{url} did not come up")

    def stop(self, proc: subprocess.Popen) -> None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        running = [proc for proc in reversed(self.procs) if proc.poll() is None]
        for proc in running:
            proc.terminate()
        for proc in running:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not os.environ.get("BENCH_KEEP"):  # BENCH_KEEP=1: keep the servers' logs
            shutil.rmtree(self.work, ignore_errors=True)

    # --- the servers ------------------------------------------------------------------

    def sandbox(self, *, keep_alive: bool = False) -> Sandbox:
        """The ChatCaptain sandbox in its own process (in-memory state).

        `webwidget sandbox` serves with werkzeug, which closes the connection after every
        answer; with `keep_alive` it runs under gunicorn (one process: the state is in
        memory; threads enough for every call its injected latency holds), which keeps
        connections open as the real API does, so that neither side pays for a new TCP
        connection per upstream call.
        """
        port = free_port()
        if keep_alive:
            command = [
                str(BIN / "gunicorn"), "--worker-class", "gthread", "--workers", "1",
                "--threads", "256", "--keep-alive", "75", "--no-control-socket",
                "--access-logfile", "/dev/null", "--bind", f"127.0.0.1:{port}",
                "webwidget.sandbox:create_sandbox_app()",
            ]
        else:
            command = [str(BIN / "webwidget"), "sandbox", "--host", "127.0.0.1", "--port"]
            command.append(str(port))
        # Not from the checkout: gunicorn would read the widget's gunicorn.conf.py there,
        # whose start-up check stops a process without the widget's settings.
        proc = self.spawn(command, "sandbox", cwd=self.work)
        sandbox = Sandbox(f"http://127.0.0.1:{port}")
        self.wait_http(sandbox.url + "/_sandbox/stats", proc)
        return sandbox

    def redis(self) -> str:
        """A throwaway redis-server (nothing saved); its URL once it answers PING."""
        binary = shutil.which("redis-server")
        if not binary:
            raise SystemExit("redis-server is missing: apt-get install -y redis-server")
        port = free_port()
        proc = self.spawn(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            "redis",
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return f"redis://127.0.0.1:{port}/0"
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"redis-server did not come up (logs in {self.work})")

    def widget_env(self, sandbox: Sandbox, **settings: str) -> dict[str, str]:
        """This environment with the widget pointed at `sandbox`, plus `settings`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_SETTINGS)}
        env.update(
            {
                "SECRET_KEY": SECRET,
                "CHATCAPTAIN_BASE_URL": sandbox.url,
                "CHATCAPTAIN_CHATBOT_ID": "demo-bot",
                "CHATCAPTAIN_CHANNEL_ID": "channel_abc123",
                "CHATCAPTAIN_CHANNEL_TOKEN": "channel_token_xyz789",
                "CHATCAPTAIN_SENDING_ENABLED": "true",
                "WIDGET_ALLOWED_ORIGINS": "https://host.example",
                "WEBWIDGET_INSTANCE_PATH": str(self.work / "instance"),
                **settings,
            }
        )
        return env

    def gunicorn(
        self,
        env: dict[str, str],
        *,
        access_log: bool = False,
        app: tuple[str, ...] = ("wsgi:app",),
        name: str = "widget",
        health: str = "/healthz",
    ) -> Server:
        """The Procfile's command (`app` in place of its app) on a loopback port.

        The access log stays on only when asked (`access_log`): the Procfile runs with it.
        """
        port = free_port()
        command = [*procfile_command()[:-1], "--no-control-socket", "--bind", f"127.0.0.1:{port}"]
        if not access_log:
            command += ["--access-logfile", "/dev/null"]
        server = Server(self.spawn([*command, *app], name, env), port)
        self.wait_http(server.url + health, server.proc)
        return server

    def bare(self, *, access_log: bool = False) -> Server:
        """A Flask app answering 204 and nothing else, under the same command: the ceiling."""
        (self.work / "bare.py").write_text(BARE)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_")}
        # gunicorn.conf.py's start-up check builds the widget's app first: let it build
        # on the sandbox (the bare app itself reads nothing).
        env["WEBWIDGET_DEMO"] = "1"
        return self.gunicorn(
            env,
            access_log=access_log,
            app=("--chdir", str(self.work), "bare:app"),
            name="bare",
            health="/",
        )

    def nginx(self, app_port: int) -> Server | None:
        """nginx with the documented proxy settings in front of `app_port`, if installed."""
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            return None
        port = free_port()
        conf = self.work / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                tmp=self.work,
                app_port=app_port,
                port=port,
                proxy_conf=ROOT / "docs" / "hosting" / "webwidget-proxy.conf",
                user="user root;" if os.geteuid() == 0 else "",
            )
        )
        proc = self.spawn(
            [
                binary,
                "-p",
                str(self.work),
                "-c",
                str(conf),
                "-e",
                str(self.work / "nginx-error.log"),
            ],
            "nginx",
        )
        server = Server(proc, port)
        self.wait_http(server.url + "/healthz", proc)
        return server
