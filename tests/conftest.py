"""Shared fixtures: real servers on loopback ports (sandbox upstream, redis-server)."""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

# Apps built here without an upstream are the demo, as `webwidget demo` builds them: the
# opt-in is on for this run. Production start-up without an upstream (it must stop) is
# tested in processes whose environment leaves it out (test_scale_out.instance_env).
os.environ.setdefault("WEBWIDGET_DEMO", "1")

# Sockets holding the ports free_port() handed out, for as long as this process runs.
_RESERVED: list[socket.socket] = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that stays ours for the rest of the test run.

    A port that was merely free when chosen can be taken before our server binds it, or
    while a test restarts a server on it: by another worker's server or an outgoing
    connection, whose answers a test would then take for our server's. So a bound, never
    listening socket keeps it: the kernel hands it to nobody else, while our servers,
    which all set SO_REUSEADDR (werkzeug, gunicorn, redis-server, nginx), may still listen
    on it. Nobody listening there still refuses connections.
    """
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    _RESERVED.append(holder)
    return holder.getsockname()[1]


# The slow tier (pyproject.toml's `slow` marker; `pytest -m "not slow"` leaves it out for
# everyday work; the whole suite, as scripts/test.sh runs it, is the gate). A test is slow
# when it drives a real browser,
# starts its own processes (gunicorn, nginx, a wheel build, a boot race, a documented
# command), or stands up servers that take seconds: found here by its module, its
# fixtures or what its body calls, so a new test of that kind needs no marker of its own.
SLOW_MODULES = {
    "test_access_log.py",  # gunicorn's own log lines
    "test_demo.py",  # `webwidget demo` under gunicorn
    "test_drain.py",  # SIGTERM to a gunicorn worker
    "test_hosting_docs.py",  # the hosting pages' commands, run as written
    "test_nginx.py",  # nginx with TLS in front of gunicorn
    "test_preflight.py",  # failed starts of `webwidget serve` and gunicorn
    "test_reload.py",  # gunicorn's HUP
    "test_scale_out.py",  # two gunicorn instances on one Redis
    "test_startup_lock.py",  # the boot race: dozens of processes starting together
    "test_wheel.py",  # builds the wheel and installs it in a new venv
}
SLOW_FIXTURES = {
    "gunicorn_two_workers",  # test_operability: gunicorn with two workers
    "list_upstream",  # test_bounds: 20,000-message conversations, measured in a worker
    "keyed_sandbox",  # test_secrets: crawls every page for secrets, twice per handle kind
    "installed",  # test_wheel: the wheel installed in a venv of its own
}
# Calls in a test's own body that start a process.
SLOW_CALLS = ("Instance(", "subprocess.", "GUNICORN")


def pytest_collection_modifyitems(config, items):
    """Mark the slow tier (see SLOW_MODULES)."""
    for item in items:
        path = Path(str(item.path))
        if "browser" in path.parts or path.name in SLOW_MODULES or _starts_processes(item):
            item.add_marker(pytest.mark.slow)


def _starts_processes(item) -> bool:
    if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    function = getattr(item, "function", None)
    try:
        source = inspect.getsource(function) if function is not None else ""
    except (OSError, TypeError):
        return False
    return any(call in source for call in SLOW_CALLS)


def pytest_unconfigure(config):
    """Give the reserved ports back once every server of the run has stopped."""
    while _RESERVED:
        _RESERVED.pop().close()


def wait_until(predicate, *, timeout: float, what: str, every: float = 0.05, pause=None):
    """Check `predicate` until it returns something truthy, and return that.

    For a condition another process or thread brings about (a server listening, a count
    going up): it fails with `what` once `timeout` seconds pass without it. `predicate`
    may raise AssertionError to fail at once (a server that exited will never listen).
    Time the app or the sandbox measures is moved by their clocks, never waited for here.
    `pause(seconds)` replaces the pause between checks (a Playwright page's, whose event
    loop must keep running).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        # Between checks only: the condition, not the pause, ends the wait.
        if pause is None:
            time.sleep(every)
        else:
            pause(every)


def exited(process: subprocess.Popen | None, log: Path | None = None) -> None:
    """Fail at once when `process` has exited: what it waited for will never come."""
    if process is not None and process.poll() is not None:
        tail = log.read_text(errors="replace")[-3000:] if log is not None else ""
        raise AssertionError(f"{process.args[0]} exited with {process.returncode}\n{tail}")


def redis_answers(port: int, process: subprocess.Popen | None = None) -> bool:
    """Whether the redis-server on `port` answers PING (fails if `process` exited)."""
    exited(process)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def listens(port: int, process: subprocess.Popen | None = None, log: Path | None = None) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    exited(process, log)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def answers(url: str, process: subprocess.Popen | None = None, log: Path | None = None) -> bool:
    """Whether `url` answers HTTP at all, whatever the status (fails if `process` exited)."""
    import requests

    exited(process, log)
    try:
        requests.get(url, timeout=1)
    except requests.RequestException:
        return False
    return True


def wait_for_server(url: str, process: subprocess.Popen | None = None, *,
                    log: Path | None = None, timeout: float = 60) -> None:
    """Wait until the server that `process` starts answers at `url`. A cold Python start
    takes seconds when four test workers share two cores."""
    wait_until(lambda: answers(url, process, log), timeout=timeout, what=f"{url} to answer")


@pytest.fixture(scope="session")
def redis_url():
    """A real redis-server on a free port for the whole test session."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: scripts/test.sh installs it"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: redis_answers(port, proc), timeout=10, what="redis-server to start")
    except AssertionError:
        proc.kill()
        proc.wait()
        raise
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=5)


@pytest.fixture(scope="session")
def sandbox_server():
    """The ChatCaptain sandbox as a real HTTP server for the whole test session."""
    from webwidget.sandbox import create_sandbox_app
    from webwidget.sandbox.server import BackgroundServer

    server = BackgroundServer(create_sandbox_app()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_sandbox():
    """A sandbox of the module's own, for fixtures that outlive one test (servers behind
    gunicorn or nginx): the shared one carries whatever faults and clock offset the
    worker's previous test left, and only `sandbox` resets it, per test."""
    from webwidget.sandbox import create_sandbox_app
    from webwidget.sandbox.server import BackgroundServer

    server = BackgroundServer(create_sandbox_app()).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server):
    """The shared sandbox, with faults and counters reset before each test."""
    reset(sandbox_server)
    return sandbox_server


# --- the sandbox's control API (/_sandbox/...), for tests on a shared or own sandbox ------


def _control(sandbox) -> str:
    """The control API root of `sandbox` (a server with `.url`, or its URL)."""
    return f"{getattr(sandbox, 'url', sandbox)}/_sandbox"


def reset(sandbox) -> None:
    """Clear the sandbox's faults, counters and clock offset (conversations stay)."""
    import requests

    requests.post(f"{_control(sandbox)}/reset", timeout=5).raise_for_status()


def faults(sandbox, **config) -> None:
    """Switch the sandbox's faults on (a FaultConfig: latency_ms, error_status, ...)."""
    import requests

    requests.put(f"{_control(sandbox)}/faults", json=config, timeout=5).raise_for_status()


def heal(sandbox) -> None:
    """Switch every fault off: the upstream recovers."""
    import requests

    requests.delete(f"{_control(sandbox)}/faults", timeout=5).raise_for_status()


def advance(sandbox, seconds: float) -> None:
    """Move the sandbox's clock (bot replies fall due, widget tokens expire)."""
    import requests

    requests.post(
        f"{_control(sandbox)}/clock", json={"advance": seconds}, timeout=5
    ).raise_for_status()


def hold(sandbox, held: bool = True) -> None:
    """Stop the sandbox's clock (it then moves only by `advance`), or let it run again:
    a bot reply falls due only when the test says so."""
    import requests

    requests.post(f"{_control(sandbox)}/clock", json={"hold": held}, timeout=5).raise_for_status()


def stats(sandbox) -> dict[str, int]:
    """How many requests reached each sandbox operation since the last reset."""
    import requests

    return requests.get(f"{_control(sandbox)}/stats", timeout=5).json()["requests"]


def corrupt_session(store, sid: str, store_url: str) -> None:
    """Write garbage into sid's stored record, as a bad deploy or a disk fault might: past
    the store, straight into its SQLite file or Redis hash (`store_url` names the Redis)."""
    if hasattr(store, "path"):
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(store.path)) as db, db:
            db.execute("UPDATE sessions SET data = '{not json' WHERE id = ?", (sid,))
        return
    import redis

    with redis.Redis.from_url(store_url) as client:
        key = store.key_prefix + sid
        fields = [f for f in client.hkeys(key) if f.startswith(b"d:")]
        assert fields, "no stored value to corrupt"
        client.hset(key, mapping=dict.fromkeys(fields, "{not json"))


def message_payload(mid: str, content: dict, *, outgoing: bool = True, **extra) -> dict:
    """A MessageDto payload as the upstream sends it, the required fields filled: a bot's
    text message unless `outgoing` is False (the visitor's) or `extra` says otherwise."""
    return {
        "id": mid,
        "sender": "bot" if outgoing else "user",
        "type": "text",
        "status": "sent",
        "created": "2024-05-01T10:00:00Z",
        "outgoing": outgoing,
        "content": content,
        "tags": [],
        **extra,
    }


def conversation_payload(conversation_id: str, **fields) -> dict:
    """A created conversation as the contract describes it (`fields` override)."""
    from webwidget.chatcaptain.models import ConversationDto, ConversationStatus

    stamp = "2024-05-01T10:00:00Z"
    values = dict(
        id=conversation_id, contactId="ct", archived=False, channelId="channel_abc123",
        channelType="web", chatbotId="demo-bot", idToken="it", language="EN", operatorId="",
        photoUrl="", sessionCount=1, tags=[], unread=False, variables={}, created=stamp,
        updated=stamp, name="Website visitor", snoozed="", lastUserAction=stamp, mentions=[],
        mentionsRead={}, environment="prod", metadata={}, state=ConversationStatus.BOT,
    )
    return ConversationDto(**{**values, **fields}).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )


SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
HOST_ORIGIN = "https://host.example"
CHANNEL_TOKEN = "channel_token_xyz789"


def widget_settings(upstream_url: str, store_url: str, **overrides):
    """Settings for a widget on the sandbox's `demo-bot`, isolated from the environment."""
    from webwidget.settings import Settings

    values = {
        "SECRET_KEY": SECRET_KEY,
        "CHATCAPTAIN_BASE_URL": upstream_url,
        "CHATCAPTAIN_CHATBOT_ID": "demo-bot",
        "CHATCAPTAIN_CHANNEL_ID": "channel_abc123",
        "CHATCAPTAIN_CHANNEL_TOKEN": CHANNEL_TOKEN,
        "CHATCAPTAIN_SENDING_ENABLED": True,
        "WIDGET_ALLOWED_ORIGINS": HOST_ORIGIN,
        "SESSION_STORE_URL": store_url,
        "UPSTREAM_CONNECT_TIMEOUT": 1.0,
        "UPSTREAM_READ_TIMEOUT": 2.0,
        "UPSTREAM_DEADLINE": 3.0,
        # Polls wait for their upstream call, so a test sees each poll's effect at once;
        # the background refresh (the default) has its own tests in test_coalesce.py
        # and test_polling.py, and the browser tests run with the default.
        "UPSTREAM_REFRESH_CALLS": 0,
        # Short polls, answered at once; held polls (the default) have their own tests in
        # test_held_polls.py, and the browser tests run with the default.
        "WIDGET_HOLD_SECONDS": 0,
        **overrides,
    }
    return Settings(_env_file=None, **values)


def worker_redis_db(redis_url: str) -> str:
    """A database of its own per xdist worker on the session's redis-server, so that
    parallel runs stay apart."""
    import os

    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    db = 1 + int(worker.removeprefix("gw") or 0) % 15
    return redis_url.rsplit("/", 1)[0] + f"/{db}"


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request, tmp_path):
    """Every widget test runs on both session stores."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    url = worker_redis_db(request.getfixturevalue("redis_url"))
    # Flushed before each test.
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


class MovableClock:
    """Wall time plus an offset a test moves forward: time that passes without a sleep."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move this clock `seconds` ahead (the app sees that much time pass at once)."""
        self.offset += seconds


class StoppedClock:
    """A clock that stands still until the test moves it, for code that must see exactly
    the time the test sets. Starts now unless told (Redis TTLs want a real-ish time)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move this clock `seconds` ahead."""
        self.now += seconds


@pytest.fixture
def clock():
    """The clock the `app` fixture's app reads: `clock.advance(s)` instead of sleeping."""
    return MovableClock()


def make_app(upstream, tmp_path, *, store_url: str | None = None, clock=None, **overrides):
    """A widget app on `upstream` (a sandbox or its URL) with its instance folder in
    tmp_path: SQLite sessions there unless `store_url`; `overrides` are settings."""
    from webwidget.app import create_app

    settings = widget_settings(
        getattr(upstream, "url", upstream),
        store_url or f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
        **overrides,
    )
    app = create_app(settings=settings, instance_path=str(tmp_path), clock=clock)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(sandbox, store_url, tmp_path, clock):
    """The widget app on the sandbox upstream, with its instance folder in tmp_path."""
    return make_app(sandbox, tmp_path, store_url=store_url, clock=clock)


class Visitor:
    """A browser-like visitor: keeps cookies, sends same-origin fetch metadata on POST."""

    def __init__(self, client) -> None:
        self.client = client

    def get(self, path, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path, data=None, *, htmx=False, headers=None, **kwargs):
        merged = {"Sec-Fetch-Site": "same-origin", **(headers or {})}
        if htmx:
            merged["HX-Request"] = "true"
        return self.client.post(path, data=data or {}, headers=merged, **kwargs)

    def start(self, widget="default", **form):
        return self.post(f"/w/{widget}/start", form)

    def send(self, text, widget="default", **kwargs):
        return self.post(f"/w/{widget}/send", {"text": text}, **kwargs)

    def end(self, widget="default", **kwargs):
        return self.post(f"/w/{widget}/end", **kwargs)


def https_client(app, **kwargs):
    """A test client that speaks https, so that Secure cookies travel."""
    # Flask's test client takes its scheme from PREFERRED_URL_SCHEME; a wsgi.url_scheme
    # in environ_base is overwritten by the builder, so requests would still be http.
    app.config["PREFERRED_URL_SCHEME"] = "https"
    return app.test_client(**kwargs)


@pytest.fixture
def visitor(app):
    """A visitor on https://localhost."""
    return Visitor(https_client(app))


# --- reading HTML -----------------------------------------------------------------------

VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr"}
)


@dataclass
class Element:
    """One start tag: its name, attributes (None for a bare one) and enclosing element."""

    tag: str
    attrs: dict[str, str | None]
    parent: Element | None

    def ancestors(self) -> list[Element]:
        """The enclosing elements, nearest first."""
        found, current = [], self.parent
        while current is not None:
            found.append(current)
            current = current.parent
        return found


@dataclass
class Html:
    """A parsed page or fragment: every element in document order, the text, the comments."""

    elements: list[Element] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    @property
    def tags(self) -> list[tuple[str, dict[str, str | None]]]:
        """(tag, attributes) of every element, in document order."""
        return [(element.tag, element.attrs) for element in self.elements]


class _HtmlReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.html = Html()
        self._open: list[Element] = []

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs), self._open[-1] if self._open else None)
        self.html.elements.append(element)
        if tag not in VOID_ELEMENTS:
            self._open.append(element)

    def handle_startendtag(self, tag, attrs):
        self.html.elements.append(
            Element(tag, dict(attrs), self._open[-1] if self._open else None)
        )

    def handle_endtag(self, tag):
        # Close up to the nearest open element of that name; a stray end tag closes none.
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data):
        self.html.text.append(data)

    def handle_comment(self, data):
        self.html.comments.append(data)


def parse_html(html: str) -> Html:
    """Every element (with its ancestors), text and comment of `html`."""
    reader = _HtmlReader()
    reader.feed(html)
    reader.close()
    return reader.html
