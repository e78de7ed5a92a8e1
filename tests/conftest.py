"""Shared fixtures: real servers on loopback ports (sandbox upstream, redis-server)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("redis-server did not start")
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


@pytest.fixture
def sandbox(sandbox_server):
    """The shared sandbox, with faults and counters reset before each test."""
    import requests

    requests.post(f"{sandbox_server.url}/_sandbox/reset", timeout=5).raise_for_status()
    return sandbox_server
