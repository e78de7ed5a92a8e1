"""Operations: /healthz, /readyz, /metrics (one process and gunicorn workers), request
ids, JSON logs without secrets, and a graceful shutdown that finishes requests."""

from __future__ import annotations

import json
import logging
import re
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import (
    CHANNEL_TOKEN,
    SECRET_KEY,
    Visitor,
    advance,
    faults,
    free_port,
    heal,
    https_client,
    make_app,
    stats,
    wait_for_server,
    wait_until,
)
from test_scale_out import Browser, Instance, instance_env

API_KEY = "api-key-that-must-never-be-logged-42"
METRICS_TOKEN = "metrics-token-for-the-scraper-0123"
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def metric(text: str, name: str, absent: float | None = None, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels` (`absent` if there
    is none and the caller allows that, else the test fails)."""
    total, found = 0.0, False
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? ([0-9.eE+-]+|NaN)$", line)
        if not match or match.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
            found = True
    if not found and absent is not None:
        return absent
    assert found, f"no sample {name}{labels}"
    return total


def test_healthz_answers_without_dependencies_or_a_session(tmp_path):
    app = make_app(f"http://127.0.0.1:{free_port()}", tmp_path)  # nothing listens there
    answer = https_client(app).get("/healthz")
    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ok"}
    assert "Set-Cookie" not in answer.headers


def test_readyz_checks_the_session_store_limits_process_and_upstream(sandbox, tmp_path):
    app = make_app(sandbox, tmp_path, METRICS_TOKEN=METRICS_TOKEN)
    answer = https_client(app).get("/readyz", headers=SCRAPE)
    assert answer.status_code == 200
    assert answer.get_json()["checks"] == {
        "session_store": "ok", "rate_limits": "ok", "upstream": "ok", "process": "ok"
    }


def test_readyz_names_an_unreachable_upstream_without_its_address(tmp_path):
    port = free_port()
    app = make_app(f"http://127.0.0.1:{port}", tmp_path, METRICS_TOKEN=METRICS_TOKEN)
    answer = https_client(app).get("/readyz", headers=SCRAPE)
    # The upstream is every instance's: its trouble never takes this one out of service.
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["upstream"] == "unreachable"
    assert body["checks"]["session_store"] == "ok"
    assert str(port) not in answer.get_data(as_text=True)


def test_metrics_in_one_process_cover_requests_upstream_circuit_and_sessions(sandbox, tmp_path):
    app = make_app(sandbox.url, tmp_path, UPSTREAM_BREAKER_FAIL_MAX=1, UPSTREAM_DEADLINE=1.0,
                   UPSTREAM_READ_TIMEOUT=1.0,
                   METRICS_TOKEN=METRICS_TOKEN)
    visitor = Visitor(https_client(app))
    visitor.start()
    visitor.get("/w/default")
    faults(sandbox, error_status=500, operations=["list_messages"])
    visitor.get("/w/default")  # fails and opens the circuit (fail_max 1)
    visitor.get("/w/default")  # fails fast
    text = https_client(app).get("/metrics", headers=SCRAPE).get_data(as_text=True)

    assert metric(text, "webwidget_http_requests_total", route="/w/<widget>", status="200") >= 1
    assert metric(text, "webwidget_http_requests_total", route="/w/<widget>/start",
                  method="POST", status="303") == 1
    assert metric(text, "webwidget_http_requests_total", route="/w/<widget>", status="503") == 2
    assert metric(text, "webwidget_upstream_request_duration_seconds_count",
                  operation="create_contact") == 1
    assert metric(text, "webwidget_upstream_request_duration_seconds_bucket",
                  operation="list_messages", le="+Inf") == 2  # the fast failure is no sample
    assert metric(text, "webwidget_upstream_errors_total", operation="list_messages",
                  kind="unavailable") == 1
    assert metric(text, "webwidget_upstream_errors_total", operation="list_messages",
                  kind="circuit_open") == 1
    assert metric(text, "webwidget_upstream_circuit_state") == 2
    assert metric(text, "webwidget_active_sessions") == 1
    assert CHANNEL_TOKEN not in text and "wt_" not in text


def test_request_ids_are_echoed_sanitised_or_generated(app):
    client = https_client(app)
    assert client.get("/healthz", headers={"X-Request-ID": "lb-1234.abc"}).headers[
        "X-Request-ID"] == "lb-1234.abc"
    for hostile in ("x" * 200, "a b", 'evil"}{', "new\tline"):
        answer = client.get("/healthz", headers={"X-Request-ID": hostile})
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{32}", client.get("/healthz").headers["X-Request-ID"])


def test_logs_are_json_with_request_ids_and_hold_no_secret(sandbox, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 logs request URLs (with ?token=) at DEBUG
    app = make_app(sandbox.url, tmp_path, CHATCAPTAIN_API_KEY=API_KEY)
    visitor = Visitor(https_client(app))
    visitor.start()
    visitor.send("hello")
    advance(sandbox, 4000)
    visitor.get("/w/default")  # an expired token, renewed
    faults(sandbox, error_status=503)
    visitor.send("are you there?", htmx=True, headers={"X-Request-ID": "trace-42"})
    heal(sandbox)
    visitor.end()
    # A careless log line with a URL and a token is still cleaned.
    logging.getLogger("webwidget.test").warning(
        "GET http://x/messages?token=wt_abcdefghijkl channelToken=%s", CHANNEL_TOKEN)

    written = capsys.readouterr().err
    lines = [json.loads(line) for line in written.splitlines() if line.startswith("{")]
    assert len(lines) >= 5
    assert all({"ts", "level", "logger", "message", "request_id"} <= set(e) for e in lines)
    assert any(e["request_id"] == "trace-42" and "send failed" in e["message"] for e in lines)
    with app.app_context():
        from webwidget.sessions import get_store

        assert get_store(app).ping() is None
    # urllib3 logs each request line with its URL: written, with the query cut.
    assert any(e["logger"].startswith("urllib3") and "?[redacted]" in e["message"]
               for e in lines)
    for secret in (CHANNEL_TOKEN, API_KEY, SECRET_KEY, "wt_", "?token", "token=wt"):
        assert secret not in written, secret
    assert "[redacted]" in written


@pytest.fixture
def gunicorn_two_workers(sandbox, tmp_path):
    directory = tmp_path / "metrics"
    env = instance_env(sandbox.url, f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
                       WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(directory),
                       METRICS_TOKEN=METRICS_TOKEN)
    instance = Instance("metrics", tmp_path, env)
    instance.start()
    yield instance, directory
    instance.stop()


def test_metrics_under_gunicorn_add_up_every_worker(gunicorn_two_workers):
    instance, directory = gunicorn_two_workers
    # None yet is 0: whether the start-up check's /healthz was counted depends on timing.
    before = metric(requests.get(instance.url + "/metrics", headers=SCRAPE, timeout=5).text,
                    "webwidget_http_requests_total", absent=0.0, route="/healthz", status="200")
    # Concurrent new connections, in rounds until both workers have served some: the
    # kernel may hand a short sequential burst to one worker alone.
    sent = 0
    for _ in range(20):
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda _: requests.get(instance.url + "/healthz", timeout=5,
                                                 headers={"Connection": "close"}), range(32)))
        sent += 32
        workers = {p.name for p in directory.glob("counter_*.db")}
        if len(workers) == 2:
            break
    assert len(workers) == 2, workers
    for _ in range(3):  # whichever worker answers the scrape, it reports both
        text = requests.get(instance.url + "/metrics", headers=SCRAPE, timeout=5).text
        assert metric(text, "webwidget_http_requests_total", route="/healthz",
                      status="200") == before + sent


def test_metrics_add_up_by_default_as_the_procfile_runs_gunicorn(sandbox, tmp_path):
    # No PROMETHEUS_MULTIPROC_DIR (instance_env leaves it out): gunicorn.conf.py makes one.
    env = instance_env(sandbox.url, f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
                       WEB_CONCURRENCY="2", METRICS_TOKEN=METRICS_TOKEN)
    instance = Instance("procfile", tmp_path, env)
    instance.start()
    try:
        (directory,) = instance.folder.glob("webwidget-metrics-*")
        assert directory.stat().st_mode & 0o777 == 0o700
        before = metric(requests.get(instance.url + "/metrics", headers=SCRAPE,
                                     timeout=5).text,
                        "webwidget_http_requests_total", route="/healthz", status="200")
        sent = 0
        for _ in range(20):
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(lambda _: requests.get(instance.url + "/healthz", timeout=5,
                                                     headers={"Connection": "close"}),
                              range(32)))
            sent += 32
            if len(list(directory.glob("counter_*.db"))) == 2:
                break
        assert len(list(directory.glob("counter_*.db"))) == 2
        seen = []
        for _ in range(10):  # new connections: the scrapes land on either worker
            text = requests.get(instance.url + "/metrics", timeout=5,
                                headers={**SCRAPE, "Connection": "close"}).text
            seen.append(metric(text, "webwidget_http_requests_total", route="/healthz",
                               status="200"))
        assert seen == [before + sent] * 10
    finally:
        instance.stop()
    assert not directory.exists()  # the master removed what it made


def test_sigterm_lets_a_request_in_flight_finish(sandbox, tmp_path):
    env = instance_env(sandbox.url, f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
                       UPSTREAM_READ_TIMEOUT="5", UPSTREAM_DEADLINE="6")
    instance = Instance("graceful", tmp_path, env)
    instance.start()
    try:
        visitor = Browser()
        visitor.post(instance, "/w/default/start")
        faults(sandbox, latency_ms=2000, operations=["list_messages"])
        result: dict[str, requests.Response] = {}
        listed = stats(sandbox).get("list_messages", 0)
        slow = threading.Thread(target=lambda: result.update(r=visitor.get(instance, "/w/default")))
        slow.start()
        # The sandbox counts a call before its latency: from then on the request is in flight.
        wait_until(lambda: stats(sandbox).get("list_messages", 0) > listed, timeout=20,
                   what="the page's upstream call to reach the sandbox")
        instance.process.send_signal(signal.SIGTERM)
        slow.join(timeout=20)
        assert instance.process.wait(timeout=30) == 0
        instance.process = None
    finally:
        instance.stop()
    assert result["r"].status_code == 200
    assert 'data-message-id="' in result["r"].text


def test_workers_may_hold_a_file_per_connection_they_accept(sandbox, tmp_path):
    """A worker at worker_connections stops accepting, and every connection is a file: the
    config raises a soft open-files limit of 1024 (a common default) to what the
    connections need, so that visitors are not refused long before."""
    import resource
    import subprocess
    from pathlib import Path

    from test_scale_out import GUNICORN, ROOT

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    port = free_port()
    env = instance_env(sandbox.url, f"sqlite:///{tmp_path / 'sessions.sqlite3'}")
    env["WEBWIDGET_INSTANCE_PATH"] = str(tmp_path)
    proc = subprocess.Popen(
        [GUNICORN, "-c", "gunicorn.conf.py", "--no-control-socket",
         "--bind", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)),
    )
    try:
        wait_for_server(f"http://127.0.0.1:{port}/healthz", proc, timeout=30)
        workers = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert workers
        for pid in workers:
            limits = Path(f"/proc/{pid}/limits").read_text()
            soft = int(re.search(r"Max open files\s+(\d+)", limits).group(1))
            assert soft == min(4000 + 512, hard), limits
    finally:
        proc.terminate()
        proc.wait(timeout=30)
