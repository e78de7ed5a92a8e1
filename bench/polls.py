#!/usr/bin/env python
"""Poll benchmark against the ceiling (issue 7). Loopback only; stops by itself.

Starts redis-server, the sandbox, the widget under gunicorn.conf.py and a bare Flask
app under the same config, then prints (a) to (f) in one run. Needs wrk
(`apt-get install -y wrk`).

    .venv/bin/python bench/polls.py [--seconds 4] [--connections 32]
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import socket
import statistics
import sys
import time

import redis
import requests
from servers import (
    SECRET,
    START_HEADERS,
    Servers,
    calls_per_minute_with_tabs,
    gunicorn_settings,
    poller_url,
    worker_memory,
    wrk,
)

LUA = """wrk.headers["HX-Request"] = "true"
wrk.headers["X-Widget-Session"] = os.getenv("WW_HANDLE")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    with Servers("ww-bench-") as servers:
        store = servers.redis()
        sandbox = servers.sandbox()
        env = servers.widget_env(
            sandbox,
            SESSION_STORE_URL=store,
            RATE_LIMIT_ENABLED="false",
            PROMETHEUS_MULTIPROC_DIR=str(servers.work / "m"),
        )
        app = servers.gunicorn(env)
        base, wport = app.url, app.port
        bare = servers.bare().url
        work = servers.work
        lua = work / "poll.lua"
        lua.write_text(LUA)
        cfg = gunicorn_settings()
        print(
            f"gunicorn.conf.py: {cfg['worker_class']} workers={cfg['workers']}"
            f" threads={cfg['threads']}; session store redis; "
            f"wrk -t2 -c{args.connections} -d{args.seconds:g}s; {os.cpu_count()} cores (shared)"
        )

        def start() -> tuple[str, str]:
            s = requests.Session()
            r = s.post(base + "/w/default/start", headers=START_HEADERS, timeout=10)
            return r.headers["X-Widget-Session"], poller_url(r.text)

        def send(handle: str, text: str) -> None:
            requests.post(
                base + "/w/default/send",
                data={"text": text},
                timeout=10,
                headers={**START_HEADERS, "X-Widget-Session": handle},
            ).raise_for_status()

        # (a) unchanged poll vs the bare Flask ceiling
        handle, url = start()
        r = requests.get(base + url, headers={"HX-Request": "true", "X-Widget-Session": handle})
        assert r.status_code == 204, r.status_code
        ceiling = wrk(bare + "/", args.seconds, args.connections, lua)
        before = sandbox.list_calls()
        poll = wrk(base + url, args.seconds, args.connections, lua, env={"WW_HANDLE": handle})
        upstream_during = sandbox.list_calls() - before
        print(
            f"(a) unchanged poll: {poll['rps']:.0f} req/s p50 {poll['p50']:.2f} ms p99 "
            f"{poll['p99']:.2f} ms | bare Flask: {ceiling['rps']:.0f} req/s p50 "
            f"{ceiling['p50']:.2f} ms | ratio {poll['rps'] / ceiling['rps']:.2f} "
            f"(target >= 0.50); upstream calls during the run: {upstream_during}"
            f"{' NON-2XX SEEN' if poll['non_2xx'] else ''}"
        )

        # (b) changed poll with 50 messages vs the direct upstream call. The poll measured
        # is one that fetches the list itself: polls wait on the upstream in this widget
        # (UPSTREAM_REFRESH_CALLS=0), as every poll did when this target was set; on the
        # same store, so it reads the conversation the first widget started.
        waiting = servers.gunicorn({**env, "UPSTREAM_REFRESH_CALLS": "0"}, name="waiting")
        rclient = redis.Redis.from_url(store)
        for n in range(24):
            send(handle, f"message {n}")
        sandbox.advance(10)
        page = requests.get(base + "/w/default", headers={"X-Widget-Session": handle}).text
        count = page.count("data-message-id=")
        record = load_chat(store, handle)
        direct_url = (
            f"{sandbox.url}/v1/widget/demo-bot/conversations/{record['conversationId']}/messages"
        )
        direct, changed = [], []
        sess = requests.Session()
        wsess = requests.Session()
        base_url = poller_url(page)
        # One new message after the page's version: each poll is a one-message delta.
        send(handle, "one more")
        for _ in range(40):
            t0 = time.perf_counter()
            sess.get(direct_url, params={"token": record["widgetToken"]}, timeout=10)
            direct.append((time.perf_counter() - t0) * 1000)
            for key in rclient.scan_iter("ww:msgs:*"):
                if key.count(b":") == 2:  # the cached list, not its states or lock
                    rclient.delete(key)
            t0 = time.perf_counter()
            r = wsess.get(
                waiting.url + base_url,
                headers={"HX-Request": "true", "X-Widget-Session": handle},
            )
            changed.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200 and "beforeend:#ww-log" in r.text, (
                r.status_code,
                r.text[:300],
            )
        dp50, cp50 = statistics.median(direct), statistics.median(changed)
        print(
            f"(b) changed poll, {count} messages, one-message delta: p50 {cp50:.2f} ms vs direct "
            f"upstream call p50 {dp50:.2f} ms = +{cp50 - dp50:.2f} ms (target <= 5 ms); "
            f"delta body {len(r.content)} B"
        )

        servers.stop(waiting.proc)

        # (c) upstream calls per conversation per minute, 1 and 5 tabs at the fast interval
        def tabs(n: int) -> float:
            handle, url = start()
            time.sleep(1.0)
            headers = {"HX-Request": "true", "X-Widget-Session": handle}
            return calls_per_minute_with_tabs(
                sandbox, n, lambda s: s.get(base + url, headers=headers)
            )

        one, five = tabs(1), tabs(5)
        print(
            f"(c) upstream list calls per conversation per minute (polling every 1.5 s): "
            f"1 tab {one:.0f}, 5 tabs {five:.0f} (target: no growth with tabs)"
        )

        # (d) bytes on the wire
        html = requests.get(base + "/w/default", headers={"X-Widget-Session": handle}).text
        first = len(gzip.compress(html.encode(), 6))
        parts = [f"page {first} B (gzip by the proxy)"]
        for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', html):
            got = requests.get(
                base + asset.replace("&amp;", "&"), headers={"Accept-Encoding": "gzip"}, stream=True
            )
            size = len(got.raw.read(decode_content=False))
            first += size
            parts.append(f"{asset.split('?')[0].rsplit('/', 1)[1]} {size} B")
        req, resp = wire_poll(wport, poller_url(html), handle)
        print(
            f"(d) first open {first} B gzip = " + ", ".join(parts) + " (target <= 30 KB); "
            f"unchanged poll {req + resp} B = request {req} B + response {resp} B, no body "
            f"(target < 1 KB)"
        )

        # (e) peak RSS per worker
        peaks = [peak for peak, _ in worker_memory(app.proc.pid).values()]
        print(f"(e) peak RSS per worker: {', '.join(f'{p / 1024:.1f} MiB' for p in peaks)}")

        # (f) polls/s with 100 ms of upstream latency vs none: 200 conversations, every
        # poll due (i=1 s), wrk rotating through their handles
        handles = []
        for _ in range(200):
            h, u = start()
            handles.append((h, u))
        rot = work / "rotate.lua"
        rot.write_text(rotate_lua(handles))
        results = {}
        for latency in (0, 100):
            sandbox.latency(latency)
            time.sleep(1.0)
            before = sandbox.list_calls()
            results[latency] = wrk(base + "/", args.seconds, args.connections * 2, rot)
            results[latency]["upstream"] = (sandbox.list_calls() - before) / args.seconds
        ratio = results[100]["rps"] / results[0]["rps"]
        print(
            f"(f) polls/s over 200 conversations: no latency {results[0]['rps']:.0f} "
            f"(p50 {results[0]['p50']:.1f} ms, {results[0]['upstream']:.0f} upstream calls/s), "
            f"100 ms latency {results[100]['rps']:.0f} (p50 {results[100]['p50']:.1f} ms, "
            f"{results[100]['upstream']:.0f} upstream calls/s), ratio {ratio:.2f} (target >= 0.80)"
        )
        return 0


def load_chat(store: str, handle: str) -> dict:
    """The chat record behind a handle (the bench reads the store like the app does)."""
    from webwidget.sessions import HandleSigner, store_from_url

    sid = HandleSigner([SECRET]).unsign(handle, "default")  # handles are signed per widget
    return store_from_url(store).load(sid).data["chat:default"]


def rotate_lua(handles: list[tuple[str, str]]) -> str:
    rows = ",\n".join(f'  {{"{re.sub(r"i=[^&]*", "i=1", u)}", "{h}"}}' for h, u in handles)
    return f"""local polls = {{
{rows}
}}
local n = 0
request = function()
  n = n + 1
  local p = polls[(n % #polls) + 1]
  return wrk.format("GET", p[1], {{["HX-Request"] = "true", ["X-Widget-Session"] = p[2]}})
end
"""


def wire_poll(port: int, url: str, handle: str) -> tuple[int, int]:
    """Raw bytes of one unchanged poll as a browser's htmx sends it, and of the answer."""
    request = (
        f"GET {url} HTTP/1.1\r\nHost: widget.example.com\r\nConnection: keep-alive\r\n"
        "HX-Request: true\r\nHX-Trigger: ww-poller\r\nHX-Current-URL: https://widget.example.com"
        "/w/default\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Chrome/131.0.0.0 Safari/537.36\r\nAccept: */*\r\nSec-Fetch-Site: same-origin"
        "\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\nReferer: https://widget.example.com"
        "/w/default\r\nAccept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9"
        f"\r\nCookie: __Host-ww_session-default={handle}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
    assert data.startswith(b"HTTP/1.1 204"), data[:40]
    return len(request), len(data)


if __name__ == "__main__":
    sys.exit(main())
