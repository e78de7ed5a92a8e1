#!/usr/bin/env python
"""Capacity when ChatCaptain is slow (issue 13): every figure side by side in one run.

Starts the ChatCaptain sandbox (own process) and the widget exactly as the Procfile
runs it (its command on a loopback port, `gunicorn.conf.py`, the project's default
settings: SQLite sessions, rate limits on, access log on), plus a bare Flask app under
the same gunicorn config (bench/servers.py starts them all). The conversations are
created beforehand by a second widget process on the same session file with rate limits
off (2,000 starts from one address would hit the per-IP limit), which is stopped before
anything is measured. Then it prints:

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
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from servers import (
    ROOT,
    START_HEADERS,
    Servers,
    calls_per_minute_with_tabs,
    gunicorn_settings,
    load_average,
    poller_url,
    procfile_command,
    worker_memory,
    wrk,
)

# Other mechanisms the table can be measured with in the same run (--compare).
COMPARE = {
    "wait": {"UPSTREAM_REFRESH_CALLS": "0"},
    # The worker before issue 21 made gevent the default.
    "gthread": {"GUNICORN_WORKER_CLASS": "gthread"},
    "gevent": {"GUNICORN_WORKER_CLASS": "gevent"},
    "gevent-wait": {"GUNICORN_WORKER_CLASS": "gevent", "UPSTREAM_REFRESH_CALLS": "0"},
}
WRK_TIMEOUT = 30  # seconds: a slow poll is measured, not dropped as a timeout
CEILING_ROUNDS = 4


def combined(runs: list[dict]) -> dict:
    """Runs taking turns as one: mean requests/s, median p50, worst p99, all errors."""
    p50s = sorted(run["p50"] for run in runs)
    return {
        "rps": sum(run["rps"] for run in runs) / len(runs),
        "p50": p50s[len(p50s) // 2],
        "p99": max(run["p99"] for run in runs),
        "errors": sum(run["errors"] for run in runs),
    }


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


def tab_headers(handle: str) -> dict[str, str]:
    """What a visitor's tab sends with each htmx poll."""
    return {"HX-Request": "true", "Cookie": f"__Host-ww_session-default={handle}"}


class Bench:
    def __init__(self, args, servers: Servers) -> None:
        self.args = args
        self.servers = servers
        self.work = servers.work

    # --- set-up -----------------------------------------------------------------------

    def start_servers(self) -> None:
        self.sandbox = self.servers.sandbox(keep_alive=not self.args.werkzeug_sandbox)

    def create_conversations(self, count: int) -> list[tuple[str, str]]:
        """`count` started chats: (session handle, poller URL of the current list)."""
        setup = self.servers.gunicorn(
            self.servers.widget_env(self.sandbox, RATE_LIMIT_ENABLED="false"),
            access_log=True,
            name="setup",
        )

        def start(_: int) -> str:
            with requests.Session() as s:
                r = s.post(setup.url + "/w/default/start", headers=START_HEADERS, timeout=60)
                r.raise_for_status()
                return r.headers["X-Widget-Session"]

        with ThreadPoolExecutor(16) as pool:
            started = list(pool.map(start, range(count)))
        # Let every delayed greeting part become visible, then read each current poller.
        self.sandbox.advance(30)

        def current(handle: str) -> tuple[str, str]:
            page = requests.get(
                setup.url + "/w/default",
                headers={"Cookie": f"__Host-ww_session-default={handle}"},
                timeout=60,
            )
            page.raise_for_status()
            return handle, poller_url(page.text)

        with ThreadPoolExecutor(16) as pool:
            chats = list(pool.map(current, started))
        self.servers.stop(setup.proc)
        return chats

    def start_widget(self, **extra: str) -> None:
        widget = self.servers.gunicorn(
            self.servers.widget_env(self.sandbox, **extra), access_log=True
        )
        self.widget, self.widget_port, self.base = widget.proc, widget.port, widget.url

    def start_bare(self) -> None:
        self.bare = self.servers.bare(access_log=True).url

    # --- measurements -------------------------------------------------------------------

    def latency_table(self, chats) -> dict[int, dict]:
        lua = self.work / "rotate.lua"
        lua.write_text(rotate_lua(chats))
        results = {}
        # Warm-up, not measured: every worker has seen the conversations once, as it has
        # in a running deployment (its first poll of a conversation fetches in any mode).
        self.sandbox.latency(0)
        wrk(
            self.base + "/",
            max(self.args.seconds, 8),
            self.args.connections,
            lua,
            timeout=WRK_TIMEOUT,
        )
        for ms in (0, 100, 300):
            self.sandbox.latency(ms)
            time.sleep(2.0)  # let the lists cached before go stale
            before = self.sandbox.list_calls()
            result = wrk(
                self.base + "/", self.args.seconds, self.args.connections, lua, timeout=WRK_TIMEOUT
            )
            result["upstream"] = (self.sandbox.list_calls() - before) / self.args.seconds
            results[ms] = result
        self.sandbox.latency(0)
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
        # Short runs taking turns, so that both sides meet the same neighbours on a shared
        # machine (one long run each let a burst of other work land on one side only).
        rounds, seconds = CEILING_ROUNDS, max(2.0, self.args.seconds / CEILING_ROUNDS)
        bares, polls = [], []
        for _ in range(rounds):
            bares.append(wrk(self.bare + "/", seconds, 32, bare_lua, timeout=WRK_TIMEOUT))
            polls.append(wrk(self.base + "/", seconds, 32, lua, timeout=WRK_TIMEOUT))
        return combined(polls), combined(bares)

    def shared_store_tabs(self, counts: tuple[int, ...]) -> list[float]:
        """(3) again with Redis as the session store and two instances of the widget: the
        tabs' polls go to either instance in turn, as a load balancer would send them."""
        env = self.servers.widget_env(self.sandbox, SESSION_STORE_URL=self.servers.redis())
        instances = [self.servers.gunicorn(env, name=f"shared-{n}").url for n in (1, 2)]
        results = []
        for n in counts:
            with requests.Session() as s:
                r = s.post(instances[0] + "/w/default/start", headers=START_HEADERS, timeout=60)
                r.raise_for_status()
                handle = r.headers["X-Widget-Session"]
                page = s.get(instances[0] + "/w/default", headers=tab_headers(handle), timeout=60)
            url = re.sub(r"i=[^&]*", "i=1.5", poller_url(page.text))
            turn = itertools.count()

            def poll(s: requests.Session, handle=handle, url=url, turn=turn) -> None:
                fresh = re.sub(r"t=\d+", f"t={int(time.time())}", url)
                base = instances[next(turn) % len(instances)]
                s.get(base + fresh, headers=tab_headers(handle), timeout=30)

            results.append(calls_per_minute_with_tabs(self.sandbox, n, poll))
        return results

    def tabs(self, chat: tuple[str, str], n: int) -> float:
        """Upstream list calls per minute for one conversation polled by `n` tabs (1.5 s)."""
        handle, url = chat
        url = re.sub(r"i=[^&]*", "i=1.5", url)

        def poll(s: requests.Session) -> None:
            fresh = re.sub(r"t=\d+", f"t={int(time.time())}", url)
            s.get(self.base + fresh, headers=tab_headers(handle), timeout=30)

        return calls_per_minute_with_tabs(self.sandbox, n, poll)

    def visitors(self, chats, latency_ms: int, open_pages: bool) -> dict:
        handles = self.work / "handles.json"
        handles.write_text(json.dumps([h for h, _ in chats] if open_pages else chats))
        self.sandbox.latency(latency_ms)
        before = self.sandbox.list_calls()
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
        self.sandbox.latency(0)
        if out.returncode != 0:
            raise SystemExit(f"visitors failed: {out.stderr[-2000:]}")
        result = json.loads(out.stdout)
        result["upstream_per_s"] = (self.sandbox.list_calls() - before) / result["seconds"]
        return result

    def slow_clients(
        self, chat: tuple[str, str], count: int, seconds: float, port: int | None = None
    ) -> dict:
        """`count` connections dripping request headers at 1 byte/s; a normal poll meanwhile."""
        port = port or self.widget_port
        self.sandbox.latency(300)
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
                        headers=tab_headers(handle),
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
        self.sandbox.latency(0)
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
    c = gunicorn_settings()
    return (
        f"worker_class={c['worker_class']} workers={c['workers']} threads={c['threads']}"
        f" worker_connections={c['worker_connections']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8, help="each wrk run")
    parser.add_argument("--connections", type=int, default=512, help="wrk connections in (1)")
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--visitor-seconds", type=float, default=90)
    parser.add_argument("--ramp", type=float, default=30)
    parser.add_argument("--visitor-latency", type=int, default=300)
    parser.add_argument(
        "--werkzeug-sandbox",
        action="store_true",
        help="serve the sandbox with werkzeug (a new connection per upstream call), as"
        " before, instead of gunicorn with keep-alive as the real API",
    )
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
    with Servers("ww-capacity-") as servers:
        bench = Bench(args, servers)
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
            servers.stop(bench.widget)
            bench.start_widget(**COMPARE[mode])
            print_table(f"{mode} ({' '.join(f'{k}={v}' for k, v in COMPARE[mode].items())})")
        if args.compare:
            servers.stop(bench.widget)
            bench.start_widget()
        if "ceiling" in only:
            poll, bare = bench.ceiling(chats[0])
            print(
                f"(2) unchanged poll, {CEILING_ROUNDS} rounds taking turns with bare Flask:"
                f" {poll['rps']:.0f} req/s (p50 {poll['p50']:.1f} ms, p99 "
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
            one, five, twenty = bench.shared_store_tabs((1, 5, 20))
            print(
                f"(3) the same with Redis sessions and two instances, tabs alternating between"
                f" them: 1 tab {one:.0f}, 5 tabs {five:.0f}, 20 tabs {twenty:.0f}",
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
            nginx = servers.nginx(bench.widget_port)
            if nginx:
                targets.append(("nginx in front (docs/hosting)", nginx.port))
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
            mem = worker_memory(bench.widget.pid).values()
            print(
                "(6) RSS per worker (peak / now): "
                + ", ".join(f"{p / 1024:.0f} / {c / 1024:.0f} MiB" for p, c in mem),
                flush=True,
            )
        return 0


if __name__ == "__main__":
    sys.exit(main())
