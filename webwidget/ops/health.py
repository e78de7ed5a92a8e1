"""Liveness and readiness: /healthz (the process answers) and /readyz (its dependencies do).

/readyz checks the session store and the upstream at once, each with a short time
limit. The upstream check is a GET of the messages route of the first widget's
chatbot without a token: a GET changes nothing, and the answer tells the route apart
from a wrong one. 400 (the token is missing) means the route is there; 404 or 405
means CHATCAPTAIN_BASE_URL (or the chatbot id) points nowhere, and readiness fails;
401 or 403 means our API key was refused. The upstream answer is kept for
PROBE_SECONDS, so a load balancer's probes cost the upstream one call per worker
at most that often.

Rejected credentials fail visitors but not the process, so they report `degraded`
(status 200): the probe's refused API key, or a contact creation the upstream refused
(a wrong channel token, channel or chatbot id), as this worker saw it last.

Anonymous callers get the status alone. The checks and the setting to look at (never
a URL, a host, a secret or exception text) are for demo mode and for callers with the
METRICS_TOKEN bearer that also opens /metrics.
"""

from __future__ import annotations

import hmac
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import quote

import requests
from flask import Blueprint, Flask, current_app, jsonify, request

from .. import clock
from ..chatcaptain.errors import UpstreamRejected
from ..sessions import get_store

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

# A probe must answer well inside a load balancer's usual 2-5 s probe timeout.
CHECK_SECONDS = 1.5
# How long one upstream answer stands for the next probes.
PROBE_SECONDS = 10.0
EXTENSION = "webwidget.health"

PATH_HINT = (
    "check CHATCAPTAIN_BASE_URL (the API root, e.g. https://api.chatcaptain.com, without"
    " /v1) and CHATCAPTAIN_CHATBOT_ID"
)
API_KEY_HINT = "check CHATCAPTAIN_API_KEY"
CHANNEL_HINT = (
    "check CHATCAPTAIN_CHANNEL_TOKEN and CHATCAPTAIN_CHANNEL_ID (or the widget's entry in"
    " WIDGETS_FILE), and CHATCAPTAIN_API_KEY"
)
CHATBOT_HINT = (
    "check CHATCAPTAIN_CHATBOT_ID and CHATCAPTAIN_CHANNEL_ID (or the widget's entry in"
    " WIDGETS_FILE)"
)


@dataclass(frozen=True)
class Finding:
    """What one check found: ok, degraded or unavailable, and the setting to look at."""

    state: str
    check: str = "ok"
    hint: str | None = None


class Health:
    """Per-app state: the last upstream probe and the last refused contact creation."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.probe: tuple[float, Finding] | None = None
        self.rejected: Finding | None = None


def _health(app: Flask) -> Health:
    return app.extensions[EXTENSION]


@bp.get("/healthz")
def healthz():
    """Alive: answers without touching any dependency."""
    return jsonify(status="ok"), 200, {"Cache-Control": "no-store"}


def check_store() -> Finding:
    """ok unless the session store does not answer a ping (which raises)."""
    get_store(current_app).ping()
    return Finding("ok")


def probe_upstream(base_url: str, chatbot_id: str, api_key: str | None) -> Finding:
    """Ask the messages route without a token; what its status says about our settings."""
    url = f"{base_url}/v1/widget/{quote(chatbot_id, safe='')}/conversations/readyz/messages"
    headers = {"x-chatcaptain-key": api_key} if api_key else {}
    with requests.Session() as session:
        response = session.get(
            url, headers=headers, timeout=(0.5, 1.0), allow_redirects=False, stream=True
        )
        response.close()
    status = response.status_code
    if status >= 500:
        raise ConnectionError(f"upstream answered {status}")
    if status in (404, 405):
        finding = Finding("unavailable", "not_found", PATH_HINT)
    elif status in (401, 403):
        finding = Finding("degraded", "credentials_rejected", API_KEY_HINT)
    else:
        return Finding("ok")
    log.warning("readiness: the upstream's widget route answered %s: %s", status, finding.hint)
    return finding


def check_upstream(app: Flask) -> Finding:
    """The upstream probe's finding, asked afresh at most every PROBE_SECONDS."""
    health = _health(app)
    now = clock.get_clock(app)()
    with health.lock:
        if health.probe is not None and now - health.probe[0] < PROBE_SECONDS:
            return health.probe[1]
    settings = app.config["WEBWIDGET_SETTINGS"]
    widget = next(iter(app.extensions["webwidget.widgets"].values()))
    api_key = settings.CHATCAPTAIN_API_KEY
    finding = probe_upstream(
        app.extensions["webwidget.upstream"].base_url,
        widget.chatbot_id,
        api_key.get_secret_value() if api_key else None,
    )
    with health.lock:
        health.probe = (now, finding)
    return finding


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


@bp.get("/readyz")
def readyz():
    """Ready (200), degraded (200, credentials refused) or unavailable (503)."""
    app = current_app._get_current_object()

    def in_app(check, *args):
        with app.app_context():
            return check(*args)

    findings: dict[str, Finding] = {}
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz")
    try:
        futures = {
            "session_store": pool.submit(in_app, check_store),
            "upstream": pool.submit(in_app, check_upstream, app),
        }
        for name, future in futures.items():
            try:
                findings[name] = future.result(timeout=CHECK_SECONDS)
            except FutureTimeout:
                findings[name] = Finding("unavailable", "timeout")
            except Exception as error:
                log.warning("readiness check %s failed: %s", name, type(error).__name__)
                findings[name] = Finding("unavailable", "unavailable")
    finally:
        # A hung check is abandoned, not awaited: its own socket timeout ends it.
        pool.shutdown(wait=False, cancel_futures=True)
    rejected = _health(app).rejected
    if rejected is not None and findings["upstream"].state == "ok":
        findings["upstream"] = rejected
    states = {finding.state for finding in findings.values()}
    status = "unavailable" if "unavailable" in states else (
        "degraded" if "degraded" in states else "ready"
    )
    body: dict[str, object] = {"status": status}
    if detail_allowed():
        body["checks"] = {name: finding.check for name, finding in findings.items()}
        hints = [finding.hint for finding in findings.values() if finding.hint]
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
