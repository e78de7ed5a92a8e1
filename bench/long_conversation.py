#!/usr/bin/env python
"""A 20,000-message conversation against the widget as its Procfile runs it (issue 20,
item 7): its page load, next to a short chat's and to the bare upstream call, and the
polls of other visitors while it is loaded again and again, next to the same polls
without it. Prints one line per figure.

    .venv/bin/python bench/long_conversation.py [--messages 20000] [--loads 30] [--big 200]

`--big N` makes the newest N messages texts of 100 KB each (the window's worst case:
200 of them are 20 MB of the list).

The sandbox keeps its state in a file, so the long conversation is written straight into
it (a copy of the greeting with new ids) instead of 20,000 sends.
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import statistics
import sys
import threading
import time
from pathlib import Path

import requests
from servers import Sandbox, Servers, worker_memory

HEADERS = {"Sec-Fetch-Site": "same-origin", "HX-Request": "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(url: str) -> str:
    """A new chat; its handle."""
    answer = requests.post(f"{url}/w/default/start", headers=HEADERS, timeout=30)
    answer.raise_for_status()
    return answer.headers["X-Widget-Session"]


def newest_conversation(state: Path) -> str:
    with sqlite3.connect(state) as db:
        return db.execute("SELECT id FROM conversations ORDER BY rowid DESC LIMIT 1").fetchone()[0]


def grow(state: Path, conversation: str, messages: int, big: int = 0) -> int:
    """Append `messages` copies of the conversation's first message, the newest `big` of
    them 100 KB texts; the list's size."""
    with sqlite3.connect(state) as db:
        body = json.loads(db.execute(
            "SELECT body FROM messages WHERE conversation_id = ? ORDER BY seq LIMIT 1",
            (conversation,),
        ).fetchone()[0])
        rows = []
        for i in range(messages):
            copy = dict(body, id=f"msg_bench_{i:06d}")
            copy["content"] = {"text": f"Message {i} of a long conversation, about as long "
                                       "as a real one usually is."}
            if i >= messages - big:
                copy["content"] = {"text": f"Message {i}, 100 KB: " + "x" * 100_000}
            rows.append((conversation, 0.0, json.dumps(copy)))
        db.executemany(
            "INSERT INTO messages (conversation_id, visible_at, body) VALUES (?, ?, ?)", rows
        )
    return sum(len(r[2]) for r in rows)


def list_upstream(url: str, state: Path) -> None:
    """The long conversation's list, straight from the sandbox (what the widget waits for)."""
    with sqlite3.connect(state) as db:
        conversation, contact = db.execute(
            "SELECT c.id, c.contact_id FROM conversations c JOIN messages m"
            " ON m.conversation_id = c.id WHERE m.body LIKE '%msg_bench_000000%'"
        ).fetchone()
        token = db.execute(
            "SELECT token FROM tokens WHERE contact_id = ? ORDER BY expires_at DESC LIMIT 1",
            (contact,),
        ).fetchone()[0]
    answer = requests.get(
        f"{url}/v1/widget/demo-bot/conversations/{conversation}/messages",
        params={"token": token}, timeout=60,
    )
    answer.raise_for_status()


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def page(url: str, handle: str) -> None:
    answer = requests.get(f"{url}/w/default", headers={"X-Widget-Session": handle}, timeout=30)
    assert answer.status_code == 200, answer.status_code


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def polls_while(url: str, handles: list[str], seconds: float, busy=None) -> list[float]:
    """Other visitors' polls (one thread each) for `seconds`, while `busy` runs beside."""
    timings: list[float] = []
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def visitor(handle: str) -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            ms = timed(lambda: session.get(f"{url}/w/default/messages", timeout=30, headers={
                "X-Widget-Session": handle, "HX-Request": "true"}))
            with lock:
                timings.append(ms)
            time.sleep(0.25)

    def loader() -> None:
        while time.monotonic() < stop:
            busy()

    threads = [threading.Thread(target=visitor, args=(h,)) for h in handles]
    if busy is not None:
        threads.append(threading.Thread(target=loader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--loads", type=int, default=30)
    parser.add_argument("--others", type=int, default=20)
    parser.add_argument("--big", type=int, default=0, help="newest messages of 100 KB")
    args = parser.parse_args()
    with Servers(prefix="ww-long-") as servers:
        state = servers.work / "sandbox.sqlite3"
        port = free_port()
        proc = servers.spawn(
            [str(Path(sys.executable).parent / "webwidget"), "sandbox", "--host", "127.0.0.1",
             "--port", str(port), "--state", str(state)],
            "sandbox",
        )
        sandbox = Sandbox(f"http://127.0.0.1:{port}")
        servers.wait_http(sandbox.url + "/_sandbox/stats", proc)
        env = servers.widget_env(sandbox)
        for name in ("START_PER_IP", "START_PER_NETWORK", "START_PER_WIDGET"):
            env[f"RATE_LIMIT_{name}"] = "100000/minute"
        widget = servers.gunicorn(env)
        short = start(widget.url)
        long = start(widget.url)
        size = grow(state, newest_conversation(state), args.messages, args.big)
        others = [start(widget.url) for _ in range(args.others)]
        for handle in (short, long, *others):
            page(widget.url, handle)  # warm: the first load fills the caches

        short_ms = [timed(lambda: page(widget.url, short)) for _ in range(args.loads)]
        long_ms = [timed(lambda: page(widget.url, long)) for _ in range(args.loads)]
        upstream_ms = [timed(lambda: list_upstream(sandbox.url, state)) for _ in range(5)]
        print(f"conversation of {args.messages} messages ({args.big} of 100 KB), "
              f"list {size / 1e6:.1f} MB; "
              f"{args.loads} page loads each, one after another; load {servers_load()}")
        print(f"page load, short chat:  p50 {statistics.median(short_ms):.0f} ms, "
              f"p95 {percentile(short_ms, 0.95):.0f} ms")
        print(f"page load, long chat:   p50 {statistics.median(long_ms):.0f} ms, "
              f"p95 {percentile(long_ms, 0.95):.0f} ms (target < 300 ms)")
        print(f"of which the sandbox's own list call: p50 {statistics.median(upstream_ms):.0f} ms "
              "(the whole list, read directly)")
        quiet = polls_while(widget.url, others, 10)
        busy = polls_while(widget.url, others, 10, busy=lambda: page(widget.url, long))
        print(f"{args.others} other visitors' polls: p99 {percentile(quiet, 0.99):.0f} ms alone, "
              f"{percentile(busy, 0.99):.0f} ms while the long chat loads without pause "
              f"(p50 {statistics.median(quiet):.0f} / {statistics.median(busy):.0f} ms)")
        memory = worker_memory(widget.proc.pid)
        print("worker RSS now / peak: " + ", ".join(
            f"{rss / 1024:.0f} / {peak / 1024:.0f} MiB" for peak, rss in memory.values()))


def servers_load() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


if __name__ == "__main__":
    sys.exit(main())
