"""Behind nginx (Debian's package) with TLS: gunicorn serves the widget, X-Forwarded-* are right."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import (
    CHANNEL_TOKEN,
    SECRET_KEY,
    advance,
    free_port,
    hold,
    listens,
    stats,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
PROXY_CONF = ROOT / "docs" / "hosting" / "webwidget-proxy.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
{user}
events {{ worker_connections 64; }}
http {{
  access_log {tmp}/access.log;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream webwidget {{ server 127.0.0.1:{app_port}; keepalive 8; keepalive_timeout 4s; }}
  server {{
    listen 127.0.0.1:{http_port};
    location / {{ include {proxy_conf}; }}
  }}
  # A proxy that cuts held polls: a read timeout shorter than the hold (PaaS routers and
  # strict proxies do this); the widget must fall back to short polls behind it.
  server {{
    listen 127.0.0.1:{cutting_port};
    location / {{
      proxy_pass http://webwidget;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 2s;
    }}
  }}
  server {{
    listen 127.0.0.1:{https_port} ssl;
    ssl_certificate {tmp}/cert.pem;
    ssl_certificate_key {tmp}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{ include {proxy_conf}; }}
  }}
}}
"""


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def proxied(module_sandbox, tmp_path_factory):
    """gunicorn (the Procfile's config) on the sandbox, nginx with TLS in front of it."""
    assert Path(NGINX).exists(), "nginx is missing: scripts/test.sh installs it"
    tmp_path = tmp_path_factory.mktemp("nginx")
    sandbox = module_sandbox
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            tmp_path / "key.pem",
            "-out",
            tmp_path / "cert.pem",
        ],
        check=True,
        capture_output=True,
    )
    app_port, http_port, https_port = free_port(), free_port(), free_port()
    cutting_port = free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CHATCAPTAIN_", "WIDGET", "SESSION_"))
        },
        "SECRET_KEY": SECRET_KEY,
        "CHATCAPTAIN_BASE_URL": sandbox.url,
        "CHATCAPTAIN_CHATBOT_ID": "demo-bot",
        "CHATCAPTAIN_CHANNEL_ID": "channel_abc123",
        "CHATCAPTAIN_CHANNEL_TOKEN": CHANNEL_TOKEN,
        "CHATCAPTAIN_SENDING_ENABLED": "true",
        "WIDGET_ALLOWED_ORIGINS": "https://host.example",
        "SESSION_STORE_URL": f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
        "WEBWIDGET_INSTANCE_PATH": str(tmp_path / "instance"),
        "TRUSTED_PROXY_HOPS": "1",
        "WEB_CONCURRENCY": "2",
    }
    app_log = tmp_path / "gunicorn.log"
    with app_log.open("wb") as out:
        app = subprocess.Popen(
            [GUNICORN, "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{app_port}", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            tmp=tmp_path,
            app_port=app_port,
            http_port=http_port,
            https_port=https_port,
            cutting_port=cutting_port,
            proxy_conf=PROXY_CONF,
            user="user root;" if os.geteuid() == 0 else "",
        )
    )
    nginx_log = tmp_path / "nginx.stderr"
    with nginx_log.open("wb") as out:
        nginx = subprocess.Popen(
            [NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: listens(app_port, app, app_log), timeout=30,
                   what=f"gunicorn to listen on {app_port}")
        wait_until(lambda: listens(https_port, nginx, nginx_log), timeout=30,
                   what=f"nginx to listen on {https_port}")
        yield {
            "https": f"https://127.0.0.1:{https_port}",
            "http": f"http://127.0.0.1:{http_port}",
            "cert": str(tmp_path / "cert.pem"),
            "cutting": f"http://127.0.0.1:{cutting_port}",
            "sandbox": sandbox,
        }
    finally:
        stop(nginx)
        stop(app)


def test_a_visitor_chats_through_nginx_over_tls(proxied):
    base = proxied["https"]
    browser = requests.Session()
    # Not the environment's CA bundle (REQUESTS_CA_BUNDLE would win over `verify`): our cert.
    browser.trust_env = False
    browser.verify = proxied["cert"]
    page = browser.get(f"{base}/w/default", timeout=30)
    assert page.status_code == 200 and 'action="/w/default/start"' in page.text
    # The app knows it is served over https (X-Forwarded-Proto), so it says so.
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    # A browser without fetch metadata sends Origin; it must match the public https origin.
    started = browser.post(
        f"{base}/w/default/start",
        data={"page_url": ""},
        headers={"Origin": base},
        allow_redirects=False,
        timeout=30,
    )
    assert started.status_code == 303, started.text[:500]
    location = started.headers["Location"]
    assert not location.startswith("http:"), location
    cookie = next(c for c in browser.cookies if c.name == "__Host-ww_session-default")
    assert cookie.secure
    chat = browser.get(f"{base}/w/default", timeout=30)
    assert 'role="log"' in chat.text and "data-message-id=" in chat.text
    poll = browser.get(f"{base}/w/default/messages", headers={"HX-Request": "true"}, timeout=30)
    assert poll.status_code in (200, 204)
    sent = browser.post(
        f"{base}/w/default/send",
        data={"text": "help"},
        headers={"Origin": base},
        allow_redirects=False,
        timeout=30,
    )
    assert sent.status_code == 303
    for response in (page, started, chat, poll, sent):
        assert CHANNEL_TOKEN not in response.text and CHANNEL_TOKEN not in str(response.headers)


def test_a_client_cannot_claim_https_or_another_host_through_the_proxy(proxied):
    base = proxied["http"]
    spoofed = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-For": "6.6.6.6",
    }
    page = requests.get(f"{base}/w/default", headers=spoofed, timeout=30)
    assert page.status_code == 200
    # nginx overwrote the client's X-Forwarded-Proto with the real scheme: plain http.
    assert "Strict-Transport-Security" not in page.headers
    # An https Origin is not this plain-http origin: a cross-site POST is refused.
    refused = requests.post(
        f"{base}/w/default/start",
        headers={**spoofed, "Origin": "https://evil.example"},
        allow_redirects=False,
        timeout=30,
    )
    assert refused.status_code == 403
    allowed = requests.post(
        f"{base}/w/default/start",
        headers={**spoofed, "Origin": base},
        allow_redirects=False,
        timeout=30,
    )
    assert allowed.status_code == 303


def held_params(html: str) -> dict[str, str]:
    from test_polling import poller_params

    return poller_params(html)


def query(params: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())


def test_a_held_poll_brings_the_reply_through_nginx(proxied):
    """The documented proxy settings hold a poll for its whole hold and pass its answer on
    as soon as the reply is upstream (buffering does not matter: the answer is whole)."""
    base, sandbox = proxied["https"], proxied["sandbox"]
    browser = requests.Session()
    browser.trust_env = False
    browser.verify = proxied["cert"]
    htmx = {"HX-Request": "true", "Origin": base}
    started = browser.post(f"{base}/w/default/start", headers=htmx, timeout=30)
    assert started.status_code == 200
    hold(sandbox)
    try:
        sent = browser.post(f"{base}/w/default/send", data={"text": "later"}, headers=htmx,
                            timeout=30)
        params = held_params(sent.text)
        assert params["m"] == "h"
        result = {}
        listed = stats(sandbox).get("list_messages", 0)
        poll = threading.Thread(target=lambda: result.update(r=browser.get(
            f"{base}/w/default/messages?{query(params)}", headers=htmx, timeout=30)))
        poll.start()
        wait_until(lambda: stats(sandbox).get("list_messages", 0) > listed, timeout=20,
                   what="the held poll's first check upstream")
        available = time.monotonic()
        advance(sandbox, 61)
        poll.join(timeout=30)
        took = time.monotonic() - available
    finally:
        hold(sandbox, False)
    assert result["r"].status_code == 200
    assert "a minute later" in result["r"].text
    assert took < 5, f"{took:.1f} s through nginx"


def test_behind_a_proxy_that_cuts_held_polls_the_page_falls_back_to_short_polls(proxied):
    base = proxied["cutting"]
    browser = requests.Session()
    browser.trust_env = False
    htmx = {"HX-Request": "true", "Sec-Fetch-Site": "same-origin"}
    # Started through the documented proxy: a start's upstream calls may outlast 2 s on
    # a busy machine. The same gunicorn serves both.
    started = browser.post(f"{proxied['http']}/w/default/start", headers=htmx, timeout=30)
    assert started.status_code == 200, started.text[:300]
    handle = started.headers["X-Widget-Session"]
    htmx["X-Widget-Session"] = handle
    params = held_params(started.text)
    assert params["m"] == "h"
    cut = browser.get(f"{base}/w/default/messages?{query(params)}", headers=htmx, timeout=30)
    # nginx gave up on the held poll: the page got no new poller from it.
    assert cut.status_code == 504
    # widget.js sees a status that is not ours and no new poller: it asks again with cut=1.
    params["cut"] = "1"
    switched = browser.get(f"{base}/w/default/messages?{query(params)}", headers=htmx,
                           timeout=30)
    assert switched.status_code == 200
    short = held_params(switched.text)
    assert short["m"] == "s"
    # Short polls answer at once, well within the proxy's timeout.
    again = browser.get(f"{base}/w/default/messages?{query(short)}", headers=htmx, timeout=30)
    assert again.status_code == 204
