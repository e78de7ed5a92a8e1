"""A draining gunicorn worker closes kept-alive connections after each response, so a
client's next request goes to a fresh connection (another worker or instance) instead
of one the stopping worker is about to close: behind nginx that request was a 502."""

from __future__ import annotations

import http.client
import signal
import threading
import time

from conftest import faults, stats, wait_until
from test_scale_out import Browser, Instance, instance_env


def kept_alive(instance: Instance) -> http.client.HTTPConnection:
    """A connection that has had one answer and stays open for the next request."""
    connection = http.client.HTTPConnection("127.0.0.1", instance.port, timeout=30)
    connection.request("GET", "/healthz")
    answer = connection.getresponse()
    answer.read()
    assert answer.getheader("Connection") == "keep-alive"
    return connection


def test_responses_of_a_draining_worker_close_their_keep_alive_connections(sandbox, tmp_path):
    env = instance_env(sandbox.url, f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
                       UPSTREAM_READ_TIMEOUT="5", UPSTREAM_DEADLINE="6")
    instance = Instance("draining", tmp_path, env)
    instance.start()
    try:
        visitor = Browser()
        visitor.post(instance, "/w/default/start")
        busy, idle = kept_alive(instance), kept_alive(instance)
        faults(sandbox, latency_ms=2000, operations=["list_messages"])
        listed = stats(sandbox).get("list_messages", 0)
        slow: dict[str, http.client.HTTPResponse | bytes] = {}

        def page() -> None:
            busy.request("GET", "/w/default", headers={"X-Widget-Session": visitor.handle})
            slow["answer"] = answer = busy.getresponse()
            slow["body"] = answer.read()

        in_flight = threading.Thread(target=page)
        in_flight.start()
        # The sandbox counts a call before its latency: from then on the page is in flight.
        wait_until(lambda: stats(sandbox).get("list_messages", 0) > listed, timeout=20,
                   what="the page's upstream call to reach the sandbox")
        instance.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "Handling signal: term" in instance.log.read_text(), timeout=10,
                   what="gunicorn to take the signal")

        # A request on an idle kept-alive connection is answered at once, and closes it.
        started = time.monotonic()
        idle.request("GET", "/healthz")
        answer = idle.getresponse()
        answer.read()
        assert answer.status == 200 and answer.getheader("Connection") == "close"
        assert time.monotonic() - started < 1.5

        # The request that was running when the signal came closes its connection too
        # (it answered keep-alive, and the client's next request met a closing worker).
        in_flight.join(timeout=20)
        assert slow["answer"].status == 200 and b'data-message-id="' in slow["body"]
        assert slow["answer"].getheader("Connection") == "close"
        assert instance.process.wait(timeout=30) == 0
        instance.process = None
    finally:
        instance.stop()
