"""The README's first command: with no ChatCaptain settings the widget runs on the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import free_port, wait_for_server, wait_until

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def demo_env(instance: Path, port: int) -> dict[str, str]:
    """The environment of a fresh machine (no CHATCAPTAIN_* or SECRET_KEY at all) that asks
    for the demo: gunicorn runs it only with WEBWIDGET_DEMO=1."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CHATCAPTAIN_", "WIDGET_", "SESSION_")) and key != "SECRET_KEY"
    }
    env.update(WEBWIDGET_INSTANCE_PATH=str(instance), PORT=str(port), WEBWIDGET_DEMO="1")
    return env


@pytest.fixture(
    params=[["--workers", "1", "--worker-class", "sync", "--threads", "1"], ["--workers", "2"]],
    ids=["one-sync-worker", "two-gthread-workers"],
)
def gunicorn_demo(request, tmp_path):
    """The demo under gunicorn, as the Procfile runs it."""
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                GUNICORN,
                "-c",
                "gunicorn.conf.py",
                "--no-control-socket",
                "--bind",
                f"127.0.0.1:{port}",
                *request.param,
                "wsgi:app",
            ],
            cwd=ROOT,
            env=demo_env(tmp_path, port),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url + "/", proc, log=log)
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=40)  # gunicorn allows requests in flight graceful_timeout (20 s)


def test_demo_under_gunicorn_converses_with_the_bundled_sandbox(gunicorn_demo):
    url, log = gunicorn_demo
    host_page = requests.get(url + "/", timeout=5)
    assert host_page.status_code == 200
    assert "/w/default" in host_page.text or "embed.js" in host_page.text

    headers = {"Sec-Fetch-Site": "same-origin", "HX-Request": "true"}
    started = requests.post(f"{url}/w/default/start", headers=headers, timeout=10)
    assert started.status_code == 200
    handle = started.headers["X-Widget-Session"]
    assert "Ahoy!" in started.text

    session = {"X-Widget-Session": handle}
    sent = requests.post(
        f"{url}/w/default/send",
        data={"text": "hello demo"},
        headers={**headers, **session},
        timeout=10,
    )
    assert sent.status_code == 200

    def answered() -> str | None:
        page = requests.get(f"{url}/w/default", headers=session, timeout=5).text
        return page if "You said: hello demo" in page else None

    # Several requests, so that with two workers both serve this conversation.
    page = wait_until(answered, timeout=10, what="the sandbox bot's answer on the page")
    assert "hello demo" in page
    assert "bundled ChatCaptain sandbox" in log.read_text()
