"""A warning, once per process, when visitors come through a proxy nobody said to trust.

With TRUSTED_PROXY_HOPS unset (0) behind nginx or a PaaS router, every request comes
from the proxy's address: all visitors share one per-IP rate limit, so the whole site
gets RATE_LIMIT_START_PER_IP chat starts (10 a minute). The first request carrying
X-Forwarded-For says so in the log, once per worker; nothing changes for the request.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask, request

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Watch for forwarded requests while TRUSTED_PROXY_HOPS is 0."""
    if app.config["WEBWIDGET_SETTINGS"].TRUSTED_PROXY_HOPS:
        return
    warned = threading.Event()

    @app.before_request
    def _forwarded_without_trust() -> None:
        if warned.is_set() or "HTTP_X_FORWARDED_FOR" not in request.environ:
            return
        warned.set()
        log.warning(
            "a request came through a proxy (X-Forwarded-For) but TRUSTED_PROXY_HOPS is 0:"
            " every visitor counts as the proxy's address, so the per-IP start limit is"
            " shared by the whole site; set TRUSTED_PROXY_HOPS to the number of proxies in"
            " front (1 behind one nginx)"
        )
