"""gunicorn's access log: one JSON object per line, whatever the request path holds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

from conftest import wait_until
from test_scale_out import Instance, instance_env

# Raw request targets as an attacker sends them (`curl --path-as-is`): decoded newlines
# and carriage returns, backslashes, escaped quotes, control and non-ASCII bytes.
HOSTILE_PATHS = (
    "/w/default%0a%7B%22forged%22:true%7D",
    "/w/default%0d%0aX",
    "/static/a\\b.css",
    "/w/%5C%22",
    '/w/%5C%22%7D,%7B"x',
    "/w/x%22%20%5C%5C",
    "/w/%00%01%1b[31m",
    "/w/%C3%A9%E2%80%AE",
    "/w/%ff%fe",
)


def raw_get(port: int, target: str) -> bytes:
    """One HTTP/1.1 GET with `target` sent byte for byte (no client normalises it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            .encode("latin-1")
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_every_access_log_line_is_json_whatever_the_path(sandbox, tmp_path):
    access = tmp_path / "access.log"
    errors = tmp_path / "error.log"
    env = instance_env(sandbox.url, f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
                       GUNICORN_CMD_ARGS=f"--access-logfile {access} --error-logfile {errors}")
    instance = Instance("access", tmp_path, env)
    instance.start()
    try:
        for target in HOSTILE_PATHS:
            status = raw_get(instance.port, target).split(b"\r\n", 1)[0]
            assert not status.startswith(b"HTTP/1.1 5"), (target, status)
        raw_get(instance.port, "/healthz")
    finally:
        instance.stop()
    lines = access.read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]  # a broken line fails here
    requests_seen = [entry for entry in entries if entry.get("access") is True]
    assert len(requests_seen) >= len(HOSTILE_PATHS) + 1, lines  # + readiness probes
    paths = [entry["path"] for entry in requests_seen]
    assert "/w/default\n{\"forged\":true}" in paths
    assert "/w/\\\"" in paths
    assert "/static/a\\b.css" in paths
    assert paths[-1] == "/healthz"
    assert not any("forged" in entry for entry in entries)
    assert all(set(entry) >= {"ts", "message"} for entry in entries if "access" not in entry), lines


def test_every_line_gunicorn_writes_is_one_json_object(sandbox, tmp_path):
    # As the Procfile runs it: one stream (stderr and stdout together), two workers.
    env = instance_env(sandbox.url, f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
                       WEB_CONCURRENCY="2")
    instance = Instance("one-stream", tmp_path, env)
    instance.start()
    try:
        raw_get(instance.port, "/healthz")
        raw_get(instance.port, "/w/default")
    finally:
        instance.stop()
    lines = [line for line in instance.log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # a plain-text line fails here
    said = [
        entry.get("message", "") for entry in entries if entry.get("logger") == "gunicorn.error"
    ]
    assert any(message.startswith("Starting gunicorn") for message in said), said
    assert sum(message.startswith("Booting worker") for message in said) == 2
    assert any(message.startswith("Handling signal: term") for message in said)
    paths = {entry["path"] for entry in entries if entry.get("access")}
    assert {"/healthz", "/w/default"} <= paths


def test_a_respawned_gevent_worker_writes_only_json(sandbox, tmp_path):
    # gevent patches ssl in each worker; had the master imported requests or redis by
    # then (a hook importing the app), gevent would warn, in plain text, in every worker
    # forked afterwards, and their HTTPS connections would block the worker.
    env = instance_env(sandbox.url, f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
                       PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    instance = Instance("respawn", tmp_path, env)
    instance.start()
    try:
        first = children(instance.process.pid)
        assert len(first) == 1
        os.kill(first[0], signal.SIGKILL)
        wait_until(lambda: children(instance.process.pid) not in ([], first), timeout=30,
                   what="a new worker in place of the killed one")
        wait_until(lambda: b" 200 " in raw_get(instance.port, "/w/default")[:20], timeout=30,
                   what="the new worker answering")
    finally:
        instance.stop()
    lines = [line for line in instance.log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # gevent's warning is plain text
    said = [entry.get("message", "") for entry in entries
            if entry.get("logger") == "gunicorn.error"]
    assert "Using worker: gevent" in said
    assert sum(message.startswith("Booting worker") for message in said) == 2, said


def children(pid: int) -> list[int]:
    """The process ids of `pid`'s children (gunicorn's workers)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return sorted(int(line) for line in out.split())


def test_a_traceback_is_one_json_line():
    import logging

    from webwidget.ops.logs import JsonFormatter

    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        import sys

        record = logging.makeLogRecord({"name": "gunicorn.error", "levelno": logging.ERROR,
                                        "levelname": "ERROR", "msg": "Exception in worker",
                                        "exc_info": sys.exc_info()})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["error"].startswith("Traceback") and "ValueError: broken" in entry["error"]
