"""`webwidget check URL`, the embed doctor: local host pages with each mistake, the
widget app as a real server, one line per finding with its fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, make_app
from flask import Flask, request

from webwidget.embed_doctor import csp_findings, diagnose, source_allows

WEBWIDGET = Path(sys.executable).parent / "webwidget"


def host_site(widget_url: str) -> Flask:
    """A site owner's pages: `/page?widget=..&csp=..&second=1&tag=0`."""
    app = Flask(__name__)

    @app.get("/page")
    def page():
        tag = (
            f'<script src="{widget_url}/embed.js" '
            f'data-widget="{request.args.get("widget", "default")}" async></script>'
        )
        if request.args.get("second"):
            tag += f'<script src="{widget_url}/embed.js" data-widget="sales" async></script>'
        if request.args.get("tag") == "0":
            tag = '<script src="/app.js"></script>'
        headers = {}
        if request.args.get("csp"):
            headers["Content-Security-Policy"] = request.args["csp"]
        return f"<!doctype html><title>Shop</title><body>{tag}</body>", 200, headers

    return app


@pytest.fixture(scope="module")
def servers(sandbox_server, tmp_path_factory):
    """The widget on localhost allowing one host origin, and that host site on 127.0.0.1."""
    from webwidget.sandbox.server import BackgroundServer

    host_port = free_port()
    widget_app = make_app(
        sandbox_server, tmp_path_factory.mktemp("doctor"),
        WIDGET_ALLOWED_ORIGINS=f"http://127.0.0.1:{host_port}",
    )
    widget = BackgroundServer(widget_app).start()
    widget_url = f"http://localhost:{widget.port}"
    host = BackgroundServer(host_site(widget_url), port=host_port).start()
    foreign = BackgroundServer(host_site(widget_url)).start()
    yield widget_url, host.url, foreign.url
    for server in (foreign, host, widget):
        server.stop()


def problems(findings) -> list[str]:
    return [f.text for f in findings if not f.ok]


def test_a_correct_embed_is_all_ok(servers):
    widget, host, _ = servers
    findings = diagnose(f"{host}/page")
    assert problems(findings) == []
    text = "\n".join(str(f) for f in findings)
    assert 'data-widget="default"' in text and "may embed it" in text
    assert "no Content-Security-Policy" in text


def test_each_mistake_gets_one_line_with_its_fix(servers):
    widget, host, foreign = servers
    cases = {
        f"{host}/page?tag=0": ["no widget script tag", "data-widget"],
        f"{host}/page?widget=nope": ['"nope"', "data-widget"],
        f"{foreign}/page": [foreign, "WIDGET_ALLOWED_ORIGINS"],
        f"{host}/page?second=1": ['"sales"', "one widget per page"],
        f"{host}/page?csp=script-src 'self'": ["script-src", f"add {widget} to script-src"],
        f"{host}/page?csp=default-src 'self'; script-src {widget}": [
            "default-src", f"add {widget} to frame-src"
        ],
    }
    for url, words in cases.items():
        found = problems(diagnose(url))
        assert len(found) >= 1, url
        assert any(all(w in line for w in words) for line in found), (url, found)


def test_a_csp_that_lets_the_widget_in_passes_all_three_directives(servers):
    widget, host, _ = servers
    csp = (
        f"default-src 'self'; script-src 'self' {widget}; frame-src {widget};"
        f" connect-src {widget}"
    )
    assert problems(diagnose(f"{host}/page?csp={csp}")) == []
    # connect-src missing: the loader cannot fetch the widget's theme.
    csp = f"default-src 'self'; script-src {widget}; frame-src {widget}"
    assert [line for line in problems(diagnose(f"{host}/page?csp={csp}"))
            if "connect-src" in line]


def test_mixed_content_and_csp_source_forms():
    widget, page = "http://chat.example.com", "https://shop.example"
    assert source_allows("https:", "https://chat.example.com", page)
    assert not source_allows("https:", widget, page)
    assert source_allows("*.example.com", "https://chat.example.com", page)
    assert source_allows("'self'", page, page)
    assert not source_allows("'none'", widget, page)
    assert [f.ok for f in csp_findings(["frame-src 'none'"], widget, page)] == [True, False, True]


def test_mixed_content_is_reported(servers, monkeypatch):
    widget, host, _ = servers
    import requests

    real_get = requests.get

    def as_if_https(url, **kwargs):
        # The page as it would be served over https (no TLS server here): its URL only.
        response = real_get(url, **kwargs)
        if url.startswith(host):
            response.url = "https://127.0.0.1" + url[len(host):]
        return response

    found = problems(diagnose(f"{host}/page", get=as_if_https))
    assert any("mixed content" in line and "https" in line for line in found), found


def test_the_command_prints_one_line_per_finding_and_fails_on_a_problem(servers):
    widget, host, foreign = servers
    run = subprocess.run([str(WEBWIDGET), "check", f"{foreign}/page"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert lines[0].startswith("ok ") and any(
        line.startswith("FIX") and "WIDGET_ALLOWED_ORIGINS" in line for line in lines
    )
    good = subprocess.run([str(WEBWIDGET), "check", f"{host}/page"],
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stdout
