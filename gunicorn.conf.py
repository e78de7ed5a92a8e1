"""gunicorn settings for I/O-bound proxying: most of a request is spent waiting on the
upstream, so threads (gthread) keep a worker busy while others wait. Two cores here.

Metrics: set PROMETHEUS_MULTIPROC_DIR (e.g. /tmp/webwidget-metrics) so /metrics adds
up every worker; the hooks below empty it at start and drop a dead worker's gauges.
Shutdown: on SIGTERM workers stop accepting and finish requests in flight for up to
graceful_timeout seconds, longer than the upstream deadline (UPSTREAM_DEADLINE, 8 s).
"""

import os
import shutil
from pathlib import Path

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Each thread waits on the upstream most of the time; 16 per worker keeps 500 polling
# visitors (one poll per visitor every 3 s, 100 ms upstream) well inside capacity.
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
timeout = 30
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# Idle keep-alive connections hold a thread in gthread only while they have data; this
# caps how many a worker keeps open at once.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
accesslog = "-"
# Escapes every value for JSON (a decoded path may hold newlines, quotes, backslashes).
logger_class = "webwidget.access_log.JsonAccessLogger"
# One JSON object per request, like the app's own logs. Never the query string (the
# format has no %(q)s or %(r)s) and never a header but the request id.
access_log_format = (
    '{"ts": "%(t)s", "access": true, "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s",'
    ' "status": %(s)s, "bytes": "%(B)s", "ms": %(M)s, "request_id": "%({x-request-id}o)s"}'
)


def on_starting(server):
    """Start from an empty metrics directory: files of an earlier run would add up."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        path.mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):
    """Forget a dead worker's live gauges (its counters stay: they are history)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
