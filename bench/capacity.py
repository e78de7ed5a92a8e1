#!/usr/bin/env python
"""Capacity when ChatCaptain is slow (issue 13): every figure side by side in one run.

Starts the ChatCaptain sandbox (own process) and the widget exactly as the Procfile
runs it (its command, `gunicorn.conf.py`, the project's default settings: SQLite
sessions, rate limits on, access log on), plus a bare Flask app under the same
gunicorn config. The conversations are created beforehand by a second widget process
on the same session file with rate limits off (2,000 starts from one address would hit
the per-IP limit), which is stopped before anything is measured. Then it prints:

  (1) polls/s over all conversations with 0, 100 and 300 ms of upstream latency (wrk,
      round-robin, each poll due: a lone tab's poll whose cached list is too old);
  (2) the unchanged poll (one conversation, its list shared) vs the bare-Flask ceiling;
  (3) upstream list calls per conversation per minute with 1 and with 5 tabs;
  (4) N visitors polling at the server's hinted interval against a slow upstream
      (bench/visitors.py: p50/p99, errors, the generator's own CPU);
  (5) slow clients: connections sending their headers one byte a second, and what a
      normal poll sees meanwhile;
  (6) RSS per worker (peak and current).

`--compare wait,gevent,...` also measures (1) in the same run with other mechanisms
(polls that wait on the upstream, gunicorn's gevent worker): same machine, same load.
Worker settings come from the environment as gunicorn.conf.py reads them. Needs wrk
(`apt-get install -y wrk`); nginx for the second half of (5). Loopback only; stops
every process it started.

    .venv/bin/python bench/capacity.py [--conversations 2000] [--visitors 2000] [--compare wait]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET = "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
POLLER = re.compile(r'id="ww-poller".*?hx-get="([^"]+)"', re.S)
BARE = (
    "from flask import Flask\n\napp = Flask(__name__)\n\n\n"
    '@app.get("/")\ndef bare():\n    return "", 204\n'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def procfile_command() -> list[str]:
    """The Procfile's web command, with gunicorn from this virtualenv."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            argv = shlex.split(line.removeprefix("web:"))
            if argv[0] == "gunicorn":
                argv[0] = str(BIN / "gunicorn")
            return argv
    raise SystemExit("no web: line in the Procfile")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wrk(url: str, seconds: float, connections: int, lua: Path, timeout: float = 30) -> dict:
    """requests/s, latency percentiles (ms) and errors of one wrk run."""
    proc = subprocess.Popen(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            f"--timeout={int(timeout)}s",
            "--latency",
            "-s",
            str(lua),
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if "Requests/sec" not in out:
        raise SystemExit(f"wrk failed on {url}: {out[-500:]}")
    lat = {}
    for q in ("50", "99"):
        value, unit = re.search(rf"\s{q}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out).groups()
        lat[q] = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    errors = 0
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if found:
        errors += int(found.group(1))
    found = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if found:
        errors += sum(int(n) for n in found.groups())
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": lat["50"],
        "p99": lat["99"],
        "errors": errors,
        "cpu": (usage.ru_utime + usage.ru_stime) / seconds,
    }


NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream webwidget {{ server 127.0.0.1:{app_port}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ include {proxy_conf}; }}
  }}
}}
"""


# Other mechanisms the table can be measured with in the same run (--compare).
COMPARE = {
    "wait": {"UPSTREAM_REFRESH_CALLS": "0"},
    "gevent": {"GUNICORN_WORKER_CLASS": "gevent"},
    "gevent-wait": {"GUNICORN_WORKER_CLASS": "gevent", "UPSTREAM_REFRESH_CALLS": "0"},
}


def children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def memory(parent: int) -> list[tuple[int, int]]:
    """(peak RSS, current RSS) in KiB of each worker of a gunicorn master."""
    values = []
    for pid in children(parent):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        values.append(
            (
                int(re.search(r"VmHWM:\s+(\d+)", status).group(1)),
                int(re.search(r"VmRSS:\s+(\d+)", status).group(1)),
            )
        )
    return values


def rotate_lua(polls: list[tuple[str, str]]) -> str:
    """wrk script polling every conversation in turn, as its tab's htmx would.

    `t` is now, so the hinted interval stays the fast one (no new poller to send), and a
    poll is due whenever the conversation's list is older than 0.9 x 1.5 s.
    """
    rows = ",\n".join(
        f'  {{"{re.sub(r"&t=[^&]*", "", re.sub(r"i=[^&]*", "i=1.5", u))}", "{h}"}}'
        for h, u in polls
    )
    return f"""local polls = {{
{rows}
}}
local n = 0
init = function(args)
  n = math.random(#polls)
end
request = function()
  n = n + 1
  local p = polls[(n % #polls) + 1]
  return wrk.format("GET", p[1] .. "&t=" .. os.time(),
    {{["HX-Request"] = "true", ["Cookie"] = "__Host-ww_session-default=" .. p[2]}})
end
"""


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="ww-capacity-"))
        self.procs: list[subprocess.Popen] = []

    def spawn(self, cmd, env=None, cwd=ROOT, name="proc") -> subprocess.Popen:
        log = open(self.work / f"{name}-{len(self.procs)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                self.stop(proc)
        shutil.rmtree(self.work, ignore_errors=True)

    def widget_env(self, port: int, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                ("CHATCAPTAIN_", "WIDGET_", "SESSION_", "RATE_LIMIT_", "PROMETHEUS_")
            )
        }
        env.update(
            PORT=str(port),
            SECRET_KEY=SECRET,
            CHATCAPTAIN_BASE_URL=self.sandbox,
            CHATCAPTAIN_CHATBOT_ID="demo-bot",
            CHATCAPTAIN_CHANNEL_ID="channel_abc123",
            CHATCAPTAIN_CHANNEL_TOKEN="channel_token_xyz789",
            CHATCAPTAIN_SENDING_ENABLED="true",
            WIDGET_ALLOWED_ORIGINS="https://host.example",
            WEBWIDGET_INSTANCE_PATH=str(self.work / "instance"),
            **extra,
        )
        return env

    def list_calls(self) -> int:
        return requests.get(self.sandbox + "/_sandbox/stats", timeout=10).json()["requests"][
            "list_messages"
        ]

    def latency(self, ms: int) -> None:
        requests.put(
            self.sandbox + "/_sandbox/faults", json={"latency_ms": ms}, timeout=10
        ).raise_for_status()

    # --- set-up -----------------------------------------------------------------------

    def start_servers(self) -> None:
        sport = free_port()
        self.spawn(
            [str(BIN / "webwidget"), "sandbox", "--host", "127.0.0.1", "--port", str(sport)],
            name="sandbox",
        )
        self.sandbox = f"http://127.0.0.1:{sport}"
        wait_http(self.sandbox + "/_sandbox/stats")

    def create_conversations(self, count: int) -> list[tuple[str, str]]:
        """`count` started chats: (session handle, poller URL of the current list)."""
        port = free_port()
        setup = self.spawn(
            procfile_command(), self.widget_env(port, RATE_LIMIT_ENABLED="false"), name="setup"
        )
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz")

        def start(_: int) -> tuple[str, str]:
            with requests.Session() as s:
                r = s.post(
                    base + "/w/default/start",
                    headers={"HX-Request": "true", "Sec-Fetch-Site": "same-origin"},
                    timeout=60,
                )
                r.raise_for_status()
                return r.headers["X-Widget-Session"], ""

        with ThreadPoolExecutor(16) as pool:
            started = list(pool.map(start, range(count)))
        # Let every delayed greeting part become visible, then read each current poller.
        requests.post(self.sandbox + "/_sandbox/clock", json={"advance": 30}, timeout=10)

        def current(handle_url: tuple[str, str]) -> tuple[str, str]:
            handle = handle_url[0]
            page = requests.get(
                base + "/w/default",
                headers={"Cookie": f"__Host-ww_session-default={handle}"},
                timeout=60,
            )
            page.raise_for_status()
            return handle, POLLER.search(page.text).group(1).replace("&amp;", "&")

        with ThreadPoolExecutor(16) as pool:
            chats = list(pool.map(current, started))
        self.stop(setup)
        return chats

    def start_widget(self, **extra: str) -> None:
        port = free_port()
        self.widget_port = port
        self.widget = self.spawn(procfile_command(), self.widget_env(port, **extra), name="widget")
        self.base = f"http://127.0.0.1:{port}"
        wait_http(self.base + "/healthz")

    def start_bare(self) -> None:
        bport = free_port()
        (self.work / "bare.py").write_text(BARE)
        bare_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_")},
            "PORT": str(bport),
        }
        self.spawn(
            [*procfile_command()[:-1], "--chdir", str(self.work), "bare:app"],
            bare_env,
            name="bare",
        )
        self.bare = f"http://127.0.0.1:{bport}"
        wait_http(self.bare + "/")

    # --- measurements -------------------------------------------------------------------

    def latency_table(self, chats) -> dict[int, dict]:
        lua = self.work / "rotate.lua"
        lua.write_text(rotate_lua(chats))
        results = {}
        # Warm-up, not measured: every worker has seen the conversations once, as it has
        # in a running deployment (its first poll of a conversation fetches in any mode).
        self.latency(0)
        wrk(self.base + "/", max(self.args.seconds, 8), self.args.connections, lua)
        for ms in (0, 100, 300):
            self.latency(ms)
            time.sleep(2.0)  # let the lists cached before go stale
            before = self.list_calls()
            result = wrk(self.base + "/", self.args.seconds, self.args.connections, lua)
            result["upstream"] = (self.list_calls() - before) / self.args.seconds
            results[ms] = result
        self.latency(0)
        return results

    def ceiling(self, chat: tuple[str, str]) -> tuple[dict, dict]:
        handle, url = chat
        lua = self.work / "one.lua"
        url = re.sub(r"&t=[^&]*", "", re.sub(r"i=[^&]*", "i=1.5", url))
        lua.write_text(
            f"""request = function()
  return wrk.format("GET", "{url}&t=" .. os.time(),
    {{["HX-Request"] = "true", ["Cookie"] = "__Host-ww_session-default={handle}"}})
end
"""
        )
        bare_lua = self.work / "bare.lua"
        bare_lua.write_text('wrk.headers["HX-Request"] = "true"\n')
        bare = wrk(self.bare + "/", self.args.seconds, 32, bare_lua)
        poll = wrk(self.base + "/", self.args.seconds, 32, lua)
        return poll, bare

    def tabs(self, chat: tuple[str, str], n: int, seconds: float = 12.0) -> float:
        """Upstream list calls per minute for one conversation polled by `n` tabs (1.5 s)."""
        handle, url = chat
        url = re.sub(r"i=[^&]*", "i=1.5", url)
        stop = time.monotonic() + seconds
        before = self.list_calls()

        def tab(offset: float) -> None:
            time.sleep(offset)
            with requests.Session() as s:
                while time.monotonic() < stop:
                    fresh = re.sub(r"t=\d+", f"t={int(time.time())}", url)
                    s.get(
                        self.base + fresh,
                        headers={
                            "HX-Request": "true",
                            "Cookie": f"__Host-ww_session-default={handle}",
                        },
                        timeout=30,
                    )
                    time.sleep(1.5)

        threads = [threading.Thread(target=tab, args=(i * 1.5 / n,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return (self.list_calls() - before) * 60 / seconds

    def visitors(self, chats, latency_ms: int, open_pages: bool) -> dict:
        handles = self.work / "handles.json"
        handles.write_text(json.dumps([h for h, _ in chats] if open_pages else chats))
        self.latency(latency_ms)
        before = self.list_calls()
        out = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "visitors.py"),
                "--port",
                str(self.widget_port),
                "--handles",
                str(handles),
                "--count",
                str(self.args.visitors),
                "--seconds",
                str(self.args.visitor_seconds),
                "--ramp",
                str(self.args.ramp),
            ],
            capture_output=True,
            text=True,
            timeout=self.args.visitor_seconds + 120,
        )
        self.latency(0)
        if out.returncode != 0:
            raise SystemExit(f"visitors failed: {out.stderr[-2000:]}")
        result = json.loads(out.stdout)
        result["upstream_per_s"] = (self.list_calls() - before) / result["seconds"]
        return result

    def start_nginx(self) -> int | None:
        """nginx with the documented proxy settings in front of the widget, if installed."""
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            return None
        port = free_port()
        conf = self.work / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                tmp=self.work,
                app_port=self.widget_port,
                port=port,
                proxy_conf=ROOT / "docs" / "hosting" / "webwidget-proxy.conf",
            )
        )
        self.spawn([binary, "-c", str(conf), "-p", str(self.work)], name="nginx")
        wait_http(f"http://127.0.0.1:{port}/healthz")
        return port

    def slow_clients(
        self, chat: tuple[str, str], count: int, seconds: float, port: int | None = None
    ) -> dict:
        """`count` connections dripping request headers at 1 byte/s; a normal poll meanwhile."""
        port = port or self.widget_port
        self.latency(300)
        handle, url = chat
        url = re.sub(r"i=[^&]*", "i=1.5", url)
        sockets: list[socket.socket] = []
        refused = 0
        for _ in range(count):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                s.sendall(b"G")
                sockets.append(s)
            except OSError:
                refused += 1
        probe_ms: list[float] = []
        probe_errors = 0
        header = b"ET /w/default HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        stop = time.monotonic() + seconds
        sent = 0
        dropped = 0
        with requests.Session() as probe:
            while time.monotonic() < stop:
                tick = time.monotonic()
                for s in sockets:
                    if s.fileno() < 0:
                        continue
                    try:
                        s.sendall(header[sent % len(header) : sent % len(header) + 1])
                    except OSError:
                        dropped += 1
                        s.close()
                sent += 1
                fresh = re.sub(r"t=\d+", f"t={int(time.time())}", url)
                t0 = time.perf_counter()
                try:
                    r = probe.get(
                        f"http://127.0.0.1:{port}" + fresh,
                        headers={
                            "HX-Request": "true",
                            "Cookie": f"__Host-ww_session-default={handle}",
                        },
                        timeout=10,
                    )
                    if r.status_code not in (200, 204):
                        probe_errors += 1
                    probe_ms.append((time.perf_counter() - t0) * 1000)
                except requests.RequestException:
                    probe_errors += 1
                time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        for s in sockets:
            s.close()
        self.latency(0)
        probe_ms.sort()
        return {
            "held": len(sockets),
            "refused": refused,
            "dropped_by_server": dropped,
            "probe_polls": len(probe_ms),
            "probe_errors": probe_errors,
            "probe_p50": probe_ms[len(probe_ms) // 2] if probe_ms else float("nan"),
            "probe_max": probe_ms[-1] if probe_ms else float("nan"),
        }


def describe_config() -> str:
    conf = ROOT / "gunicorn.conf.py"
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"exec(open({str(conf)!r}).read());"
            "print(worker_class, workers, threads, worker_connections)",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.split()
    return f"worker_class={out[0]} workers={out[1]} threads={out[2]} worker_connections={out[3]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8, help="each wrk run")
    parser.add_argument("--connections", type=int, default=512, help="wrk connections in (1)")
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--visitor-seconds", type=float, default=90)
    parser.add_argument("--ramp", type=float, default=30)
    parser.add_argument("--visitor-latency", type=int, default=300)
    parser.add_argument("--slow-clients", type=int, default=1000)
    parser.add_argument("--slow-seconds", type=float, default=20)
    parser.add_argument(
        "--compare",
        default="wait",
        help=f"also measure (1) with these mechanisms, comma-separated: {', '.join(COMPARE)}",
    )
    parser.add_argument(
        "--only",
        default="table,ceiling,tabs,visitors,slow,memory",
        help="comma-separated sections to run",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    bench = Bench(args)
    try:
        print(
            f"Procfile: {' '.join(procfile_command()[1:])}; gunicorn.conf.py: {describe_config()}"
            f"; {os.cpu_count()} cores (shared), load average {load_average()}",
            flush=True,
        )
        bench.start_servers()
        t0 = time.monotonic()
        chats = bench.create_conversations(max(args.conversations, args.visitors))
        print(
            f"set-up: {len(chats)} conversations started in {time.monotonic() - t0:.0f} s",
            flush=True,
        )
        bench.start_widget()

        def print_table(label: str) -> None:
            table = bench.latency_table(chats[: args.conversations])
            zero = table[0]["rps"] or float("nan")
            print(
                f"(1) {label}: polls/s over {args.conversations} conversations,"
                f" wrk -c{args.connections} -d{args.seconds:g}s (load average {load_average()}):"
            )
            print("    latency  polls/s  ratio  p50 ms   p99 ms  errors  upstream calls/s  wrk CPU")
            for ms, r in table.items():
                print(
                    f"    {ms:>4} ms  {r['rps']:>7.0f}  {r['rps'] / zero:>5.2f}  {r['p50']:>6.0f}"
                    f"  {r['p99']:>7.0f}  {r['errors']:>6}  {r['upstream']:>16.0f}"
                    f"  {r['cpu']:>6.0%}",
                    flush=True,
                )

        bench.start_bare()
        if "table" in only:
            print_table("as configured")
        for mode in filter(None, args.compare.split(",")):
            # The same table for another mechanism, in the same run: same machine, same load.
            bench.stop(bench.widget)
            bench.start_widget(**COMPARE[mode])
            print_table(f"{mode} ({' '.join(f'{k}={v}' for k, v in COMPARE[mode].items())})")
        if args.compare:
            bench.stop(bench.widget)
            bench.start_widget()
        if "ceiling" in only:
            poll, bare = bench.ceiling(chats[0])
            print(
                f"(2) unchanged poll {poll['rps']:.0f} req/s (p50 {poll['p50']:.1f} ms, p99 "
                f"{poll['p99']:.1f} ms, errors {poll['errors']}) | bare Flask {bare['rps']:.0f}"
                f" req/s (p50 {bare['p50']:.1f} ms) | ratio {poll['rps'] / bare['rps']:.2f}"
                f" (load average {load_average()})",
                flush=True,
            )
        if "tabs" in only:
            one, five, twenty = (
                bench.tabs(chats[n], tabs) for n, tabs in ((1, 1), (2, 5), (4, 20))
            )
            print(
                f"(3) upstream list calls per conversation per minute (polling every 1.5 s):"
                f" 1 tab {one:.0f}, 5 tabs {five:.0f}, 20 tabs {twenty:.0f}",
                flush=True,
            )
        if "visitors" in only:
            for open_pages in (False, True):
                v = bench.visitors(chats, args.visitor_latency, open_pages)
                print(
                    f"(4) {v['visitors']} visitors at the hinted interval,"
                    f" {args.visitor_latency} ms"
                    f" upstream, {'each opening the page first' if open_pages else 'pages open'},"
                    f" arriving over {args.ramp:g} s, {v['seconds']:.0f} s: "
                    f"{v['polls']} polls ({v['polls_per_s']:.0f}/s) p50 {v['poll_p50_ms']:.0f} ms"
                    f" p99 {v['poll_p99_ms']:.0f} ms max {v['poll_max_ms']:.0f} ms; page p99 "
                    f"{v['page_p99_ms']:.0f} ms; errors {sum(v['errors'].values())}"
                    f" {v['errors'] or ''}; statuses {v['statuses']}; keep-alive reconnects"
                    f" {v['reconnects']}; upstream list calls"
                    f" {v['upstream_per_s'] * 60 / v['visitors']:.1f} per visitor per minute = "
                    f"{v['upstream_per_s']:.0f}/s; generator CPU {v['cpu_seconds']:.1f} s ="
                    f" {v['cpu_share_of_one_core']:.0%} of one core"
                    f" (load average {load_average()})",
                    flush=True,
                )
        if "slow" in only:
            targets = [("gunicorn directly", None)]
            nginx = bench.start_nginx()
            if nginx:
                targets.append(("nginx in front (docs/hosting)", nginx))
            for name, port in targets:
                s = bench.slow_clients(chats[5], args.slow_clients, args.slow_seconds, port)
                print(
                    f"(5) {s['held']} slow clients on {name} (headers at 1 byte/s,"
                    f" {args.slow_seconds:g} s; {s['refused']} refused,"
                    f" {s['dropped_by_server']} dropped by the server): a normal poll meanwhile"
                    f" p50 {s['probe_p50']:.0f} ms max {s['probe_max']:.0f} ms,"
                    f" {s['probe_errors']} failed of {s['probe_polls'] + s['probe_errors']}",
                    flush=True,
                )
        if "memory" in only:
            mem = memory(bench.widget.pid)
            print(
                "(6) RSS per worker (peak / now): "
                + ", ".join(f"{p / 1024:.0f} / {c / 1024:.0f} MiB" for p, c in mem),
                flush=True,
            )
        return 0
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
