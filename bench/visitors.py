#!/usr/bin/env python
"""Open-loop visitors that follow the widget's poller exactly as the page does (issues 13, 21).

Each visitor has its own session (one keep-alive connection) and reads the poller from
the page; then it does what the poller's `hx-trigger` says: `every Ns` polls its URL
every N seconds (a 204 keeps the URL, a 200 with a new poller changes it), `load` asks
again as soon as an answer brings a new poller (a held poll: the server answers when
the conversation changes or the hold ends). Visitors arrive evenly over `--ramp`
seconds and all stop at `--seconds`.

asyncio on raw sockets, one process, so that the generator stays cheap; it reports its
own CPU time. Prints one JSON object.

    python bench/visitors.py --url http://127.0.0.1:8000 --visitors 2000 --seconds 90

starts a chat per visitor on arrival (`POST /w/default/start` as htmx sends it; the
widget's start limits must allow that many: RATE_LIMIT_START_PER_IP, _PER_NETWORK and
_PER_WIDGET),
so it needs nothing but the URL. bench/capacity.py passes chats it started itself:

    python bench/visitors.py --port 8000 --handles handles.json --seconds 90 --ramp 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import time
from urllib.parse import parse_qs, urlsplit

POLLER = re.compile(rb'<div id="ww-poller"[^>]*>', re.S)
ATTRIBUTE = re.compile(rb'(hx-get|hx-trigger)="([^"]*)"')
HANDLE = re.compile(rb"^x-widget-session:\s*(\S+)", re.I | re.M)
# A held poll may take this long to answer (the server's hold plus slack).
HELD_TIMEOUT = 60.0


def poller_of(body: bytes) -> tuple[str, str] | None:
    """(URL, hx-trigger) of the poller in `body`, if it has one."""
    found = POLLER.search(body)
    if not found:
        return None
    attrs = dict(ATTRIBUTE.findall(found.group(0)))
    if b"hx-get" not in attrs:
        return None
    url = attrs[b"hx-get"].decode().replace("&amp;", "&")
    return url, attrs.get(b"hx-trigger", b"").decode()


def held(trigger: str, url: str = "") -> bool:
    """Whether the poller asks again as soon as it is replaced (a held poll); a URL
    without its trigger (from --handles) says so by its `m=h`."""
    if not trigger:
        return "m=h" in url
    return trigger.split(",")[0].strip() == "load"


def every(trigger: str, url: str) -> float:
    """The short poller's interval: its `every Ns`, else the URL's `i`."""
    found = re.search(r"every ([\d.]+)s", trigger)
    return float(found.group(1)) if found else interval_of(url)


class Stats:
    def __init__(self) -> None:
        self.poll_ms: list[float] = []
        self.page_ms: list[float] = []
        self.statuses: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.reconnects = 0

    def count(self, kind: str, status: int) -> None:
        key = f"{kind} {status}"
        self.statuses[key] = self.statuses.get(key, 0) + 1

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def exchange(reader, writer, request: bytes, head_out: list | None = None):
    """Send one request on a keep-alive connection; the status and the body."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if head_out is not None:
        head_out.append(head)
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            raise RuntimeError("chunked answers are not expected")
    body = await reader.readexactly(length) if length else b""
    return status, body


def interval_of(url: str) -> float:
    values = parse_qs(urlsplit(url).query)
    return float(values.get("i", ["3"])[0])


class Connection:
    """One visitor's keep-alive connection; reopened when the server closed it while idle
    (gunicorn's keepalive), as a browser does, and the GET sent again once."""

    def __init__(self, port: int, stats: Stats, host: str = "127.0.0.1") -> None:
        self.port, self.stats, self.host = port, stats, host
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, limit=1 << 20
        )

    async def get(self, request: bytes, head: list | None = None) -> tuple[int, bytes]:
        reused = self.writer is not None
        if not reused:
            await self.open()
        try:
            return await exchange(self.reader, self.writer, request, head)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as error:
            partial = getattr(error, "partial", b"")
            if not reused or partial:
                raise
            self.stats.reconnects += 1
            self.close()
            await self.open()
            return await exchange(self.reader, self.writer, request, head)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def visitor(n, chat, args, stats: Stats, stop_at: float) -> None:
    """`chat` is None (the visitor starts its own chat), a session handle (it opens the
    page first) or [handle, poller URL] (the page is open already: it starts polling,
    its last change now)."""
    await asyncio.sleep(n * args.ramp / max(args.count, 1))
    handle, url = (chat, None) if not isinstance(chat, list) else chat
    host = f"Host: {args.host}:{args.port}\r\n".encode()
    conn = Connection(args.port, stats, args.host)
    trigger = ""
    try:
        if handle is None:
            started = time.perf_counter()
            head: list[bytes] = []
            status, body = await conn.get(
                b"POST /w/default/start HTTP/1.1\r\n" + host + b"HX-Request: true\r\n"
                b"Sec-Fetch-Site: same-origin\r\nContent-Type: application/x-www-form-urlencoded"
                b"\r\nContent-Length: 0\r\n\r\n",
                head,
            )
            stats.page_ms.append((time.perf_counter() - started) * 1000)
            stats.count("start", status)
            found = HANDLE.search(head[0]) if head else None
            poller = poller_of(body)
            if status != 200 or not found or not poller:
                stats.error(f"start {status} without a session or a poller")
                return
            handle = found.group(1).decode()
            url, trigger = poller
        cookie = f"Cookie: __Host-ww_session-default={handle}\r\n".encode()
        if url is None:
            started = time.perf_counter()
            status, body = await conn.get(b"GET /w/default HTTP/1.1\r\n" + host + cookie + b"\r\n")
            stats.page_ms.append((time.perf_counter() - started) * 1000)
            stats.count("page", status)
            poller = poller_of(body)
            if status != 200 or not poller:
                stats.error(f"page {status} without a poller")
                return
            url, trigger = poller
        elif not trigger:
            url = re.sub(r"t=\d+", f"t={int(time.time())}", url)
        while True:
            wait = 0.0 if held(trigger, url) else every(trigger, url)
            if time.perf_counter() + wait >= stop_at:
                return
            await asyncio.sleep(wait)
            request = (
                f"GET {url} HTTP/1.1\r\n".encode()
                + host
                + cookie
                + b"HX-Request: true\r\nHX-Trigger: ww-poller\r\n\r\n"
            )
            started = time.perf_counter()
            remaining = stop_at - time.perf_counter()
            try:
                status, body = await asyncio.wait_for(
                    conn.get(request), timeout=min(HELD_TIMEOUT, max(remaining, 0.001))
                )
            except TimeoutError:
                if time.perf_counter() >= stop_at - 0.01:
                    return  # the run ended while a poll was held: not an error
                raise
            stats.poll_ms.append((time.perf_counter() - started) * 1000)
            stats.count("poll", status)
            if status not in (200, 204):
                stats.error(f"poll HTTP {status}")
                continue
            poller = poller_of(body) if status == 200 else None
            if poller:
                url, trigger = poller
            elif held(trigger, url):
                stats.error("held poll answered without a new poller")
                return
    except (
        TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError
    ) as error:
        stats.error(f"{type(error).__name__}")
    finally:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def main_async(args) -> dict:
    if args.handles:
        handles = json.loads(open(args.handles).read())[: args.count]
    else:
        handles = [None] * args.count
    args.count = len(handles)
    stats = Stats()
    began = time.perf_counter()
    stop_at = began + args.seconds
    await asyncio.gather(*(visitor(n, h, args, stats, stop_at) for n, h in enumerate(handles)))
    wall = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "visitors": args.count,
        "seconds": wall,
        "polls": len(stats.poll_ms),
        "polls_per_s": len(stats.poll_ms) / wall,
        "poll_p50_ms": percentile(stats.poll_ms, 50),
        "poll_p99_ms": percentile(stats.poll_ms, 99),
        "poll_max_ms": max(stats.poll_ms, default=float("nan")),
        "page_p50_ms": percentile(stats.page_ms, 50),
        "page_p99_ms": percentile(stats.page_ms, 99),
        "statuses": stats.statuses,
        "errors": stats.errors,
        "reconnects": stats.reconnects,
        "cpu_seconds": cpu,
        "cpu_share_of_one_core": cpu / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="the widget, e.g. http://127.0.0.1:8000")
    parser.add_argument("--port", type=int, help="the widget on 127.0.0.1 (with --handles)")
    parser.add_argument(
        "--handles",
        help="JSON list of session handles, or of [handle, poller URL] pairs (else each"
        " visitor starts its own chat)",
    )
    parser.add_argument("--visitors", "--count", dest="count", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--ramp", type=float, default=30)
    args = parser.parse_args()
    args.host = "127.0.0.1"
    if args.url:
        parts = urlsplit(args.url)
        args.host, args.port = parts.hostname, parts.port or 80
    if args.port is None:
        parser.error("--url or --port is required")
    print(json.dumps(asyncio.run(main_async(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
