"""Readiness that means "can this instance serve visitors now": 503 when the session store
or the rate-limit counters refuse a write (a read-only file, a read-only Redis) or the
process drains; upstream trouble (slow, 5xx, breaker open, refused credentials) is a
200 `degraded`, naming the setting to check for the METRICS_TOKEN bearer, never a secret.
A 404 for a made-up conversation is no evidence of anything. Anonymous callers see the
status alone and cost the upstream one probe per worker every ten seconds at most."""

from __future__ import annotations

import logging
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from conftest import (
    CHANNEL_TOKEN,
    MovableClock,
    Visitor,
    faults,
    heal,
    https_client,
    make_app,
    stats,
)
from test_scale_out import RedisServer

from webwidget.ops import health

METRICS_TOKEN = "metrics-token-for-the-scraper-0123"
BEARER = {"Authorization": f"Bearer {METRICS_TOKEN}"}
ALL_OK = {"session_store": "ok", "rate_limits": "ok", "upstream": "ok", "process": "ok"}


def ready(app, **headers):
    answer = https_client(app).get("/readyz", headers=headers)
    return answer.status_code, answer.get_json(), answer.get_data(as_text=True)


@contextmanager
def read_only(path: Path):
    """`path` made unwritable for real: chmod for a normal user; root ignores modes, so
    for root the file is made immutable (chattr +i) and given back afterwards."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o600)
        return
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_ready_with_details_for_the_bearer_and_the_status_alone_for_anyone(sandbox, tmp_path):
    app = make_app(sandbox, tmp_path, METRICS_TOKEN=METRICS_TOKEN)
    assert ready(app)[:2] == (200, {"status": "ready"})
    status, body, _ = ready(app, **BEARER)
    assert status == 200
    assert body["checks"] == ALL_OK
    assert "hints" not in body
    assert ready(app, Authorization="Bearer wrong-token-of-some-length")[1] == {"status": "ready"}


def test_a_slow_upstream_is_degraded_not_unavailable(sandbox, tmp_path):
    app = make_app(sandbox, tmp_path, METRICS_TOKEN=METRICS_TOKEN)
    faults(sandbox, latency_ms=2000, operations=["list_messages"])
    status, body, text = ready(app, **BEARER)
    assert (status, body["status"], body["checks"]["upstream"]) == (200, "degraded", "timeout")
    assert body["checks"]["session_store"] == "ok"
    assert sandbox.url not in text and "127.0.0.1" not in text


@pytest.mark.parametrize("answer", [500, 503])
def test_an_upstream_answering_5xx_is_degraded(sandbox, tmp_path, answer):
    app = make_app(sandbox, tmp_path, METRICS_TOKEN=METRICS_TOKEN)
    faults(sandbox, error_status=answer, operations=["list_messages"])
    status, body, _ = ready(app, **BEARER)
    assert (status, body["status"], body["checks"]["upstream"]) == (
        200, "degraded", "server_error"
    )
    assert ready(app)[:2] == (200, {"status": "degraded"})


def test_an_unreachable_upstream_is_degraded_and_its_address_is_not_shown(tmp_path):
    from conftest import free_port

    port = free_port()
    app = make_app(f"http://127.0.0.1:{port}", tmp_path, METRICS_TOKEN=METRICS_TOKEN)
    status, body, text = ready(app, **BEARER)
    assert (status, body["checks"]["upstream"]) == (200, "unreachable")
    assert str(port) not in text


def test_an_open_breaker_is_degraded(sandbox, tmp_path):
    app = make_app(sandbox, tmp_path, METRICS_TOKEN=METRICS_TOKEN, UPSTREAM_BREAKER_FAIL_MAX=1)
    visitor = Visitor(https_client(app))
    visitor.start()
    faults(sandbox, error_status=500, operations=["list_messages"])
    assert visitor.get("/w/default").status_code == 503  # fails and opens the breaker
    heal(sandbox)  # the probe would pass now: the breaker alone says degraded
    status, body, _ = ready(app, **BEARER)
    assert (status, body["checks"]["upstream"], body["circuit"]) == (
        200, "circuit_open", "open"
    )


def test_a_404_for_a_made_up_conversation_is_no_evidence(sandbox, tmp_path):
    # An upstream whose messages route answers 404 for a conversation it does not know.
    app = make_app(sandbox, tmp_path, METRICS_TOKEN=METRICS_TOKEN)
    faults(sandbox, error_status=404, operations=["list_messages"])
    status, body, _ = ready(app, **BEARER)
    assert (status, body["status"]) == (200, "ready")


def test_a_wrong_base_url_shows_when_real_calls_fail_with_404(sandbox, tmp_path, caplog):
    app = make_app(sandbox.url + "/v1", tmp_path, METRICS_TOKEN=METRICS_TOKEN)
    assert ready(app, **BEARER)[1]["status"] == "ready"  # no evidence yet
    with caplog.at_level(logging.WARNING):
        Visitor(https_client(app)).start()  # the contact creation answers 404
    status, body, text = ready(app, **BEARER)
    assert (status, body["status"], body["checks"]["upstream"]) == (
        200, "degraded", "credentials_rejected"
    )
    assert any("CHATCAPTAIN_BASE_URL" in hint for hint in body["hints"])
    assert sandbox.url not in text
    assert any("CHATCAPTAIN_BASE_URL" in record.getMessage() for record in caplog.records)


def test_anonymous_calls_while_the_upstream_fails_cost_one_probe(sandbox, tmp_path):
    clock = MovableClock()
    app = make_app(sandbox, tmp_path, clock=clock)
    faults(sandbox, error_status=500, operations=["list_messages"])
    before = stats(sandbox).get("list_messages", 0)
    for _ in range(100):
        assert ready(app)[:2] == (200, {"status": "degraded"})
    assert stats(sandbox).get("list_messages", 0) == before + 1
    clock.advance(11)
    assert ready(app)[0] == 200
    assert stats(sandbox).get("list_messages", 0) == before + 2


def test_concurrent_calls_share_one_slow_probe(sandbox, tmp_path):
    app = make_app(sandbox, tmp_path)
    faults(sandbox, latency_ms=700, operations=["list_messages"])
    before = stats(sandbox).get("list_messages", 0)
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: ready(app)[0], range(20)))
    assert answers == [200] * 20
    assert stats(sandbox).get("list_messages", 0) == before + 1


def test_the_probe_is_one_get_per_worker_every_ten_seconds(sandbox, tmp_path):
    clock = MovableClock()
    app = make_app(sandbox, tmp_path, clock=clock)
    before = stats(sandbox).get("list_messages", 0)
    for _ in range(5):
        assert ready(app)[0] == 200
    assert stats(sandbox).get("list_messages", 0) == before + 1
    clock.advance(11)
    assert ready(app)[0] == 200
    assert stats(sandbox).get("list_messages", 0) == before + 2


def test_a_read_only_session_database_makes_the_instance_unavailable(sandbox, tmp_path):
    clock = MovableClock()
    app = make_app(sandbox, tmp_path, clock=clock, METRICS_TOKEN=METRICS_TOKEN)
    assert ready(app, **BEARER)[0] == 200
    database = tmp_path / "sessions.sqlite3"
    with read_only(database):
        clock.advance(2)
        status, body, _ = ready(app, **BEARER)
        assert (status, body["status"]) == (503, "unavailable")
        # The rate-limit counters live in the same file by default.
        assert body["checks"]["session_store"] == "not_writable"
        assert body["checks"]["rate_limits"] == "not_writable"
        assert ready(app)[:2] == (503, {"status": "unavailable"})
    clock.advance(2)
    assert ready(app, **BEARER)[:2] == (200, {"status": "ready", "checks": ALL_OK,
                                               "circuit": "closed"})


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB filesystem of its own, to fill up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_makes_the_instance_unavailable_until_there_is_room(sandbox, tiny_disk):
    clock = MovableClock()
    app = make_app(sandbox, tiny_disk, clock=clock, METRICS_TOKEN=METRICS_TOKEN)
    assert ready(app, **BEARER)[0] == 200
    filler = tiny_disk / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    clock.advance(2)
    status, body, _ = ready(app, **BEARER)
    assert (status, body["status"], body["checks"]["session_store"]) == (
        503, "unavailable", "not_writable"
    )
    filler.unlink()
    clock.advance(2)
    assert ready(app, **BEARER)[:2] == (200, {"status": "ready", "checks": ALL_OK,
                                               "circuit": "closed"})


def test_a_redis_that_answers_pings_but_refuses_writes_makes_it_unavailable(
    sandbox, tmp_path
):
    server = RedisServer(tmp_path)
    server.start()
    try:
        clock = MovableClock()
        app = make_app(sandbox, tmp_path, store_url=server.url, clock=clock,
                       METRICS_TOKEN=METRICS_TOKEN)
        assert ready(app, **BEARER)[0] == 200
        client = redis.Redis.from_url(server.url)
        # A read-only replica (of nobody reachable): PING answers, every write is refused.
        client.execute_command("REPLICAOF", "127.0.0.1", "1")
        clock.advance(2)
        status, body, _ = ready(app, **BEARER)
        assert client.ping()
        assert (status, body["checks"]["session_store"], body["checks"]["rate_limits"]) == (
            503, "not_writable", "not_writable"
        )
        client.execute_command("REPLICAOF", "NO", "ONE")
        clock.advance(2)
        assert ready(app, **BEARER)[0] == 200
        client.close()
    finally:
        server.stop()


def test_a_draining_process_is_unavailable(sandbox, tmp_path):
    app = make_app(sandbox, tmp_path, METRICS_TOKEN=METRICS_TOKEN)
    assert ready(app)[0] == 200
    health.begin_drain()
    try:
        status, body, _ = ready(app, **BEARER)
        assert (status, body["status"], body["checks"]["process"]) == (
            503, "unavailable", "draining"
        )
    finally:
        health._draining.clear()  # the flag is the process's: give the next test a fresh one


def test_a_draining_process_answers_a_balancers_probe_without_checking_anything(
    sandbox, tmp_path
):
    app = make_app(sandbox, tmp_path, METRICS_TOKEN=METRICS_TOKEN)
    faults(sandbox, latency_ms=3000)  # a slow upstream held each probe up to a second
    health.begin_drain()
    try:
        before = stats(sandbox).get("list_messages", 0)
        assert ready(app)[:2] == (503, {"status": "unavailable"})
        assert stats(sandbox).get("list_messages", 0) == before
    finally:
        health._draining.clear()


def test_a_refused_channel_token_makes_readiness_degraded_and_names_the_setting(
    sandbox, tmp_path, caplog
):
    wrong = "channel_token_that_is_wrong_123"
    app = make_app(sandbox, tmp_path, METRICS_TOKEN=METRICS_TOKEN,
                   CHATCAPTAIN_CHANNEL_TOKEN=wrong)
    assert ready(app)[1] == {"status": "ready"}  # nothing refused yet
    with caplog.at_level(logging.WARNING):
        Visitor(https_client(app)).start()  # the upstream answers 401 "Invalid channel token."
    status, body, text = ready(app, **BEARER)
    assert status == 200  # the process is fine; its credentials are not
    assert body["status"] == "degraded"
    assert body["checks"]["upstream"] == "credentials_rejected"
    assert any("CHATCAPTAIN_CHANNEL_TOKEN" in hint for hint in body["hints"])
    assert wrong not in text and CHANNEL_TOKEN not in text
    logged = [record.getMessage() for record in caplog.records]
    assert any("CHATCAPTAIN_CHANNEL_TOKEN" in line and "status=401" in line for line in logged)
    assert not any(wrong in line for line in logged)
    assert ready(app)[1] == {"status": "degraded"}


def test_demo_mode_shows_the_details_to_anyone(tmp_path, monkeypatch):
    monkeypatch.delenv("CHATCAPTAIN_BASE_URL", raising=False)
    from webwidget.app import create_app
    from webwidget.settings import Settings

    app = create_app(settings=Settings(_env_file=None, WEBWIDGET_DEMO=True),
                     instance_path=str(tmp_path))
    status, body, _ = ready(app)
    assert status == 200
    assert body["checks"] == ALL_OK
