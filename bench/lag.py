#!/usr/bin/env python
"""Reply-to-screen lag (issue 21): how long after ChatCaptain has a bot reply it shows
in the visitor's browser.

Chromium opens a host page on another site (127.0.0.1) that embeds the widget with its
loader (the widget on `localhost`, run with the Procfile's command and gunicorn.conf.py);
the sandbox answers with `--latency-ms` (100) of latency and its clock is held. Each
trial sends `later` (the sandbox bot's reply to it is due a minute later on its clock),
waits a random 0.2-3 s after the send has been answered, then advances the sandbox's
clock by that minute: the reply is available upstream from that instant. The lag is
from just before that advance to the moment the reply's element enters the frame's DOM
(a MutationObserver in the frame takes the time; browser and bench share the clock).

    .venv/bin/python bench/lag.py                      # 16 trials, as configured
    .venv/bin/python bench/lag.py --compare wait       # also with polls that wait
    .venv/bin/python bench/lag.py --visitors 2000      # while 2,000 others are connected
    .venv/bin/python bench/lag.py --visitors 2000 --hog 4 --compare unbounded
                                                       # the same on a starved CPU

`--compare` runs the same trials, in the same run, against the widget restarted with
other settings (see COMPARE). `--visitors N` runs bench/visitors.py with N visitors (each
starting its own chat, following the poller as the page does) during the trials and
prints what it measured; the widget then allows that many starts from one address
(RATE_LIMIT_START_PER_IP, _PER_NETWORK and _PER_WIDGET), the only settings that differ from the
defaults.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from servers import ROOT, Servers, gunicorn_settings, load_average

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
REPLY_TEXT = "a minute later"
# Settings compared side by side (`--compare`), each against the widget as configured.
COMPARE = {
    # Before issue 21: short polls from the cached list, gthread 2x16.
    "before": {"WIDGET_HOLD_SECONDS": "0", "GUNICORN_WORKER_CLASS": "gthread"},
    # Short polls that wait for their own upstream call (UPSTREAM_REFRESH_CALLS=0).
    "wait": {"WIDGET_HOLD_SECONDS": "0", "GUNICORN_WORKER_CLASS": "gthread",
             "UPSTREAM_REFRESH_CALLS": "0"},
    "gthread": {"GUNICORN_WORKER_CLASS": "gthread"},
    # Held polls as threads: enough of them for every visitor.
    "gthread-many": {"GUNICORN_WORKER_CLASS": "gthread", "GUNICORN_THREADS": "1100",
                     "WIDGET_HOLD_MAX": "1050"},
    "gevent": {"GUNICORN_WORKER_CLASS": "gevent"},
    # Idle held polls check whatever the worker has in flight (before call_slots.py).
    "unbounded": {"UPSTREAM_CALLS_BUSY": "0"},
}
CHAT_EVERY = 20.0  # seconds between the chatting visitor's messages (--calls)
# Records when each bot reply to `later` enters the frame's DOM (Date.now(), ms).
OBSERVER = """() => {
  window.__replies = [];
  const seen = new Set();
  const look = () => {
    document.querySelectorAll('.ww-msg--bot[data-message-id]').forEach((el) => {
      const id = el.getAttribute('data-message-id');
      if (!seen.has(id) && el.textContent.includes('REPLY_TEXT')) {
        seen.add(id);
        window.__replies.push(Date.now());
      }
    });
  };
  new MutationObserver(look).observe(document.documentElement, {childList: true, subtree: true});
}""".replace("REPLY_TEXT", REPLY_TEXT)


class HostPage:
    """A customer's page on 127.0.0.1 that embeds the widget with its loader; its port is
    known at once (the widget must allow its origin), the widget's URL later."""

    def __init__(self) -> None:
        self.page = b""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(owner.page)))
                self.end_headers()
                self.wfile.write(owner.page)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, widget_url: str) -> None:
        self.page = (
            "<!doctype html><html lang='en'><head><title>Host</title></head><body>"
            "<main><h1>Host page</h1></main>"
            f'<script src="{widget_url}/embed.js" data-widget="default" async></script>'
            "</body></html>"
        ).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def trials(browser, widget_url: str, host_url: str, sandbox, count: int, rng) -> list[float]:
    """`count` lags (seconds) in one chat, started in the widget on the host page."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(host_url, timeout=120000)
        page.locator("#webwidget-default button.l").click(timeout=120000)
        frame = page.frame_locator("#webwidget-default iframe")
        frame.locator("html[data-ww-ready]").wait_for(state="attached", timeout=120000)
        frame.get_by_role("button", name="Start chat").click(timeout=120000)
        frame.locator(".ww-msg--bot[data-message-id]").first.wait_for(timeout=120000)
        widget = next(f for f in page.frames if f.url.startswith(widget_url))
        widget.evaluate(OBSERVER)
        sandbox_hold(sandbox, True)
        lags = []
        visitor = frame.locator(".ww-msg--visitor[data-message-id]")
        for n in range(count):
            frame.locator("#ww-text").fill("later")
            frame.locator("#ww-text").press("Enter")
            visitor.nth(n).wait_for(timeout=120000)  # the send was answered
            time.sleep(rng.uniform(0.2, 3.0))
            available = time.time()
            sandbox.advance(60.001)
            shown = reply_time(widget, n)
            lags.append(shown - available)
        sandbox_hold(sandbox, False)
        return lags
    finally:
        context.close()


def reply_time(frame, n: int, timeout: float = 30.0) -> float:
    """When the `n`th reply entered the frame's DOM (epoch seconds). Asked every 50 ms:
    the page took the time itself, so asking less often costs no precision (the frame's
    CSP forbids the eval that wait_for_function would need)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = frame.evaluate("() => window.__replies")
        if len(shown) > n:
            return shown[n] / 1000
        time.sleep(0.05)
    raise SystemExit(f"reply {n + 1} did not show within {timeout:g} s")


class Tab(threading.Thread):
    """One open tab of a chat, following its poller as the page does (held or short)."""

    def __init__(self, bases: list[str], handle: str, url: str, stop: float) -> None:
        super().__init__(daemon=True)
        self.bases, self.handle, self.url, self.stop = bases, handle, url, stop
        self.turn = 0

    def run(self) -> None:
        import re

        import requests
        from servers import POLLER

        headers = {"HX-Request": "true", "X-Widget-Session": self.handle}
        with requests.Session() as s:
            while time.monotonic() < self.stop:
                held = "m=h" in self.url
                if not held:
                    interval = float(re.search(r"[?&]i=([\d.]+)", self.url).group(1))
                    time.sleep(min(interval, max(self.stop - time.monotonic(), 0)))
                    if time.monotonic() >= self.stop:
                        return
                base = self.bases[self.turn % len(self.bases)]
                self.turn += 1
                try:
                    r = s.get(base + self.url, headers=headers, timeout=60)
                except requests.RequestException:
                    continue
                found = POLLER.search(r.text) if r.status_code == 200 else None
                if found:
                    self.url = found.group(1).replace("&amp;", "&")
                elif held:
                    return  # a held poll always answers with a poller


def calls_per_minute(sandbox, bases: list[str], tabs: int, chatting: bool,
                     seconds: float) -> float:
    """Upstream list calls per minute of one conversation open in `tabs` tabs (polls
    spread over `bases`, the instances); with `chatting`, the visitor sends every
    CHAT_EVERY seconds (the sandbox bot answers each about 0.4 s later)."""
    import requests
    from servers import START_HEADERS, poller_url

    with requests.Session() as s:
        r = s.post(bases[0] + "/w/default/start", headers=START_HEADERS, timeout=60)
        r.raise_for_status()
        handle = r.headers["X-Widget-Session"]
        url = poller_url(r.text, held=True)
    sandbox.settle()
    before = sandbox.list_calls()
    stop = time.monotonic() + seconds
    threads = [Tab(bases, handle, url, stop) for _ in range(tabs)]
    for t in threads:
        t.start()
    headers = {**START_HEADERS, "X-Widget-Session": handle}
    n = 0
    while chatting and time.monotonic() < stop - 1:
        requests.post(bases[n % len(bases)] + "/w/default/send", data={"text": f"hi {n}"},
                      headers=headers, timeout=60)
        n += 1
        time.sleep(max(0.0, min(CHAT_EVERY, stop - time.monotonic())))
    for t in threads:
        t.join(timeout=90)
    return (sandbox.list_calls() - before) * 60 / seconds


def sandbox_hold(sandbox, held: bool) -> None:
    import requests

    requests.post(sandbox.url + "/_sandbox/clock", json={"hold": held}, timeout=10)


def summary(lags: list[float]) -> str:
    return (
        f"p50 {percentile(lags, 50):.2f} s  p95 {percentile(lags, 95):.2f} s"
        f"  mean {statistics.mean(lags):.2f} s  max {max(lags):.2f} s"
    )


def describe(env: dict[str, str]) -> str:
    import os

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        c = gunicorn_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    hold = env.get("WIDGET_HOLD_SECONDS", "20")
    transport = "short polls" if hold == "0" else f"held polls {hold} s"
    return f"{c['worker_class']} {c['workers']}x{c['threads']}, {transport}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--compare", default="", help=f"also: {', '.join(COMPARE)}")
    parser.add_argument("--visitors", type=int, default=0, help="others connected meanwhile")
    parser.add_argument("--only-compare", action="store_true",
                        help="only the --compare settings, not the widget as configured")
    parser.add_argument("--ramp", type=float, default=30, help="the visitors' arrival")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--hog", type=int, default=0,
                        help="busy-loop processes that starve the CPU for the whole run,"
                             " the same for every mode compared")
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument(
        "--calls", type=float, default=0,
        help="also count upstream list calls per conversation per minute over this many"
        " seconds: idle, chatting, 5 tabs, and 5 tabs over two instances on Redis",
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    modes = ([] if args.only_compare else [("as configured", {})]) + [
        (name, COMPARE[name]) for name in filter(None, args.compare.split(","))
    ]
    print(
        f"lag: {args.trials} trials, sandbox latency {args.latency_ms} ms, reply due 0.2-3 s"
        f" after the send; {args.visitors} other visitors; {args.hog} CPU hogs; load average"
        f" {load_average()}",
        flush=True,
    )
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hog)
    ]
    try:
        return run(args, modes, sync_playwright)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def run(args: argparse.Namespace, modes, sync_playwright) -> int:
    """Every mode's trials, one after the other, in this run."""
    with Servers("ww-lag-") as servers, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        sandbox = servers.sandbox(keep_alive=True)
        store = {"SESSION_STORE_URL": servers.redis()} if args.store == "redis" else {}
        for label, settings in modes:
            sandbox.latency(0)
            widget_settings = {
                **store,
                **settings,
                "RATE_LIMIT_START_PER_IP": f"{max(args.visitors * 2, 10)}/minute",
                "RATE_LIMIT_START_PER_NETWORK": f"{max(args.visitors * 2, 30)}/minute",
                "RATE_LIMIT_START_PER_WIDGET": f"{max(args.visitors * 2, 600)}/minute",
            }
            # The host page's origin must be known before the widget starts (allowed origins).
            host = HostPage()
            env = servers.widget_env(
                sandbox, WIDGET_ALLOWED_ORIGINS=f"http://127.0.0.1:{host.port}", **widget_settings
            )
            widget = servers.gunicorn(env, access_log=True)
            widget_url = f"http://localhost:{widget.port}"
            host.serve(widget_url)
            visitors = None
            if args.visitors:
                visitors = subprocess.Popen(
                    [
                        sys.executable, str(ROOT / "bench" / "visitors.py"),
                        "--url", widget.url, "--visitors", str(args.visitors),
                        "--seconds", str(args.ramp + 30 + args.trials * 6), "--ramp",
                        str(args.ramp),
                    ],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )
                time.sleep(args.ramp + 5)  # all of them connected before the trials
            sandbox.latency(args.latency_ms)
            before = sandbox.list_calls()
            started = time.monotonic()
            lags = trials(browser, widget_url, host.url, sandbox, args.trials,
                          random.Random(args.seed))
            took = time.monotonic() - started
            calls = sandbox.list_calls() - before
            named = " ".join(f"{k}={v}" for k, v in settings.items())
            print(
                f"{label} ({describe(settings)}{', ' + named if named else ''}):"
                f" {summary(lags)}; lags {' '.join(f'{x:.2f}' for x in lags)};"
                f" upstream list calls {calls} in {took:.0f} s (load average {load_average()})",
                flush=True,
            )
            if visitors is not None:
                out, err = visitors.communicate(timeout=600)
                if visitors.returncode != 0:
                    print(f"  visitors failed: {err[-1500:]}")
                else:
                    v = json.loads(out)
                    print(
                        f"  {v['visitors']} visitors: {v['polls']} polls"
                        f" ({v['polls_per_s']:.0f}/s), statuses {v['statuses']}, errors"
                        f" {sum(v['errors'].values())} {v['errors'] or ''}; start p50"
                        f" {v['page_p50_ms']:.0f} ms p99 {v['page_p99_ms']:.0f} ms;"
                        f" generator CPU {v['cpu_seconds']:.1f} s ="
                        f" {v['cpu_share_of_one_core']:.0%} of one core",
                        flush=True,
                    )
            if args.calls:
                sandbox.latency(args.latency_ms)
                bases = [widget.url]
                cases = [("1 tab idle", 1, False), ("1 tab chatting", 1, True),
                         ("5 tabs chatting", 5, True)]
                found = [
                    f"{name} {calls_per_minute(sandbox, bases, n, chat, args.calls):.0f}"
                    for name, n, chat in cases
                ]
                print(f"  upstream list calls per conversation per minute ({label}): "
                      + ", ".join(found), flush=True)
                shared = {**env, "SESSION_STORE_URL": servers.redis()}
                pair = [servers.gunicorn(shared, name=f"pair-{n}") for n in (1, 2)]
                two = calls_per_minute(sandbox, [p.url for p in pair], 5, True, args.calls)
                for instance in pair:
                    servers.stop(instance.proc)
                print(f"  the same, Redis sessions, two instances, 5 tabs alternating between"
                      f" them, chatting: {two:.0f}", flush=True)
            servers.stop(widget.proc)
            host.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
