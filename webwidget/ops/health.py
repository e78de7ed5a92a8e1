"""Liveness and readiness: /healthz (the process answers) and /readyz (it can serve visitors).

/readyz answers one question: can this instance serve visitors now? It is 503
(`unavailable`) only for what is this instance's own trouble, or what no visitor can
be served without:

* the session store does not take a write (a probe record written and deleted, with
  a TTL: a read-only SQLite file, a full disk or a Redis that refuses writes fail it,
  where a ping or a read would still pass);
* the rate-limit counters do not take a write (a counter bumped with an expiry);
* the process is draining (gunicorn sent it SIGTERM: it finishes what it has and takes
  nothing new, so a balancer should stop sending it visitors).

Upstream trouble (slow, 5xx, unreachable, breaker open, credentials rejected) is
reported as `degraded` with a 200: every instance shares the upstream, so a 503 would
pull them all at once and turn a slow ChatCaptain into no widget at all. The upstream
evidence is this worker's breaker, the contact creations the upstream refused, and a
probe: a GET of the messages route without a token, which changes nothing upstream.
The vendor documents no error codes, so the probe's 404 (for a conversation it does
not know) says nothing about our settings and is not used; only its 5xx, timeouts,
refused connections and 401/403 count. A real contact creation refused with 404 is
evidence (the chatbot id or the base URL is wrong) and is reported.

Each finding is kept for a while and computed by one caller at a time (the others get
the last finding meanwhile), so anonymous probes cost the upstream one call per worker
every PROBE_SECONDS at most, and the store one write per STORE_SECONDS.

Anonymous callers get the status alone. The checks and the setting to look at (never a
URL, a host, a secret or exception text) are for demo mode and for callers with the
METRICS_TOKEN bearer that also opens /metrics. docs/hosting/health.md has the decision.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.globals import app_ctx

from .. import clock
from ..chatcaptain.client import ChatCaptainClient
from ..chatcaptain.errors import UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from ..current import widgets_of
from ..sessions import get_store

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

# A probe must answer well inside a load balancer's usual 2-5 s probe timeout.
CHECK_SECONDS = 1.5
# How long one upstream answer stands for the next probes.
PROBE_SECONDS = 10.0
# How long one store (and rate-limit counter) write stands for the next probes.
STORE_SECONDS = 1.0
EXTENSION = "webwidget.health"
LIMITS_EXTENSION = "webwidget.limits"
PROBE_TTL = 60
# The probe's own deadline, within CHECK_SECONDS.
PROBE_DEADLINE = 1.0

API_KEY_HINT = "check CHATCAPTAIN_API_KEY"
CHANNEL_HINT = (
    "check CHATCAPTAIN_CHANNEL_TOKEN and CHATCAPTAIN_CHANNEL_ID (or the widget's entry in"
    " WIDGETS_FILE), and CHATCAPTAIN_API_KEY"
)
CHATBOT_HINT = (
    "check CHATCAPTAIN_BASE_URL (the API root, e.g. https://api.chatcaptain.com, without"
    " /v1), CHATCAPTAIN_CHATBOT_ID and CHATCAPTAIN_CHANNEL_ID (or the widget's entry in"
    " WIDGETS_FILE)"
)
UPSTREAM_HINT = "ChatCaptain is slow or failing: visitors see a retry notice until it recovers"

# Set once in a process that gunicorn told to stop (gunicorn.conf.py's worker hook).
_draining = threading.Event()


def begin_drain() -> None:
    """Say this process is draining: /readyz answers 503 from now on."""
    _draining.set()


def draining() -> bool:
    """Whether this process was told to stop."""
    return _draining.is_set()


@dataclass(frozen=True)
class Finding:
    """What one check found: ok, degraded or unavailable, and the setting to look at."""

    state: str
    check: str = "ok"
    hint: str | None = None


OK = Finding("ok")


class Cached:
    """One finding kept `seconds` on the app's clock, computed by one caller at a time;
    callers that come while it is computed get the last finding (or `OK` before any)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.finding: Finding | None = None
        self.at = float("-inf")
        self.running = False

    def get(self, now: float, compute: Callable[[], Finding]) -> Finding:
        """The kept finding while fresh, else a new one (or the last, if one is underway)."""
        with self.lock:
            if self.finding is not None and now - self.at < self.seconds:
                return self.finding
            if self.running:
                return self.finding or OK
            self.running = True
        finding = None
        try:
            finding = compute()
        finally:
            with self.lock:
                self.running = False
                if finding is not None:
                    self.finding, self.at = finding, now
        return finding

    def forget(self) -> None:
        """Drop the kept finding: the next caller computes one."""
        with self.lock:
            self.finding = None


class Health:
    """Per-app state: the kept findings and the last refused contact creation."""

    def __init__(self) -> None:
        self.store = Cached(STORE_SECONDS)
        self.limits = Cached(STORE_SECONDS)
        self.upstream = Cached(PROBE_SECONDS)
        self.rejected: Finding | None = None


def _health(app: Flask) -> Health:
    return app.extensions[EXTENSION]


@bp.get("/healthz")
def healthz():
    """Alive: answers without touching any dependency."""
    return jsonify(status="ok"), 200, {"Cache-Control": "no-store"}


def write_store(app: Flask) -> Finding:
    """Write a probe record (with a TTL) to the session store and delete it again."""
    store = get_store(app)
    sid = f"readyz-probe-{uuid.uuid4().hex}"
    now = time.time()
    try:
        store.save(sid, changed={}, deleted=(), created_at=now, last_seen=now,
                   expires_at=now + PROBE_TTL, create_with={"probe": "1"})
        store.delete(sid)
    except Exception as error:  # noqa: BLE001 - whatever the store raises, it cannot write
        log.warning("readiness: the session store refused a write: %s", _why(error))
        return Finding("unavailable", "not_writable", "check the session store: disk space,"
                       " file permissions, or Redis (SESSION_STORE_URL)")
    return OK


def write_limits(app: Flask) -> Finding:
    """Bump a probe counter (with an expiry) in the rate-limit storage."""
    limits = app.extensions.get(LIMITS_EXTENSION)  # web/limits.py's, by its name
    if limits is None:  # RATE_LIMIT_ENABLED=false: nothing to count with
        return OK
    try:
        limits.storage.incr("webwidget/readyz-probe", PROBE_TTL)
    except Exception as error:  # noqa: BLE001 - any storage trouble: the limits fail open
        log.warning("readiness: the rate-limit counters refused a write: %s", _why(error))
        return Finding("unavailable", "not_writable", "check the rate-limit storage"
                       " (RATE_LIMIT_STORAGE_URL, else the session store)")
    return OK


def _why(error: BaseException) -> str:
    """The error's type and first line: enough for the log, never a traceback."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:200]


def probe_upstream(client: ChatCaptainClient, chatbot_id: str) -> Finding:
    """Ask the messages route without a token; only failures and refused keys count."""
    try:
        status = client.probe(chatbot_id, deadline=PROBE_DEADLINE)
    except UpstreamTimeout:
        return Finding("degraded", "timeout", UPSTREAM_HINT)
    except UpstreamUnavailable:
        return Finding("degraded", "unreachable", UPSTREAM_HINT)
    if status >= 500:
        return Finding("degraded", "server_error", UPSTREAM_HINT)
    if status in (401, 403):
        log.warning("readiness: the upstream refused our API key (%s): %s", status, API_KEY_HINT)
        return Finding("degraded", "credentials_rejected", API_KEY_HINT)
    return OK


def check_upstream(app: Flask) -> Finding:
    """The worst of: the breaker, a refused contact creation, the (kept) probe."""
    health = _health(app)
    if app.extensions["webwidget.upstream"].circuit_state != "closed":
        return Finding("degraded", "circuit_open", UPSTREAM_HINT)
    if health.rejected is not None:
        return health.rejected
    widget = next(iter(widgets_of(app).values()))
    # The client itself (with its API key), not the breaker's guard: a probe is no
    # visitor's call and must not count towards opening the circuit.
    client = app.extensions["webwidget.upstream"].client

    def probe() -> Finding:
        return probe_upstream(client, widget.chatbot_id)

    return health.upstream.get(clock.get_clock(app)(), probe)


def detail_allowed() -> bool:
    """Demo mode, or the METRICS_TOKEN bearer: the checks and hints are not for anyone."""
    settings = current_app.config["WEBWIDGET_SETTINGS"]
    if settings.demo_mode:
        return True
    if settings.METRICS_TOKEN is None:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = settings.METRICS_TOKEN.get_secret_value()
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )


def findings(app: Flask) -> dict[str, Finding]:
    """Every check's finding, each within CHECK_SECONDS (a hung one counts as a timeout)."""
    health = _health(app)
    now = clock.get_clock(app)()
    checks: dict[str, Callable[[], Finding]] = {
        "session_store": lambda: health.store.get(now, lambda: write_store(app)),
        "rate_limits": lambda: health.limits.get(now, lambda: write_limits(app)),
        "upstream": lambda: check_upstream(app),
    }
    # What a check that does not answer in time means: the upstream's is only degraded.
    late = {"session_store": "unavailable", "rate_limits": "unavailable", "upstream": "degraded"}
    found: dict[str, Finding] = {}
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="readyz")
    try:
        futures = {name: pool.submit(check) for name, check in checks.items()}
        for name, future in futures.items():
            try:
                found[name] = future.result(timeout=CHECK_SECONDS)
            except FutureTimeout:
                found[name] = Finding(late[name], "timeout")
            except Exception as error:  # noqa: BLE001 - a check's own bug: not ready
                log.warning("readiness check %s failed: %s", name, type(error).__name__)
                found[name] = Finding(late[name], "error")
    finally:
        # A hung check is abandoned, not awaited: its own socket timeout ends it.
        pool.shutdown(wait=False, cancel_futures=True)
    found["process"] = Finding("unavailable", "draining") if draining() else OK
    return found


@bp.get("/readyz")
def readyz():
    """Ready (200), degraded (200: the upstream is in trouble) or unavailable (503)."""
    app = app_ctx.app  # the app itself, not the proxy: the checks run in other threads
    if draining() and not detail_allowed():
        # A balancer's probe of a stopping worker: no check can change the answer.
        return jsonify(status="unavailable"), 503, {"Cache-Control": "no-store"}
    found = findings(app)
    states = {finding.state for finding in found.values()}
    status = "unavailable" if "unavailable" in states else (
        "degraded" if "degraded" in states else "ready"
    )
    body: dict[str, object] = {"status": status}
    if detail_allowed():
        body["checks"] = {name: finding.check for name, finding in found.items()}
        hints = [finding.hint for finding in found.values() if finding.hint]
        if hints:
            body["hints"] = hints
        body["circuit"] = app.extensions["webwidget.upstream"].circuit_state
    return jsonify(body), 503 if status == "unavailable" else 200, {"Cache-Control": "no-store"}


def upstream_observer(app: Flask):
    """A callback for every upstream call: remembers a refused contact creation, and says
    in the log which settings to check, until a contact creation succeeds again."""

    def observe(operation: str, seconds: float, error: BaseException | None) -> None:
        if operation != "create_contact":
            return
        health = _health(app)
        if error is None:
            health.rejected = None
            return
        status = getattr(error, "status", None)
        if not isinstance(error, UpstreamRejected) or status not in (401, 403, 404):
            return
        hint = CHATBOT_HINT if status == 404 else CHANNEL_HINT
        if health.rejected is None:
            log.warning("upstream refused to create a contact (status=%s): %s", status, hint)
        health.rejected = Finding("degraded", "credentials_rejected", hint)

    return observe


def init_app(app: Flask) -> None:
    """Register /healthz and /readyz."""
    app.extensions[EXTENSION] = Health()
    app.register_blueprint(bp)
