"""No secret in any byte a browser can read, and none in the logs (DESIGN invariant 1).

A crawl visits every route in every state (welcome, active after "all", after sends,
ended, every error page, upstream down or misbehaving, session store down, rate
limited, static files, the loader) with the handle in the cookie and in the header.
The secrets are collected from where they really live: the configured channel token
and API key, and every widget token, contact id and conversation id the sandbox issued
(read from its own store), plus the signing key. Every body, header, cookie and
redirect, and every log record at DEBUG from every logger, is searched for each.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import CHANNEL_TOKEN, SECRET_KEY, advance, faults, heal, widget_settings

API_KEY = "api_key_s3cr3t_0123456789abcdef"
SAME = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def keyed_sandbox():
    """A sandbox that demands the API key, with its store readable by the test."""
    from webwidget.sandbox import create_sandbox_app
    from webwidget.sandbox.config import SandboxConfig
    from webwidget.sandbox.server import BackgroundServer

    app = create_sandbox_app(SandboxConfig(api_key=API_KEY, token_ttl_seconds=600))
    server = BackgroundServer(app).start()
    server.app = app
    yield server
    server.stop()


def issued_secrets(sandbox_app) -> set[str]:
    """Every widget token, contact id and conversation id the sandbox handed out."""
    store = sandbox_app.extensions["webwidget_sandbox"].store
    values = set()
    with store.transaction() as db:
        for sql in (
            "SELECT token FROM tokens",
            "SELECT id FROM contacts",
            "SELECT id FROM conversations",
        ):
            values.update(row[0] for row in db.execute(sql))
    return values


class Recorder:
    """A browser-like client that keeps every response it saw, in either transport."""

    def __init__(self, app, transport: str) -> None:
        app.config["PREFERRED_URL_SCHEME"] = "https"
        self.client = app.test_client(use_cookies=transport == "cookie")
        self.transport = transport
        self.handle: str | None = None
        self.seen: list[tuple[str, int, list[tuple[str, str]], bytes]] = []

    def request(self, method: str, path: str, *, htmx=False, headers=None, **kwargs):
        sent = dict(headers or {})
        if method != "GET":
            sent = {**SAME, **sent}
        if htmx:
            sent["HX-Request"] = "true"
        if self.transport == "header" and self.handle:
            sent["X-Widget-Session"] = self.handle
        response = self.client.open(path, method=method, headers=sent, **kwargs)
        body = response.get_data()
        response.close()
        if "X-Widget-Session" in response.headers:
            self.handle = response.headers["X-Widget-Session"] or None
        self.seen.append((f"{method} {path}", response.status_code, list(response.headers), body))
        return response

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, data=None, **kwargs):
        return self.request("POST", path, data=data or {}, **kwargs)


def crawl(app, sandbox, visitor: Recorder) -> None:
    """Every route in every state; asserts only that nothing is a server error."""
    widget = "/w/default"
    # Welcome, static files, the loader, health and metrics.
    for path in (
        widget,
        f"{widget}?page=https://host.example/p&lang=de",
        f"{widget}/messages",
        "/static/css/widget.css",
        "/static/js/widget.js",
        "/embed.js",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        visitor.get(path)
    visitor.get(widget, htmx=True)

    # Active conversation with every content kind, sends, polls.
    visitor.post(f"{widget}/start", {"page_url": "https://host.example/p"})
    visitor.get(widget)
    visitor.post(f"{widget}/send", {"text": "all"})
    advance(sandbox, 30)
    visitor.get(widget)
    visitor.get(widget, htmx=True)
    visitor.get(f"{widget}/messages?v=stale", htmx=True)
    visitor.post(f"{widget}/send", {"text": "hello"}, htmx=True)
    visitor.post(f"{widget}/send", {"button_label": "Yes", "button_value": "yes"}, htmx=True)

    # Error pages.
    visitor.get("/w/unknown")
    visitor.get("/nowhere")
    visitor.post(f"{widget}/send", {"text": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
    visitor.post(f"{widget}/send", {"text": "x" * 5000})
    visitor.post(f"{widget}/send", {"text": "x" * 40_000})
    visitor.get(f"{widget}/send")
    visitor.post(f"{widget}/send", {"text": ""}, htmx=True)

    # Upstream down or misbehaving, for pages, polls and sends.
    for fault in (
        {"error_status": 503, "error_rate": 1},
        {"error_status": 401, "error_rate": 1, "operations": ["send_message"]},
        {"malformed_rate": 1},
        {"schema_violation_rate": 1},
        {"error_body_rate": 1},
    ):
        faults(sandbox, **fault)
        visitor.get(widget)
        visitor.get(f"{widget}/messages?v=x", htmx=True)
        visitor.post(f"{widget}/send", {"text": "during trouble"}, htmx=True)
        visitor.post(f"{widget}/send", {"text": "during trouble"})
        heal(sandbox)
    # Token expiry: the renewal path (newWebToken) runs.
    advance(sandbox, 700)
    visitor.get(widget)

    # Session store down.
    from webwidget.sessions import get_store

    store = get_store(app)
    if hasattr(store, "path"):
        real_path = store.path
        store.path = Path("/nonexistent-dir/for/sure/sessions.sqlite3")
        visitor.get(widget)
        visitor.post(f"{widget}/send", {"text": "store down"})
        store.path = real_path

    # Rate limited (the app allows 6 sends a minute), then ended, then replayed.
    for _ in range(8):
        visitor.post(f"{widget}/send", {"text": "again"}, htmx=True)
    old = visitor.handle
    visitor.post(f"{widget}/end")
    visitor.get(widget)
    if old:
        visitor.client.get(widget, headers={"X-Widget-Session": old})
    visitor.post(f"{widget}/start", htmx=True)
    visitor.post(f"{widget}/end", htmx=True)
    for _ in range(4):
        visitor.post(f"{widget}/start")

    statuses = [status for _, status, _, _ in visitor.seen]
    assert {403, 404, 405, 413, 429, 503} <= set(statuses)


@pytest.mark.parametrize("transport", ["cookie", "header"])
def test_no_secret_in_any_response_or_log(keyed_sandbox, tmp_path, caplog, transport):
    from webwidget.app import create_app

    settings = widget_settings(
        keyed_sandbox.url,
        f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
        CHATCAPTAIN_API_KEY=API_KEY,
        RATE_LIMIT_START_PER_IP="4/minute",
        RATE_LIMIT_SEND_PER_SESSION="6/minute",
        UPSTREAM_BREAKER_FAIL_MAX=1000,
    )
    app = create_app(settings=settings, instance_path=str(tmp_path))
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "werkzeug", "webwidget", "limits", "requests"):
        logging.getLogger(name).setLevel(logging.DEBUG)

    visitor = Recorder(app, transport)
    crawl(app, keyed_sandbox, visitor)

    issued = issued_secrets(keyed_sandbox.app)
    assert any(value.startswith("contact") or len(value) > 8 for value in issued)
    assert len(issued) >= 3  # a token, a contact and a conversation at least
    secrets = {CHANNEL_TOKEN, API_KEY, SECRET_KEY, *issued}

    served = [(what, status) for what, status, _, _ in visitor.seen]
    assert all(status < 500 or status in (502, 503, 504) for _, status in served), served
    for what, status, headers, body in visitor.seen:
        for secret in secrets:
            assert secret.encode() not in body, f"{what} ({status}) body holds a secret"
            for name, value in headers:
                assert secret not in value, f"{what} ({status}) header {name} holds a secret"

    records = caplog.records
    assert records, "nothing was logged: the log scan would prove nothing"
    for record in records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info and not record.exc_text:
            text += logging.Formatter().formatException(record.exc_info)
        for secret in secrets:
            assert secret not in text, f"a {record.name} log record holds a secret: {text[:200]}"


@pytest.mark.parametrize("transport", ["cookie", "header"])
def test_every_html_answer_has_the_csp_and_every_cookie_the_host_prefix(
    keyed_sandbox, tmp_path, transport
):
    # The same crawl as above (every state, every error page, upstream and store down).
    from webwidget.app import create_app

    settings = widget_settings(
        keyed_sandbox.url,
        f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
        CHATCAPTAIN_API_KEY=API_KEY,
        RATE_LIMIT_START_PER_IP="4/minute",
        RATE_LIMIT_SEND_PER_SESSION="6/minute",
        UPSTREAM_BREAKER_FAIL_MAX=1000,
    )
    visitor = Recorder(create_app(settings=settings, instance_path=str(tmp_path)), transport)
    crawl(visitor.client.application, keyed_sandbox, visitor)

    html_statuses, cookies = set(), []
    for what, status, headers, _ in visitor.seen:
        found = dict(headers)
        cookies += [value for name, value in headers if name == "Set-Cookie"]
        if not found.get("Content-Type", "").startswith("text/html"):
            continue
        html_statuses.add(status)
        csp = {part.split()[0]: part.split()[1:] for part in found.get(
            "Content-Security-Policy", "").split(";") if part.split()}
        assert csp.get("default-src") == ["'none'"], f"{what} ({status}): {csp}"
        assert csp.get("script-src") == ["'self'"], f"{what} ({status})"
        assert csp.get("frame-ancestors"), f"{what} ({status})"
    assert {200, 403, 404, 405, 413, 429, 503} <= html_statuses, html_statuses
    # Every cookie the app ever set (start, renewal, end) keeps the __Host- rules.
    if transport == "cookie":
        assert cookies
    for cookie in cookies:
        name = cookie.split("=", 1)[0]
        attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
        assert name.startswith("__Host-"), cookie
        assert "secure" in attributes and "path=/" in attributes, cookie
        assert not any(a.startswith("domain=") for a in attributes), cookie


def test_no_secret_in_any_line_gunicorn_writes(keyed_sandbox, tmp_path):
    # The production process: app logs, gunicorn's error log and its access log, through
    # a journey with the handle in X-Widget-Session (and upstream trouble, token renewal).
    import requests
    from test_scale_out import Instance, instance_env

    env = instance_env(
        keyed_sandbox.url,
        f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
        CHATCAPTAIN_API_KEY=API_KEY,
        UPSTREAM_BREAKER_FAIL_MAX="1000",
    )
    instance = Instance("secrets", tmp_path, env)
    instance.start()
    handles = []
    try:
        web = requests.Session()

        def call(method: str, path: str, **kwargs):
            headers = {"Sec-Fetch-Site": "same-origin", **kwargs.pop("headers", {})}
            if handles:
                headers["X-Widget-Session"] = handles[-1]
            answer = web.request(method, instance.url + path, headers=headers, timeout=30,
                                 allow_redirects=False, **kwargs)
            if answer.headers.get("X-Widget-Session"):
                handles.append(answer.headers["X-Widget-Session"])
            return answer

        call("GET", "/w/default?page=https://host.example/p")
        assert call("POST", "/w/default/start", data={"page_url": "https://host.example/p"}).ok
        call("POST", "/w/default/send", data={"text": "all"}, headers={"HX-Request": "true"})
        advance(keyed_sandbox, 30)
        call("GET", "/w/default/messages?v=x", headers={"HX-Request": "true"})
        faults(keyed_sandbox, error_status=503, error_rate=1)
        call("GET", "/w/default")
        call("POST", "/w/default/send", data={"text": "during trouble"})
        heal(keyed_sandbox)
        advance(keyed_sandbox, 700)  # the widget token expires: renewal runs
        call("GET", "/w/default")
        call("POST", "/w/default/end")
    finally:
        instance.stop()
    issued = issued_secrets(keyed_sandbox.app)
    assert handles and len(issued) >= 3
    written = instance.log.read_text(encoding="utf-8")
    assert '"access": true' in written and "/w/default/send" in written
    for secret in {CHANNEL_TOKEN, API_KEY, SECRET_KEY, *issued, *handles}:
        assert secret not in written, f"a secret in gunicorn's output: {secret[:6]}..."
