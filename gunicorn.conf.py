"""gunicorn settings: gevent workers, held polls, and polls that never wait on the upstream.

The gevent worker (issue 21): a held poll waits for its conversation's next change as a
greenlet, so a worker holds thousands of them (WIDGET_HOLD_MAX, 4000 per worker by
default) where a thread pool held 8; a poll that is not held answers from the cached
list and leaves the upstream call to a background refresh (UPSTREAM_REFRESH_CALLS at
once per worker). Chosen by measurement (bench/lag.py --visitors 2000 --compare gthread,
figures in the README): with 2,000 other visitors a reply reached the screen in 0.40 s
(p50) under gevent against 3.49 s with gthread 2x16 in the same run. The earlier finding
that gevent was far slower came from SQLite waiting for the disk at every commit, which
stops a gevent worker's every request: the SQLite files now sync at checkpoints
(sqlite_connections.py). `GUNICORN_WORKER_CLASS=gthread` (with GUNICORN_THREADS) is
still supported; held polls then take a thread each, 8 at most.

Slow clients: a connection that sends its headers a byte at a time holds a greenlet (a
thread under gthread) until they are complete. Never expose gunicorn directly: nginx
(docs/hosting/nginx.md) reads whole requests before passing them on (measured there and
in bench/README.md).

Metrics: /metrics adds up every worker through prometheus-client's multiprocess files.
Unless PROMETHEUS_MULTIPROC_DIR is set, this file makes a private (0700) directory for
them, in WEBWIDGET_INSTANCE_PATH if set, else in the temp folder, one per master, and
removes it at exit: the Procfile, the image, compose and systemd need no setting for
scrapes that add up. The hooks below empty it at start and drop a dead worker's gauges.
Shutdown: on SIGTERM workers stop accepting and finish requests in flight for up to
graceful_timeout seconds, longer than the upstream deadline (UPSTREAM_DEADLINE, 8 s).
"""

import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Which master made the default metrics directory (a re-exec'd master makes its own).
METRICS_DIR_OF = "WEBWIDGET_METRICS_DIR_OF"


def default_metrics_directory():
    """Set PROMETHEUS_MULTIPROC_DIR to a fresh private directory unless the operator set
    it; before anything imports prometheus-client (it reads the variable at import)."""
    mine = str(os.getpid())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and os.environ.get(METRICS_DIR_OF) in (
        None, mine
    ):
        return
    base = Path(os.environ.get("WEBWIDGET_INSTANCE_PATH") or tempfile.gettempdir())
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory = tempfile.mkdtemp(prefix=f"webwidget-metrics-{mine}-", dir=base)
    except OSError as exc:
        # Start anyway: /metrics then shows whichever worker answers (say so, once).
        print(json.dumps({
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "WARNING",
            "logger": "gunicorn.conf", "request_id": "-",
            "message": f"no metrics directory in {base} ({exc.strerror}): set"
            " PROMETHEUS_MULTIPROC_DIR to a writable folder, or each scrape shows one worker",
        }), file=sys.stderr, flush=True)
        return
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    os.environ[METRICS_DIR_OF] = mine


default_metrics_directory()

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Under GUNICORN_WORKER_CLASS=gthread only (gevent ignores it): the threads for page
# loads, starts and sends, which wait on the upstream, and for held polls (8 of them).
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
timeout = 30
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
# Idle keep-alive connections close after 5 s: short, because they count towards
# worker_connections. A proxy's own idle timeout must be shorter (nginx's upstream
# keepalive_timeout 4s in docs/hosting/nginx.md), or it may reuse a closing connection.
keepalive = 5
# How many connections a worker keeps open at once (held polls and idle keep-alives
# among them; under gthread an idle one holds a thread only while it has data). A worker
# at its cap stops accepting, so a visitor opening a connection waits until an idle one
# closes (up to `keepalive`): with 1000 per worker, 2,000 polling visitors saw a p99 of
# 5.2 s, with 4000 of 0.16 s (bench/capacity.py (4)). Each costs a file descriptor: see on_starting.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "4000"))
# Besides connections: the log, SQLite, Redis, the upstream pool, the metrics files.
OTHER_FILES = 512
accesslog = "-"
# Escapes every value for JSON (a decoded path may hold newlines, quotes, backslashes).
logger_class = "webwidget.ops.access_log.JsonAccessLogger"
# One JSON object per request, like the app's own logs. Never the query string (the
# format has no %(q)s or %(r)s) and never a header but the request id.
access_log_format = (
    '{"ts": "%(t)s", "access": true, "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s",'
    ' "status": %(s)s, "bytes": "%(B)s", "ms": %(M)s, "request_id": "%({x-request-id}o)s"}'
)


def empty_metrics_directory():
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


def raise_open_files_limit(wanted: int) -> None:
    """Let the workers (forked after this) hold `wanted` open files: the usual soft limit
    of 1024 would refuse connections long before worker_connections. Never above the
    hard limit, which only the system may raise."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def on_starting(server):
    """Build the app once before forking workers: a bad setting stops start-up here,
    once, in one line per setting (webwidget/preflight.py)."""
    from webwidget.preflight import check_app_builds

    raise_open_files_limit(worker_connections + OTHER_FILES)
    empty_metrics_directory()
    status = check_app_builds()
    if status:
        if server.pidfile is not None:
            server.pidfile.unlink()
        raise SystemExit(status)
    empty_metrics_directory()  # the trial build's files


def on_reload(server):
    """A reload (HUP) runs the start-up check again: when the new code, widgets file or
    templates cannot build the app, no new worker is spawned and the running ones keep
    serving (new workers failing to boot would make gunicorn stop altogether)."""
    from webwidget.preflight import check_app_builds

    if check_app_builds():
        server.log.error(
            "reload refused: the app cannot start with the new files (above); the running"
            " workers keep serving"
        )
        # Read by this reload's spawn loop only; the worker count stays num_workers.
        server.cfg.set("workers", 0)


def post_worker_init(worker):
    """From the worker's SIGTERM on, /readyz answers 503 (draining) while the requests in
    flight finish: a balancer stops sending visitors to a worker that is going away; their
    responses close their connections (webwidget/ops/drain.py); held polls are answered at
    once."""
    import signal

    from webwidget.ops.drain import close_connections_once_draining
    from webwidget.ops.health import begin_drain

    worker.wsgi = close_connections_once_draining(worker.wsgi)

    stop = worker.handle_exit

    def handle_exit(sig, frame):
        begin_drain()
        stop(sig, frame)

    signal.signal(signal.SIGTERM, handle_exit)
    # And held polls answer at once (webwidget/wake.py): the graceful exit waits for the
    # requests in flight, and a held poll would otherwise keep it for its whole hold.
    from webwidget.wake import release_on_exit

    release_on_exit()


def on_exit(server):
    """Remove the metrics directory this master made (an operator's own stays)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and os.environ.get(METRICS_DIR_OF) == str(os.getpid()):
        shutil.rmtree(directory, ignore_errors=True)


def child_exit(server, worker):
    """Forget a dead worker's live gauges (its counters stay: they are history)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
