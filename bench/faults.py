#!/usr/bin/env python
"""The fault matrix of docs/reliability.md: visitors chat with the widget as its Procfile
runs it (gunicorn, default settings, SQLite sessions unless said) on the sandbox, one fault
at a time, and do what the page does (htmx requests, the handle in X-Widget-Session, a
retry with the same client_id after a failure, the one action a lost chat offers). After
each fault the sandbox's stored messages are read back: every word a visitor sent must be
there exactly once, or still with the visitor. Prints the table as Markdown.

    .venv/bin/python bench/faults.py [--visitors 10]

What needs a real browser (offline, typing during a slow send) is in
tests/browser/test_sending.py; this script says so in its last rows.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

import requests
from servers import Sandbox, Servers

STATUS = re.compile(r'<div id="ww-status"[^>]*>(.*?)</div>', re.S)
HEADERS = {"Sec-Fetch-Site": "same-origin", "HX-Request": "true"}


def notice(body: str) -> str:
    """What the #ww-status box says, in short."""
    found = STATUS.search(body)
    text = unescape(re.sub(r"<[^>]+>|\s+", " ", found.group(1))).strip() if found else ""
    return text[:60] or "(none)"


@dataclass
class Visitor:
    """One visitor as the page behaves: its handle in X-Widget-Session, htmx headers."""

    url: str
    handle: str = ""
    outbox: list[tuple[str, str]] = field(default_factory=list)  # (words, client_id)
    lost: set[str] = field(default_factory=set)  # client ids the lost-chat view holds
    http: requests.Session = field(default_factory=requests.Session)

    def headers(self) -> dict[str, str]:
        return {**HEADERS, "X-Widget-Session": self.handle} if self.handle else dict(HEADERS)

    def keep(self, response: requests.Response) -> requests.Response:
        if "X-Widget-Session" in response.headers:
            self.handle = response.headers["X-Widget-Session"]
        return response

    def start(self, **form: str) -> requests.Response:
        return self.keep(self.http.post(f"{self.url}/w/default/start", data=form,
                                        headers=self.headers(), timeout=30))

    def page(self) -> requests.Response:
        return self.keep(self.http.get(f"{self.url}/w/default", headers=self.headers(),
                                       timeout=30))

    def send(self, words: str, client_id: str | None = None) -> requests.Response:
        """One send; the words stay in the outbox until a 2xx says they are stored."""
        client_id = client_id or secrets.token_hex(12)
        answer = self.keep(self.http.post(
            f"{self.url}/w/default/send", data={"text": words, "client_id": client_id},
            headers=self.headers(), timeout=30,
        ))
        if not (200 <= answer.status_code < 300):
            if (words, client_id) not in self.outbox:
                self.outbox.append((words, client_id))
            if answer.status_code == 409:
                self.lost.add(client_id)
        else:
            self.outbox = [item for item in self.outbox if item[1] != client_id]
        return answer

    def retry(self) -> None:
        """What the page does once things are back: the outbox again, same ids; a lost
        chat's words go with its one action, a new chat."""
        for words, client_id in list(self.outbox):
            if client_id not in self.lost:
                self.send(words, client_id)
                continue
            # The page shows these words in the lost chat's box; its one button starts a
            # new chat that sends them.
            started = self.start(text=words, client_id=client_id)
            if 200 <= started.status_code < 300:
                self.outbox = [item for item in self.outbox if item[1] != client_id]
                self.lost.discard(client_id)


def stored_texts(sandbox: Sandbox) -> list[str]:
    """Every visitor text the sandbox stored, from its own SQLite file."""
    with sqlite3.connect(sandbox.state) as db:
        rows = db.execute("SELECT body FROM messages").fetchall()
    import json

    texts = []
    for (body,) in rows:
        message = json.loads(body)
        if message.get("sender") == "user":
            texts.append((message.get("content") or {}).get("text") or "")
    return texts


@dataclass
class Row:
    fault: str
    visitor_saw: str
    operator_saw: str
    lost: str


def lost_words(sandbox: Sandbox, sent: list[str], visitors: list[Visitor]) -> str:
    """'no' when every word is stored exactly once or still waits with its visitor."""
    stored = stored_texts(sandbox)
    waiting = {words for v in visitors for words, _ in v.outbox}
    missing = [w for w in sent if stored.count(w) == 0 and w not in waiting]
    twice = [w for w in sent if stored.count(w) > 1]
    if not missing and not twice:
        return f"no ({len(sent)} sent, {len(sent) - len(waiting)} stored once, " \
               f"{len(waiting)} still with the visitor)"
    return f"YES: {len(missing)} missing, {len(twice)} stored twice"


def log_lines(log: Path, since: int, *needles: str) -> str:
    """How many log lines written after byte `since` hold each needle."""
    text = log.read_bytes()[since:].decode(errors="replace") if log.exists() else ""
    lines = text.splitlines()
    return ", ".join(f"{sum(n in line for line in lines)} lines '{n}'" for n in needles)


def log_size(log: Path) -> int:
    """Where the log ends now: a row counts only what its fault wrote."""
    return log.stat().st_size if log.exists() else 0


def words(fault: str, n: int) -> str:
    return f"{fault} words {n} {secrets.token_hex(3)}"


class Bench:
    """The servers of one run and the faults played on them."""

    def __init__(self, servers: Servers, visitors: int) -> None:
        self.servers, self.n = servers, visitors
        self.state = servers.work / "sandbox.sqlite3"
        proc = servers.spawn(
            [str(Path(sys.executable).parent / "webwidget"), "sandbox", "--host", "127.0.0.1",
             "--port", str(port := free_port()), "--state", str(self.state)],
            "sandbox",
        )
        self.sandbox = Sandbox(f"http://127.0.0.1:{port}")
        self.sandbox.state = self.state
        servers.wait_http(self.sandbox.url + "/_sandbox/stats", proc)
        self.widget = self.start_widget("a")

    def start_widget(self, name: str, **settings: str):
        env = self.servers.widget_env(self.sandbox, **settings)
        env["WEBWIDGET_INSTANCE_PATH"] = str(self.servers.work / f"instance-{name}")
        env.setdefault("RATE_LIMIT_START_PER_IP", "100000/minute")
        env.setdefault("RATE_LIMIT_START_PER_WIDGET", "100000/minute")
        env.setdefault("RATE_LIMIT_SEND_PER_SESSION", "100000/minute")
        env.setdefault("RATE_LIMIT_START_PER_NETWORK", "100000/minute")
        return self.servers.gunicorn(env, name=f"widget-{name}")

    def log(self, name: str = "a") -> Path:
        return next(self.servers.work.glob(f"widget-{name}-*.log"))

    def faults(self, **config) -> None:
        requests.put(self.sandbox.url + "/_sandbox/faults", json=config, timeout=10)

    def heal(self) -> None:
        requests.delete(self.sandbox.url + "/_sandbox/faults", timeout=10)

    def chatting(self, url: str | None = None) -> list[Visitor]:
        visitors = [Visitor(url or self.widget.url) for _ in range(self.n)]
        for visitor in visitors:
            assert visitor.start().status_code == 200, "could not start a chat"
        return visitors

    # --- the faults --------------------------------------------------------------------

    def ended_elsewhere(self) -> Row:
        since = log_size(self.log())
        visitors, sent, statuses = self.chatting(), [], {}
        for i, visitor in enumerate(visitors):
            other = Visitor(self.widget.url, handle=visitor.handle)
            other.keep(other.http.post(f"{other.url}/w/default/end", headers=other.headers(),
                                       timeout=30))
            sent.append(text := words("ended", i))
            answer = visitor.send(text)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            seen = notice(answer.text)
        for visitor in visitors:
            visitor.retry()
        return Row(
            "chat ended in another tab, then a send",
            f"{statuses}: '{seen}', the words in a box, one button 'Start a new chat and send'",
            log_lines(self.log(), since, "session lost at send: the chat ended"),
            lost_words(self.sandbox, sent, visitors),
        )

    def two_instances(self) -> Row:
        other = self.start_widget("b")  # its own instance folder, so its own SQLite file
        visitors, sent, statuses = self.chatting(), [], {}
        for i, visitor in enumerate(visitors):
            moved = Visitor(other.url, handle=visitor.handle)
            sent.append(text := words("instances", i))
            answer = moved.send(text)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            seen = notice(answer.text)
            moved.retry()
            visitors[i] = moved
        self.servers.stop(other.proc)
        return Row(
            "two instances on separate SQLite files, a send lands on the other",
            f"{statuses}: '{seen}', the words kept for a new chat",
            log_lines(self.log("b"), 0, "separate SQLite files"),
            lost_words(self.sandbox, sent, visitors),
        )

    def refusal(self, status: int, seconds: float = 10.0) -> Row:
        since = log_size(self.log())
        visitors, sent, statuses = self.chatting(), [], {}
        before = [len(re.findall("data-message-id", v.page().text)) for v in visitors]
        self.faults(error_status=status)
        deadline, i = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            for visitor in visitors:
                sent.append(text := words(f"refused{status}", i))
                i += 1
                answer = visitor.send(text)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                seen = notice(answer.text)
                visitor.page()
        self.heal()
        for visitor in visitors:
            visitor.retry()
        kept = sum(
            len(re.findall("data-message-id", v.page().text)) > b
            for v, b in zip(visitors, before, strict=True)
        )
        return Row(
            f"ChatCaptain answers {status} to every call for {seconds:.0f} s",
            f"sends {statuses}: '{seen}'; {kept} of {len(visitors)} chats go on after",
            log_lines(self.log(), since, f"status={status}", "session lost"),
            lost_words(self.sandbox, sent, visitors) + f"; chats lost: {len(visitors) - kept}",
        )

    def outage(self) -> Row:
        since = log_size(self.log())
        visitors, sent, statuses = self.chatting(), [], {}
        self.faults(error_status=503)
        for i, visitor in enumerate(visitors):
            sent.append(text := words("outage", i))
            answer = visitor.send(text)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            seen = notice(answer.text)
        self.heal()
        # As the page's outbox does: again on every poll that gets through, until the
        # breaker (open after 5 outages in a row) lets the first probe through.
        deadline = time.monotonic() + 40
        while any(v.outbox for v in visitors) and time.monotonic() < deadline:
            for visitor in visitors:
                visitor.retry()
            time.sleep(1)
        return Row(
            "ChatCaptain answers 503 (an outage)",
            f"sends {statuses}: '{seen}'",
            log_lines(self.log(), since, "kind=unavailable", "circuit_open"),
            lost_words(self.sandbox, sent, visitors),
        )

    def full_disk(self) -> Row:
        disk = self.servers.work / "disk"
        disk.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                       check=True)
        try:
            widget = self.start_widget(
                "disk", SESSION_STORE_URL=f"sqlite:///{disk / 'sessions.sqlite3'}"
            )
            with (disk / "filler").open("wb") as out:
                try:
                    while True:
                        out.write(b"\0" * 65536)
                        out.flush()
                except OSError:
                    pass
            contacts = requests.get(self.sandbox.url + "/_sandbox/stats", timeout=10).json()
            attempts = {}
            for _ in range(self.n * 3):
                answer = Visitor(widget.url).start()
                attempts[answer.status_code] = attempts.get(answer.status_code, 0) + 1
            after = requests.get(self.sandbox.url + "/_sandbox/stats", timeout=10).json()
            created = (after["requests"]["create_contact"]
                       - contacts["requests"]["create_contact"])
            self.servers.stop(widget.proc)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
        return Row(
            "session store cannot be written (disk full), visitors press Start",
            f"starts {attempts}: 'The chat is briefly unavailable'",
            log_lines(self.log("disk"), 0, "database or disk is full"),
            f"no; contacts created upstream: {created}",
        )

    def redis_flushed(self) -> Row:
        url = self.servers.redis()
        widget = self.start_widget("redis", SESSION_STORE_URL=url)
        visitors, sent, statuses = self.chatting(widget.url), [], {}
        import redis

        redis.Redis.from_url(url).flushall()
        for i, visitor in enumerate(visitors):
            sent.append(text := words("flushed", i))
            answer = visitor.send(text)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            visitor.retry()
        self.servers.stop(widget.proc)
        return Row(
            "Redis emptied (FLUSHALL, or a restart without persistence), then a send",
            f"{statuses}: the words kept for a new chat",
            log_lines(self.log("redis"), 0, "a store emptied since"),
            lost_words(self.sandbox, sent, visitors),
        )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=10)
    args = parser.parse_args()
    with Servers(prefix="ww-faults-") as servers:
        bench = Bench(servers, args.visitors)
        rows = [
            bench.ended_elsewhere(),
            bench.two_instances(),
            bench.redis_flushed(),
            bench.refusal(401),
            bench.refusal(404),
            bench.outage(),
            bench.full_disk(),
        ]
    rows += [
        Row("visitor offline, presses Enter", "a pending bubble 'Waiting to send', sent once "
            "when back", "nothing (it never reached us)", "no: tests/browser/test_sending.py"),
        Row("visitor types during a slow send (2.5 s)", "the new text stays in the box",
            "nothing", "no: tests/browser/test_sending.py"),
    ]
    print_table(rows)


def print_table(rows: list[Row]) -> None:
    print("| fault | what the visitor sees | what the operator sees | words or chats lost |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row.fault} | {row.visitor_saw} | {row.operator_saw} | {row.lost} |")


if __name__ == "__main__":
    sys.exit(main())
