#!/usr/bin/env python
"""Open-loop visitors that poll exactly as the widget's htmx poller does (issue 13).

Each visitor opens the page with its own session (one keep-alive connection), reads
the poller from it, then polls its URL every `i` seconds, the interval the server
hints; a 200 with a new poller changes the URL (and so the interval), a 204 keeps it.
Visitors arrive evenly over `--ramp` seconds and all stop at `--seconds`.

asyncio on raw sockets, one process, so that the generator stays cheap; it reports its
own CPU time. Prints one JSON object. Used by bench/capacity.py:

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

POLLER = re.compile(rb'id="ww-poller".*?hx-get="([^"]+)"', re.S)


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


async def exchange(reader, writer, request: bytes) -> tuple[int, bytes]:
    """Send one request on a keep-alive connection; the status and the body."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
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

    def __init__(self, port: int, stats: Stats) -> None:
        self.port, self.stats = port, stats
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, limit=1 << 20
        )

    async def get(self, request: bytes) -> tuple[int, bytes]:
        reused = self.writer is not None
        if not reused:
            await self.open()
        try:
            return await exchange(self.reader, self.writer, request)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as error:
            partial = getattr(error, "partial", b"")
            if not reused or partial:
                raise
            self.stats.reconnects += 1
            self.close()
            await self.open()
            return await exchange(self.reader, self.writer, request)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def visitor(n, chat, args, stats: Stats, stop_at: float) -> None:
    """`chat` is a session handle (the visitor opens the page first) or [handle, poller
    URL] (the page is open already: the visitor starts polling, its last change now)."""
    await asyncio.sleep(n * args.ramp / max(args.count, 1))
    handle, url = (chat, None) if isinstance(chat, str) else chat
    cookie = f"Cookie: __Host-ww_session-default={handle}\r\n".encode()
    host = f"Host: 127.0.0.1:{args.port}\r\n".encode()
    conn = Connection(args.port, stats)
    try:
        if url is None:
            started = time.perf_counter()
            status, body = await conn.get(b"GET /w/default HTTP/1.1\r\n" + host + cookie + b"\r\n")
            stats.page_ms.append((time.perf_counter() - started) * 1000)
            stats.count("page", status)
            found = POLLER.search(body)
            if status != 200 or not found:
                stats.error(f"page {status} without a poller")
                return
            url = found.group(1).decode().replace("&amp;", "&")
        else:
            url = re.sub(r"t=\d+", f"t={int(time.time())}", url)
        while True:
            wait = interval_of(url)
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
            status, body = await conn.get(request)
            stats.poll_ms.append((time.perf_counter() - started) * 1000)
            stats.count("poll", status)
            if status not in (200, 204):
                stats.error(f"poll HTTP {status}")
                continue
            found = POLLER.search(body) if status == 200 else None
            if found:
                url = found.group(1).decode().replace("&amp;", "&")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
        stats.error(f"{type(error).__name__}")
    finally:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def main_async(args) -> dict:
    handles = json.loads(open(args.handles).read())[: args.count]
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
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--handles",
        required=True,
        help="JSON list of session handles, or of [handle, poller URL] pairs",
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--ramp", type=float, default=30)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
