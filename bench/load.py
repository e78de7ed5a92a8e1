#!/usr/bin/env python
"""Bounded load test: N visitors start a chat and poll it, against the widget under gunicorn.

Loopback only, and it stops by itself. It starts everything it needs on free ports:
the ChatCaptain sandbox (its own process, in-memory state, 100 ms injected latency),
optionally redis-server, and the widget under gunicorn with gunicorn.conf.py. Then N
visitors arrive over a ramp, each starts a conversation (as htmx does) and polls every
--poll-seconds until --duration is over. It prints throughput, p50/p95/p99 latency and
errors by kind. --soak S runs S seconds and prints the RSS of the gunicorn workers every
30 s. Rate limits are off: every simulated visitor comes from 127.0.0.1.

    .venv/bin/python bench/load.py --visitors 500 --duration 60
    .venv/bin/python bench/load.py --visitors 200 --soak 600 --store redis
"""

from __future__ import annotations

import argparse
import heapq
import random
import re
import signal
import statistics
import sys
import threading
import time
from collections import Counter

import requests
from servers import Servers, worker_memory

POLLER = re.compile(r'<div id="ww-poller"[^>]*hx-get="([^"]+)".*?</div>', re.S)
VERSION = re.compile(r'name="v" value="([^"]*)"')


class Stats:
    """Latencies and outcomes, per kind of request; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {"start": [], "poll": []}
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.errors: Counter[str] = Counter()

    def record(self, kind: str, seconds: float, status: int | None, error: str | None) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            if status is not None:
                self.statuses[(kind, status)] += 1
            if error:
                self.errors[f"{kind}: {error}"] += 1


class Visitor:
    """One simulated visitor: its session handle and the poller URL it follows."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.handle: str | None = None
        self.poll_url: str | None = None

    def follow(self, html: str) -> None:
        match = POLLER.search(html)
        if match:
            url = re.sub(r"([?&])v=[^&]*&?", r"\1", match.group(1).replace("&amp;", "&"))
            url = url.rstrip("?&")
            version = VERSION.search(match.group(0))
            if version:
                url += ("&" if "?" in url else "?") + "v=" + version.group(1)
            self.poll_url = url


def run_load(base: str, args: argparse.Namespace, stats: Stats, stop_at: float) -> None:
    """Drive every visitor from a small pool of client threads until `stop_at`."""
    visitors = [Visitor(i) for i in range(args.visitors)]
    ramp = min(args.ramp, max(args.duration / 4, 1))
    now = time.monotonic()
    queue = [(now + ramp * i / max(args.visitors, 1), i) for i in range(args.visitors)]
    heapq.heapify(queue)
    lock = threading.Condition()
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    def step(visitor: Visitor) -> None:
        headers = {"HX-Request": "true"}
        if visitor.handle:
            headers["X-Widget-Session"] = visitor.handle
        kind = "poll" if visitor.poll_url else "start"
        started = time.perf_counter()
        status = error = None
        try:
            if kind == "start":
                headers["Sec-Fetch-Site"] = "same-origin"
                answer = session().post(base + "/w/default/start", headers=headers,
                                        timeout=args.timeout, allow_redirects=False)
            else:
                answer = session().get(base + visitor.poll_url, headers=headers,
                                       timeout=args.timeout)
            status = answer.status_code
            if answer.headers.get("X-Widget-Session"):
                visitor.handle = answer.headers["X-Widget-Session"]
            if status in (200, 286):
                visitor.follow(answer.text)
            if kind == "start" and (status != 200 or not visitor.poll_url):
                error = f"HTTP {status}"
                visitor.poll_url = None
            elif kind == "poll" and status not in (200, 204):
                error = f"HTTP {status}"
        except requests.RequestException as exc:
            error = type(exc).__name__
        stats.record(kind, time.perf_counter() - started, status, error)

    def worker() -> None:
        while True:
            with lock:
                while True:
                    if time.monotonic() >= stop_at:
                        return
                    if queue and queue[0][0] <= time.monotonic():
                        _, number = heapq.heappop(queue)
                        break
                    wait = (queue[0][0] - time.monotonic()) if queue else 0.05
                    lock.wait(timeout=max(0.001, min(wait, stop_at - time.monotonic())))
            step(visitors[number])
            with lock:
                # The next poll is due one interval later, with a little jitter like htmx's timers.
                due = time.monotonic() + args.poll_seconds * random.uniform(0.95, 1.05)
                heapq.heappush(queue, (due, number))
                lock.notify()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(stop_at - time.monotonic(), 0) + args.timeout + 5)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def report(stats: Stats, elapsed: float) -> int:
    """Print the summary; the number of errors."""
    everything = stats.latencies["start"] + stats.latencies["poll"]
    print(f"requests: {len(everything)} in {elapsed:.1f} s = {len(everything) / elapsed:.1f} req/s")
    for kind in ("start", "poll", "all"):
        values = everything if kind == "all" else stats.latencies[kind]
        if values:
            print(f"  {kind:5s} n={len(values):6d}  p50={percentile(values, .5) * 1000:7.1f} ms"
                  f"  p95={percentile(values, .95) * 1000:7.1f} ms"
                  f"  p99={percentile(values, .99) * 1000:7.1f} ms"
                  f"  mean={statistics.fmean(values) * 1000:7.1f} ms")
    print("statuses: " + ", ".join(f"{kind} {status}: {n}"
                                   for (kind, status), n in sorted(stats.statuses.items())))
    errors = sum(stats.errors.values())
    print(f"errors: {errors}" + "".join(f"\n  {k}: {v}" for k, v in stats.errors.most_common()))
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--soak", type=float, default=0,
                        help="run this many seconds and sample worker RSS every 30 s")
    parser.add_argument("--max-duration", type=float, default=900,
                        help="hard cap on the whole run, start-up included")
    parser.add_argument("--poll-seconds", type=float, default=3.0)
    parser.add_argument("--ramp", type=float, default=10.0, help="visitors arrive over this")
    parser.add_argument("--latency-ms", type=int, default=100, help="sandbox latency")
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--clients", type=int, default=48, help="load generator threads")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.soak:
        args.duration = args.soak
    if args.duration + 60 > args.max_duration:
        parser.error("--duration (or --soak) must leave a minute under --max-duration")
    hard_stop = time.monotonic() + args.max_duration
    # A watchdog: whatever happens, the run ends (leaving `with Servers` stops the servers).
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(SystemExit("max duration")))
    signal.alarm(int(args.max_duration))

    try:
        with Servers("webwidget-bench-") as servers:
            return run(args, servers, hard_stop)
    finally:
        signal.alarm(0)


def run(args: argparse.Namespace, servers: Servers, hard_stop: float) -> int:
    sandbox = servers.sandbox()
    sandbox.latency(args.latency_ms)
    if args.store == "redis":
        store = servers.redis()
    else:
        store = f"sqlite:///{servers.work / 'sessions.sqlite3'}"
    env = servers.widget_env(
        sandbox,
        SESSION_STORE_URL=store,
        WIDGET_POLL_SECONDS=str(args.poll_seconds),
        RATE_LIMIT_ENABLED="false",
        WEB_CONCURRENCY=str(args.workers),
        GUNICORN_THREADS=str(args.threads),
        PROMETHEUS_MULTIPROC_DIR=str(servers.work / "metrics"),
    )
    gunicorn = servers.gunicorn(env)
    base = gunicorn.url
    print(f"widget {base} (gunicorn gthread {args.workers}x{args.threads}, {args.store}), "
          f"sandbox latency {args.latency_ms} ms, {args.visitors} visitors polling every "
          f"{args.poll_seconds:g} s for {args.duration:g} s, {args.clients} client threads",
          flush=True)

    stats = Stats()
    began = time.monotonic()
    stop_at = min(began + args.duration, hard_stop - 30)
    load = threading.Thread(target=run_load, args=(base, args, stats, stop_at), daemon=True)
    load.start()
    if args.soak:
        while load.is_alive():
            rss = {pid: now for pid, (_, now) in worker_memory(gunicorn.proc.pid).items()}
            total = len(stats.latencies["poll"])
            print(f"t={time.monotonic() - began:5.0f} s  polls={total:7d}  worker RSS: "
                  + ", ".join(f"{pid}={kib / 1024:.1f} MiB"
                              for pid, kib in sorted(rss.items())),
                  flush=True)
            load.join(timeout=30)
    load.join()
    errors = report(stats, time.monotonic() - began)
    print("sandbox saw: " + ", ".join(f"{k}={v}" for k, v in sandbox.stats().items()))
    return 1 if errors else 0

if __name__ == "__main__":
    sys.exit(main())
