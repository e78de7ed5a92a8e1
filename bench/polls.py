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
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET = "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
POLLER = re.compile(r'id="ww-poller".*?hx-get="([^"]+)"', re.S)
BARE = (
    "from flask import Flask\n\napp = Flask(__name__)\n\n\n"
    '@app.get("/")\ndef bare():\n    return "", 204\n'
)
LUA = """wrk.headers["HX-Request"] = "true"
wrk.headers["X-Widget-Session"] = os.getenv("WW_HANDLE")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, seconds: float, connections: int, lua: Path, handle: str = "") -> dict:
    """requests/s and latency percentiles (ms) from one wrk run."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(lua), url],
        capture_output=True,
        text=True,
        env={**os.environ, "WW_HANDLE": handle},
        timeout=seconds + 30,
    )
    out = out.stdout + out.stderr
    if "Requests/sec" not in out:
        raise SystemExit(f"wrk failed on {url}: {out[-500:]}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for q in ("50", "99"):
        value, unit = re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s)", out).groups()
        lat[q] = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"], "errors": "Non-2xx" in out}


def rss_peaks(parent: int) -> list[int]:
    """Peak RSS (VmHWM, KiB) of each child of `parent`."""
    peaks = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                status = (stat.parent / "status").read_text()
                peaks.append(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))
        except (OSError, AttributeError, IndexError, ValueError):
            continue
    return peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    procs: list[subprocess.Popen] = []
    work = Path(tempfile.mkdtemp(prefix="ww-bench-"))

    def spawn(cmd, env=None, cwd=ROOT):
        log = open(work / f"{len(procs)}.log", "w")  # noqa: SIM115
        procs.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT))
        return procs[-1]

    try:
        rport, sport, wport, bport = free_port(), free_port(), free_port(), free_port()
        spawn(
            [
                shutil.which("redis-server"),
                "--port",
                str(rport),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        )
        spawn([str(BIN / "webwidget"), "sandbox", "--host", "127.0.0.1", "--port", str(sport)])
        sandbox = f"http://127.0.0.1:{sport}"
        wait_http(sandbox + "/_sandbox/stats")
        store = f"redis://127.0.0.1:{rport}/0"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CHATCAPTAIN_", "WIDGET_", "SESSION_", "RATE_LIMIT_"))
        }
        env.update(
            SECRET_KEY=SECRET,
            CHATCAPTAIN_BASE_URL=sandbox,
            CHATCAPTAIN_CHATBOT_ID="demo-bot",
            CHATCAPTAIN_CHANNEL_ID="channel_abc123",
            CHATCAPTAIN_CHANNEL_TOKEN="channel_token_xyz789",
            CHATCAPTAIN_SENDING_ENABLED="true",
            WIDGET_ALLOWED_ORIGINS="https://host.example",
            SESSION_STORE_URL=store,
            RATE_LIMIT_ENABLED="false",
            WEBWIDGET_INSTANCE_PATH=str(work / "instance"),
            PROMETHEUS_MULTIPROC_DIR=str(work / "m"),
        )
        (work / "m").mkdir()
        conf = str(ROOT / "gunicorn.conf.py")
        app = spawn(
            [
                str(BIN / "gunicorn"),
                "-c",
                conf,
                "--bind",
                f"127.0.0.1:{wport}",
                "--access-logfile",
                "/dev/null",
                "wsgi:app",
            ],
            env,
        )
        (work / "bare.py").write_text(BARE)
        bare_env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(work / "m")}
        spawn(
            [
                str(BIN / "gunicorn"),
                "-c",
                conf,
                "--bind",
                f"127.0.0.1:{bport}",
                "--access-logfile",
                "/dev/null",
                "--chdir",
                str(work),
                "bare:app",
            ],
            bare_env,
        )
        base, bare = f"http://127.0.0.1:{wport}", f"http://127.0.0.1:{bport}"
        wait_http(base + "/healthz")
        wait_http(bare + "/")
        lua = work / "poll.lua"
        lua.write_text(LUA)
        cfg = subprocess.run(
            [
                sys.executable,
                "-c",
                f"exec(open({conf!r}).read());print(worker_class, workers, threads)",
            ],
            capture_output=True,
            text=True,
        ).stdout.split()
        print(
            f"gunicorn.conf.py: {cfg[0]} workers={cfg[1]} threads={cfg[2]}; session store redis; "
            f"wrk -t2 -c{args.connections} -d{args.seconds:g}s; {os.cpu_count()} cores (shared)"
        )

        def start() -> tuple[str, str]:
            s = requests.Session()
            r = s.post(
                base + "/w/default/start",
                headers={"HX-Request": "true", "Sec-Fetch-Site": "same-origin"},
                timeout=10,
            )
            handle = r.headers["X-Widget-Session"]
            return handle, POLLER.search(r.text).group(1).replace("&amp;", "&")

        def send(handle: str, text: str) -> None:
            requests.post(
                base + "/w/default/send",
                data={"text": text},
                timeout=10,
                headers={
                    "HX-Request": "true",
                    "Sec-Fetch-Site": "same-origin",
                    "X-Widget-Session": handle,
                },
            ).raise_for_status()

        def calls() -> int:
            return requests.get(sandbox + "/_sandbox/stats", timeout=5).json()["requests"][
                "list_messages"
            ]

        # (a) unchanged poll vs the bare Flask ceiling
        handle, url = start()
        r = requests.get(base + url, headers={"HX-Request": "true", "X-Widget-Session": handle})
        assert r.status_code == 204, r.status_code
        ceiling = wrk(bare + "/", args.seconds, args.connections, lua)
        before = calls()
        poll = wrk(base + url, args.seconds, args.connections, lua, handle)
        upstream_during = calls() - before
        print(
            f"(a) unchanged poll: {poll['rps']:.0f} req/s p50 {poll['p50']:.2f} ms p99 "
            f"{poll['p99']:.2f} ms | bare Flask: {ceiling['rps']:.0f} req/s p50 "
            f"{ceiling['p50']:.2f} ms | ratio {poll['rps'] / ceiling['rps']:.2f} "
            f"(target >= 0.50); upstream calls during the run: {upstream_during}"
            f"{' NON-2XX SEEN' if poll['errors'] else ''}"
        )

        # (b) changed poll with 50 messages vs the direct upstream call
        rclient = redis.Redis.from_url(store)
        for n in range(24):
            send(handle, f"message {n}")
        requests.post(sandbox + "/_sandbox/clock", json={"advance": 10}, timeout=5)
        page = requests.get(base + "/w/default", headers={"X-Widget-Session": handle}).text
        count = page.count("data-message-id=")
        record = load_chat(store, handle)
        direct_url = (
            f"{sandbox}/v1/widget/demo-bot/conversations/{record['conversationId']}/messages"
        )
        direct, changed = [], []
        sess = requests.Session()
        wsess = requests.Session()
        base_url = POLLER.search(page).group(1).replace("&amp;", "&")
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
                base + base_url, headers={"HX-Request": "true", "X-Widget-Session": handle}
            )
            changed.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200 and "beforeend:#ww-log" in r.text
        dp50, cp50 = statistics.median(direct), statistics.median(changed)
        print(
            f"(b) changed poll, {count} messages, one-message delta: p50 {cp50:.2f} ms vs direct "
            f"upstream call p50 {dp50:.2f} ms = +{cp50 - dp50:.2f} ms (target <= 5 ms); "
            f"delta body {len(r.content)} B"
        )

        # (c) upstream calls per conversation per minute, 1 and 5 tabs at the fast interval
        def tabs(n: int, seconds: float = 12.0) -> float:
            handle, url = start()
            time.sleep(1.0)
            stop = time.monotonic() + seconds
            before = calls()

            def tab(offset: float) -> None:
                time.sleep(offset)
                s = requests.Session()
                while time.monotonic() < stop:
                    s.get(base + url, headers={"HX-Request": "true", "X-Widget-Session": handle})
                    time.sleep(1.5)

            threads = [threading.Thread(target=tab, args=(i * 1.5 / n,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return (calls() - before) * 60 / seconds

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
        req, resp = wire_poll(wport, POLLER.search(html).group(1).replace("&amp;", "&"), handle)
        print(
            f"(d) first open {first} B gzip = " + ", ".join(parts) + " (target <= 30 KB); "
            f"unchanged poll {req + resp} B = request {req} B + response {resp} B, no body "
            f"(target < 1 KB)"
        )

        # (e) peak RSS per worker
        peaks = rss_peaks(app.pid)
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
            requests.put(sandbox + "/_sandbox/faults", json={"latency_ms": latency}, timeout=5)
            time.sleep(1.0)
            before = calls()
            results[latency] = wrk(base + "/", args.seconds, args.connections * 2, rot)
            results[latency]["upstream"] = (calls() - before) / args.seconds
        ratio = results[100]["rps"] / results[0]["rps"]
        print(
            f"(f) polls/s over 200 conversations: no latency {results[0]['rps']:.0f} "
            f"(p50 {results[0]['p50']:.1f} ms, {results[0]['upstream']:.0f} upstream calls/s), "
            f"100 ms latency {results[100]['rps']:.0f} (p50 {results[100]['p50']:.1f} ms, "
            f"{results[100]['upstream']:.0f} upstream calls/s), ratio {ratio:.2f} (target >= 0.80)"
        )
        return 0
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def redis_sid(handle: str, store: str) -> str:
    from webwidget.sessions import HandleSigner

    return HandleSigner([SECRET]).unsign(handle)


def load_chat(store: str, handle: str) -> dict:
    """The chat record behind a handle (the bench reads the store like the app does)."""
    from webwidget.sessions import store_from_url

    return store_from_url(store).load(redis_sid(handle, store)).data["chat:default"]


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
