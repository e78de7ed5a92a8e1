"""Liveness and readiness: /healthz (the process answers) and /readyz (its dependencies do).

/readyz checks the session store and the upstream at once, each with a short time
limit, and names what failed in a small JSON body: no URL, no host, no secret, no
exception text (a Redis or requests error can carry an address or a query string).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import requests
from flask import Blueprint, current_app, jsonify

from .sessions import get_store
from .upstream import get_client

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

# A probe must answer well inside a load balancer's usual 2-5 s probe timeout.
CHECK_SECONDS = 1.5


@bp.get("/healthz")
def healthz():
    """Alive: answers without touching any dependency."""
    return jsonify(status="ok"), 200, {"Cache-Control": "no-store"}


def check_store() -> None:
    """Raise unless the session store answers a ping."""
    get_store(current_app).ping()


def check_upstream(base_url: str) -> None:
    """Raise unless the upstream answers HTTP at all (any status means it is up)."""
    # No credentials and no query: a bare GET of the API root only proves reachability.
    with requests.Session() as session:
        response = session.get(base_url, timeout=(0.5, 1.0), allow_redirects=False, stream=True)
        response.close()
        if response.status_code >= 500:
            raise ConnectionError(f"upstream answered {response.status_code}")


@bp.get("/readyz")
def readyz():
    """Ready: the session store and the upstream both answer within CHECK_SECONDS."""
    app = current_app._get_current_object()
    base_url = get_client().base_url
    circuit = get_client().circuit_state

    def in_app(check, *args):
        with app.app_context():
            check(*args)

    checks: dict[str, str] = {}
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz")
    try:
        futures = {
            "session_store": pool.submit(in_app, check_store),
            "upstream": pool.submit(in_app, check_upstream, base_url),
        }
        for name, future in futures.items():
            try:
                future.result(timeout=CHECK_SECONDS)
                checks[name] = "ok"
            except FutureTimeout:
                checks[name] = "timeout"
            except Exception as error:
                log.warning("readiness check %s failed: %s", name, type(error).__name__)
                checks[name] = "unavailable"
    finally:
        # A hung check is abandoned, not awaited: its own socket timeout ends it.
        pool.shutdown(wait=False, cancel_futures=True)
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks, "circuit": circuit}
    return jsonify(body), 200 if ready else 503, {"Cache-Control": "no-store"}


def init_app(app):
    """Register /healthz and /readyz."""
    app.register_blueprint(bp)
