"""Prometheus metrics: requests, upstream latency and errors, circuit state, active sessions,
session-store errors, sessions lost, rate-limit rejections and fail-opens, token
renewals, background refreshes dropped, every worker's CPU, memory and open files, and
the build.

The metric objects live on a per-app `CollectorRegistry` (no module-level singletons,
so tests can build many apps in one process). Under gunicorn set
PROMETHEUS_MULTIPROC_DIR to an empty directory: prometheus-client then keeps every
worker's values in files there (it decides at import time), `/metrics` aggregates
them with `MultiProcessCollector`, and gunicorn.conf.py clears the directory at start
and marks dead workers. Active sessions are counted in the session store at scrape
time, so the figure is the store's, not one worker's.

`/metrics` tells route traffic, upstream faults and circuit state, so in production it
answers only `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise) and is not there at
all (404) while METRICS_TOKEN is unset; demo mode keeps it open. Label values come
from a closed set: an unknown HTTP method counts as `other`, an unrouted path as
`<unmatched>`, so made-up requests cannot add series.

Other modules count through the `count_*` functions below (they find the app's metrics
through `current_app`, and do nothing outside an app): no module needs a metric object.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Flask, abort, current_app, g, has_app_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..sessions import SessionStore, SessionStoreUnavailable, get_store

log = logging.getLogger(__name__)

EXTENSION = "webwidget.metrics"
CIRCUIT_STATES = {"closed": 0, "half-open": 1, "open": 2}
# Polls are the bulk of the traffic; buckets around a 100 ms upstream matter most.
# Methods a client may really use; anything else shares one label value.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2, 4, 8, 16)
# A label value the callers choose: a short snake_case word, anything else counts as other.
REASON = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

bp = Blueprint("metrics", __name__)


class Metrics:
    """The app's metric objects."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "webwidget_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "webwidget_http_request_duration_seconds",
            "Time to answer a request, by route template.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "webwidget_upstream_request_duration_seconds",
            "ChatCaptain call latency (retries included), by operation.",
            ("operation",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "webwidget_upstream_errors",
            "Failed ChatCaptain calls, by operation and error kind.",
            ("operation", "kind"),
            registry=self.registry,
        )
        self.sessions_lost = Counter(
            "webwidget_sessions_lost",
            "Requests whose handle led to no session, by reason (ended, expired, unknown: "
            "another store issued it) and where it was met (send, poll, start).",
            ("reason", "at"),
            registry=self.registry,
        )
        # livemax: the worst state of any live worker; a dead worker's value is dropped.
        self.circuit_state = Gauge(
            "webwidget_upstream_circuit_state",
            "Upstream circuit breaker: 0 closed, 1 half-open, 2 open (worst live worker).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.store_errors = Counter(
            "webwidget_session_store_errors",
            "Session store calls that failed, by operation.",
            ("operation",),
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "webwidget_rate_limit_rejections",
            "Requests refused with 429, by limit.",
            ("limit",),
            registry=self.registry,
        )
        self.limits_fail_open = Counter(
            "webwidget_rate_limit_fail_open",
            "Rate-limit checks skipped (the request let through) because the storage failed.",
            registry=self.registry,
        )
        self.token_renewals = Counter(
            "webwidget_token_renewals",
            "Widget token renewals, by outcome (renewed here, shared from another request,"
            " failed).",
            ("outcome",),
            registry=self.registry,
        )
        self.upstream_skipped = Counter(
            "webwidget_upstream_calls_skipped",
            "Idle held polls' upstream checks not made: the worker had UPSTREAM_CALLS_BUSY"
            " calls in flight.",
            ("operation",),
            registry=self.registry,
        )
        self.refreshes_dropped = Counter(
            "webwidget_background_refreshes_dropped",
            "Background refreshes not run because every refresh slot was busy.",
            registry=self.registry,
        )


def multiprocess_dir() -> str | None:
    """The directory prometheus-client shares between processes, if configured."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def init_app(app: Flask) -> Metrics:
    """Create the app's metrics, time every request, and serve /metrics."""
    metrics = Metrics()
    app.extensions[EXTENSION] = metrics

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    # The labelled series, kept once made: `labels()` validates and locks on every call,
    # a measurable share of an unchanged poll. Label values are bounded (route templates,
    # known methods, statuses), so these dicts are too.
    counters: dict[tuple[str, str, int], Any] = {}
    timers: dict[str, Any] = {}

    @app.after_request
    def _count(response):
        route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        method = request.method if request.method in KNOWN_METHODS else "other"
        key = (route, method, response.status_code)
        counter = counters.get(key)
        if counter is None:
            counter = counters[key] = metrics.requests.labels(route, method, str(key[2]))
        counter.inc()
        started = g.get("metrics_started")
        if started is not None:
            timer = timers.get(route)
            if timer is None:
                timer = timers[route] = metrics.request_seconds.labels(route)
            timer.observe(time.perf_counter() - started)
        return response

    app.register_blueprint(bp)
    return metrics


def count_session_lost(app: Flask, reason: str, at: str) -> None:
    """Count a handle that led to no session (reason and at are closed sets)."""
    metrics = get_metrics(app)
    if metrics is not None:
        metrics.sessions_lost.labels(reason, at).inc()


def get_metrics(app: Flask) -> Metrics | None:
    """The app's metrics (None before init_app)."""
    return app.extensions.get(EXTENSION)


def _current() -> Metrics | None:
    return get_metrics(current_app) if has_app_context() else None


def _reason(value: str) -> str:
    return value if REASON.match(value) else "other"


STORE_OPERATIONS = ("load", "save", "delete", "store_id", "probe_write")


def count_store_errors(app: Flask) -> None:
    """Count every failed call (SessionStoreUnavailable) of the app's session store.

    The store object itself is given a subclass of its class that counts, so the session
    interface and every module that asks get_store() share it, and isinstance holds."""
    metrics = get_metrics(app)
    store = app.extensions.get("webwidget.sessions")
    if metrics is None or store is None:
        return
    base = type(store)

    def counting(name: str) -> Callable[..., Any]:
        method = getattr(base, name)

        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except SessionStoreUnavailable:
                metrics.store_errors.labels(name).inc()
                raise

        return counted

    methods = {name: counting(name) for name in STORE_OPERATIONS if hasattr(base, name)}
    store.__class__ = type(f"Counting{base.__name__}", (base,), methods)


def count_rate_limited(limit: str) -> None:
    """A request refused by the limit named `limit` (per_ip, per_widget, per_session)."""
    if (metrics := _current()) is not None:
        metrics.rate_limited.labels(_reason(limit)).inc()


def count_limits_fail_open() -> None:
    """A request let through because the rate-limit storage failed."""
    if (metrics := _current()) is not None:
        metrics.limits_fail_open.inc()


def count_token_renewal(outcome: str) -> None:
    """A widget token renewal: renewed, shared or failed."""
    if (metrics := _current()) is not None:
        metrics.token_renewals.labels(_reason(outcome)).inc()


def renewal_observer(app: Flask) -> Callable[[str], None]:
    """A callback for the token renewals' outcomes."""

    def observe(outcome: str) -> None:
        metrics = get_metrics(app)
        if metrics is not None:
            metrics.token_renewals.labels(_reason(outcome)).inc()

    return observe


def refresh_dropped_counter(app: Flask) -> Callable[[], None]:
    """A callback for the refresher: a background refresh not run, every slot was busy."""

    def dropped() -> None:
        if (metrics := get_metrics(app)) is not None:
            metrics.refreshes_dropped.inc()

    return dropped


def skipped_call_counter(app: Flask) -> Callable[[str], None]:
    """A callback for the call slots: an optional upstream call not made."""

    def skipped(operation: str) -> None:
        if (metrics := get_metrics(app)) is not None:
            metrics.upstream_skipped.labels(operation).inc()

    return skipped


def upstream_observer(app: Flask) -> Callable[[str, float, object], None]:
    """A callback for the guarded client: latency per operation, errors per kind."""

    def observe(operation: str, seconds: float, error: object) -> None:
        metrics = get_metrics(app)
        if metrics is None:
            return
        kind = getattr(error, "kind", None)
        if kind != "circuit_open":
            # A fast-failed call never reached the upstream: it is no latency sample.
            metrics.upstream_seconds.labels(operation).observe(seconds)
        if error is not None:
            metrics.upstream_errors.labels(operation, kind or "error").inc()

    return observe


def circuit_observer(app: Flask) -> Callable[[str], None]:
    """A callback for the breaker's state changes."""

    def on_state(state: str) -> None:
        metrics = get_metrics(app)
        if metrics is not None:
            metrics.circuit_state.set(CIRCUIT_STATES.get(state, 0))

    return on_state


class SessionCollector(Collector):
    """webwidget_active_sessions, read from the shared store at scrape time."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One gauge; left out when the store does not answer (readyz reports that)."""
        try:
            count = self.store.count_active()
        except Exception as error:  # a scrape must not fail because the store is down
            log.warning("active sessions not counted: %s", type(error).__name__)
            return
        family = GaugeMetricFamily(
            "webwidget_active_sessions", "Unexpired visitor sessions in the store."
        )
        family.add_metric([], count)
        yield family


def worker_pids(directory: str | None) -> list[int]:
    """This process, or every live worker that left files in the multiprocess directory."""
    if not directory:
        return [os.getpid()]
    pids = set()
    for name in os.listdir(directory):
        match = re.search(r"_(\d+)\.db$", name)
        if match and os.path.exists(f"/proc/{match.group(1)}"):
            pids.add(int(match.group(1)))
    return sorted(pids | {os.getpid()})


class ProcessCollector(Collector):
    """CPU seconds, resident memory and open files of each live worker, labelled by pid
    (prometheus-client's own collector sees only the process that answers the scrape)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Three families, one sample per worker; workers gone meanwhile are left out."""
        cpu = CounterMetricFamily("webwidget_process_cpu_seconds",
                                  "CPU time of each worker (user + system).", labels=["pid"])
        memory = GaugeMetricFamily("webwidget_process_resident_memory_bytes",
                                   "Resident memory of each worker.", labels=["pid"])
        files = GaugeMetricFamily("webwidget_process_open_fds",
                                  "Open file descriptors of each worker (connections"
                                  " included).", labels=["pid"])
        ticks = os.sysconf("SC_CLK_TCK")
        page = os.sysconf("SC_PAGE_SIZE")
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
                fds = len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:  # the worker is gone (or this is no Linux)
                continue
            label = [str(pid)]
            cpu.add_metric(label, (int(fields[11]) + int(fields[12])) / ticks)
            memory.add_metric(label, int(fields[21]) * page)
            files.add_metric(label, fds)
        yield from (cpu, memory, files)


class BuildCollector(Collector):
    """webwidget_build_info{version, python}: 1, to tell which release a scrape came from."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One sample."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            release = version("webwidget")
        except PackageNotFoundError:
            release = "unknown"
        family = GaugeMetricFamily("webwidget_build_info", "The running release.",
                                   labels=["version", "python"])
        family.add_metric([release, ".".join(map(str, sys.version_info[:3]))], 1)
        yield family


def scrape_allowed() -> bool:
    """Open in demo mode; in production only with the configured bearer token (404 unset)."""
    settings = current_app.config["WEBWIDGET_SETTINGS"]
    if settings.demo_mode:
        return True
    if settings.METRICS_TOKEN is None:
        abort(404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = settings.METRICS_TOKEN.get_secret_value()
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )


@bp.get("/metrics")
def scrape():
    """Prometheus text format: this process's metrics, or every worker's under gunicorn."""
    if not scrape_allowed():
        return "A bearer token is needed.\n", 401, {
            "WWW-Authenticate": 'Bearer realm="metrics"',
            "Content-Type": "text/plain",
            "Cache-Control": "no-store",
        }
    directory = multiprocess_dir()
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        metrics = get_metrics(current_app)
        registry = metrics.registry if metrics else CollectorRegistry()
    output = generate_latest(registry)
    output += generate_latest(_scrape_time_registry(directory))
    return output, 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}


def _scrape_time_registry(directory: str | None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SessionCollector(get_store(current_app)))
    registry.register(ProcessCollector(worker_pids(directory)))
    registry.register(BuildCollector())
    return registry
