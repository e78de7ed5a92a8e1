"""Two instances under gunicorn sharing one Redis: one conversation across both, shared
rate limits, restarts that lose nothing, and a Redis outage that ends in a 503 and heals."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import (
    CHANNEL_TOKEN,
    SECRET_KEY,
    advance,
    free_port,
    redis_answers,
    stats,
    wait_for_server,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
MESSAGE_ID = re.compile(r'data-message-id="([^"]+)"')


class RedisServer:
    """A dedicated redis-server that can be stopped and started again on its port.

    Append-only with fsync on every write, so a restart keeps the sessions: the test
    is about an outage, not about losing Redis's data.
    """

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: scripts/test.sh installs it"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: redis_answers(self.port, self.process), timeout=10,
                   what="redis-server to start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class Instance:
    """One widget instance: gunicorn with its own port and instance folder."""

    def __init__(self, name: str, tmp: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.folder = tmp / name
        self.folder.mkdir()
        self.log = tmp / f"{name}.log"
        self.env = {**env, "PORT": str(self.port), "WEBWIDGET_INSTANCE_PATH": str(self.folder)}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [GUNICORN, "-c", "gunicorn.conf.py", "--no-control-socket",
                 "--bind", f"127.0.0.1:{self.port}", "wsgi:app"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        try:
            wait_for_server(self.url + "/healthz", self.process, log=self.log, timeout=30)
        except BaseException:
            self.stop()  # a master that never answered must not outlive the test
            raise

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None


def instance_env(upstream_url: str, store_url: str, **extra: str) -> dict[str, str]:
    """A clean production-like environment for one instance."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CHATCAPTAIN_", "WIDGET_", "SESSION_", "RATE_LIMIT_",
                               "PROMETHEUS_"))
        and key not in ("SECRET_KEY", "WEBWIDGET_DEMO")
    }
    env.update(
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="4",
    )
    env.update(
        SECRET_KEY=SECRET_KEY,
        CHATCAPTAIN_BASE_URL=upstream_url,
        CHATCAPTAIN_CHATBOT_ID="demo-bot",
        CHATCAPTAIN_CHANNEL_ID="channel_abc123",
        CHATCAPTAIN_CHANNEL_TOKEN=CHANNEL_TOKEN,
        CHATCAPTAIN_SENDING_ENABLED="true",
        WIDGET_ALLOWED_ORIGINS="https://host.example",
        SESSION_STORE_URL=store_url,
        **extra,
    )
    return env


class Browser:
    """A visitor whose handle travels in X-Widget-Session (cookies are Secure, this is http)."""

    def __init__(self) -> None:
        self.handle: str | None = None

    def _headers(self, htmx: bool, post: bool) -> dict[str, str]:
        headers = {}
        if self.handle:
            headers["X-Widget-Session"] = self.handle
        if htmx:
            headers["HX-Request"] = "true"
        if post:
            headers["Sec-Fetch-Site"] = "same-origin"
        return headers

    def _keep(self, response: requests.Response) -> requests.Response:
        if "X-Widget-Session" in response.headers:
            self.handle = response.headers["X-Widget-Session"] or None
        return response

    def get(self, instance: Instance, path: str, *, htmx: bool = False) -> requests.Response:
        return self._keep(requests.get(instance.url + path, headers=self._headers(htmx, False),
                                       timeout=15, allow_redirects=False))

    def post(self, instance: Instance, path: str, data: dict[str, str] | None = None,
             *, htmx: bool = False) -> requests.Response:
        return self._keep(requests.post(instance.url + path, data=data or {},
                                        headers=self._headers(htmx, True), timeout=15,
                                        allow_redirects=False))


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pair(sandbox_server, shared_redis, tmp_path_factory):
    """Instances A and B on the same Redis and the same sandbox."""
    tmp = tmp_path_factory.mktemp("instances")
    env = instance_env(sandbox_server.url, shared_redis.url,
                       RATE_LIMIT_START_PER_IP="3/minute")
    a, b = Instance("a", tmp, env), Instance("b", tmp, env)
    a.start()
    b.start()
    yield a, b
    for instance in (a, b):
        instance.stop()
    for instance in (a, b):
        log = instance.log.read_text()
        assert CHANNEL_TOKEN not in log and "wt_" not in log and "?token" not in log


@pytest.fixture
def instances(pair, shared_redis, sandbox):
    """The pair, with Redis emptied (sessions and rate-limit counters) before each test."""
    import redis

    if shared_redis.process is None:
        shared_redis.start()
    client = redis.Redis.from_url(shared_redis.url)
    client.flushdb()
    client.close()
    return pair



def test_a_conversation_started_on_one_instance_continues_on_the_other(instances, sandbox):
    a, b = instances
    visitor = Browser()
    assert visitor.post(a, "/w/default/start").status_code == 303
    on_a = visitor.get(a, "/w/default").text
    on_b = visitor.get(b, "/w/default").text
    assert MESSAGE_ID.findall(on_a) and MESSAGE_ID.findall(on_a) == MESSAGE_ID.findall(on_b)

    assert visitor.post(b, "/w/default/send", {"text": "hello from b"}).status_code == 303
    advance(sandbox, 5)
    seen_on_a = visitor.get(a, "/w/default").text
    assert "hello from b" in seen_on_a
    assert "You said: hello from b" in seen_on_a
    # Ending on A ends it everywhere.
    visitor.post(a, "/w/default/end")
    assert 'action="/w/default/start"' in Browser().get(b, "/w/default").text
    assert stats(sandbox)["create_contact"] == 1


def test_rate_limits_are_shared_between_instances(instances):
    a, b = instances
    # 3 chat starts per minute per IP: two on A and one on B use the allowance up.
    for instance in (a, b, a):
        assert Browser().post(instance, "/w/default/start").status_code == 303
    for instance in (b, a):
        refused = Browser().post(instance, "/w/default/start")
        assert refused.status_code == 429


def test_restarting_an_instance_loses_nothing(instances):
    a, b = instances
    visitor = Browser()
    visitor.post(a, "/w/default/start")
    before = MESSAGE_ID.findall(visitor.get(a, "/w/default").text)
    a.stop()
    assert MESSAGE_ID.findall(visitor.get(b, "/w/default").text) == before  # B carries on
    a.start()
    again = visitor.get(a, "/w/default")
    assert again.status_code == 200
    assert MESSAGE_ID.findall(again.text) == before


def test_a_redis_outage_gives_503_fragments_and_service_resumes(instances, shared_redis):
    a, b = instances
    visitor = Browser()
    visitor.post(a, "/w/default/start")
    before = MESSAGE_ID.findall(visitor.get(a, "/w/default").text)
    shared_redis.stop()
    try:
        poll = visitor.get(b, "/w/default/messages?v=x", htmx=True)
        assert poll.status_code == 503
        page = visitor.get(a, "/w/default")
        assert page.status_code == 503
        sent = visitor.post(a, "/w/default/send", {"text": "lost?"}, htmx=True)
        assert sent.status_code == 503
        for answer in (poll, page, sent):
            blob = answer.text + repr(dict(answer.headers))
            assert "Traceback" not in blob and "redis://" not in blob
            assert str(shared_redis.port) not in blob
            assert CHANNEL_TOKEN not in blob and SECRET_KEY not in blob
        assert "unavailable" in page.text.lower()
        assert visitor.handle  # the visitor keeps the handle through the outage
        ready = requests.get(a.url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
    finally:
        shared_redis.start()
    # Service resumes on both instances, with the same conversation.
    wait_until(lambda: visitor.get(a, "/w/default").status_code == 200, timeout=10,
               what="instance A to serve the page again once Redis is back")
    assert MESSAGE_ID.findall(visitor.get(a, "/w/default").text) == before
    assert MESSAGE_ID.findall(visitor.get(b, "/w/default").text) == before
    assert requests.get(b.url + "/readyz", timeout=10).status_code == 200
