"""Abuse limits: chat starts per client, per network and per widget, sends per session.

The counters must be shared by every worker and instance, or N workers allow N times
the limit: storage is `RATE_LIMIT_STORAGE_URL`, else the app's shared state (the session
store's Redis or SQLite file; `shared/limit_storage.py`). `memory://` is only ever used
when set, and start-up then warns that it is per process. The client IP
is `request.remote_addr`: X-Forwarded-For counts only through ProxyFix with
`TRUSTED_PROXY_HOPS` configured, so a spoofed header cannot dodge the per-IP limit. An
IPv6 client is its /64 (`RATE_LIMIT_IPV6_PREFIX`): one VPS holds a whole /64, and 62 of
its addresses once used up the widget's ceiling for every visitor. The per-widget ceiling
is far above the per-network one (a /24 or /48), so no single network can reach it alone.

Only the start and send views carry limits (`@limited("start")`, `@limited("send")`),
checked after the same-origin check and before the view, so a refused request costs
nothing upstream, with `limits`' moving window. No limit is counted for any other request
(Flask-Limiter's per-request hook cost every poll a fifth of its CPU time though polls
have no limit); what runs for every request is one after_request status check that gives
a 429 its Retry-After, whichever handler answered it. Limit storage down fails open: the
limits protect the upstream, they must not take the widget down. An outage is logged
once when it starts and once when it ends (with how many requests went unchecked), not
once per request, and counted in /metrics (`webwidget_rate_limit_fail_open_total`, and
429s by limit).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TypeVar, cast

from flask import Flask, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from ..current import current_widget
from ..ops import metrics
from ..sessions import SessionStoreUnavailable, visitor_session
from ..settings import Settings
from ..shared import Shared
from ..shared.limit_storage import open_limit_storage

log = logging.getLogger(__name__)

# Where the app keeps its Limits (/readyz reads their storage from it).
EXTENSION = "webwidget.limits"


# The network around a client: its neighbours in a /24, or a site's /48 (what a hosting
# customer or an office is routinely given), never wider than the client's own prefix.
IPV4_NETWORK_PREFIX = 24
IPV6_NETWORK_PREFIX = 48


def _remote_address() -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address (an IPv4-mapped IPv6 one as IPv4), or None if it is no address."""
    try:
        address = ipaddress.ip_address((request.remote_addr or "").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _ipv6_prefix() -> int:
    return current_app.config["WEBWIDGET_SETTINGS"].RATE_LIMIT_IPV6_PREFIX


def client_ip() -> str:
    """The client the per-IP limit counts: an IPv4 address, or an IPv6 address's /64
    (RATE_LIMIT_IPV6_PREFIX), since one host may use every address of its network."""
    address = _remote_address()
    if address is None:
        return "ip:" + (request.remote_addr or "unknown")
    if address.version == 4:
        return f"ip:{address}"
    return f"ip:{ipaddress.ip_network((address, _ipv6_prefix()), strict=False)}"


def network_key() -> str:
    """The client's network (/24 or /48), which the per-network limit counts."""
    address = _remote_address()
    if address is None:
        return "net:" + (request.remote_addr or "unknown")
    prefix = (
        IPV4_NETWORK_PREFIX
        if address.version == 4
        else min(IPV6_NETWORK_PREFIX, _ipv6_prefix())
    )
    return f"net:{ipaddress.ip_network((address, prefix), strict=False)}"


def widget_key() -> str:
    """All visitors of one widget share this key; unknown ids share one bucket."""
    widget = current_widget()
    return "widget:" + (widget.id if widget is not None else "?")


def session_key() -> str:
    """The visitor's session, hashed (the handle is a bearer secret); the IP without one."""
    try:
        handle = visitor_session().handle
    except SessionStoreUnavailable:
        handle = None
    if not handle:
        return client_ip()
    return "session:" + hashlib.sha256(handle.encode()).hexdigest()[:32]


# Several apps may share one Redis: their counters must not mix.
KEY_PREFIX = "webwidget"
# The limit's name in /metrics, by what it counts.
LIMIT_NAMES = {
    "client_ip": "per_ip",
    "network_key": "per_network",
    "widget_key": "per_widget",
    "session_key": "per_session",
}


class Outage:
    """Whether the limit storage is failing (per process), so each outage is logged once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.unchecked = 0

    def failed(self, error: BaseException) -> None:
        """One request let through unchecked; the first of an outage says so."""
        with self.lock:
            self.unchecked += 1
            first = self.unchecked == 1
        metrics.count_limits_fail_open()
        if first:
            log.error("rate-limit storage unavailable (%s): requests are let through"
                      " unchecked until it answers again", type(error).__name__)

    def answered(self) -> None:
        """The storage answered: an outage, if any, is over."""
        if not self.unchecked:
            return
        with self.lock:
            unchecked, self.unchecked = self.unchecked, 0
        if unchecked:
            log.warning("rate-limit storage answers again; %s requests went unchecked",
                        unchecked)


def outage_of(window: MovingWindowRateLimiter) -> Outage:
    """The outage state shared by every limit on `window` (one per app and process)."""
    outage = _OUTAGES.get(window)
    if outage is None:
        outage = _OUTAGES[window] = Outage()
    return outage


# Each window's outage, gone with its window (apps built and dropped by tests, reloads).
_OUTAGES: weakref.WeakKeyDictionary[MovingWindowRateLimiter, Outage] = (
    weakref.WeakKeyDictionary()
)


class Limit:
    """One setting's limits (`10/minute;100/hour`) counted per key, in a moving window."""

    def __init__(self, window: MovingWindowRateLimiter, rules: str, key: Callable[[], str]):
        self.window = window
        self.items: list[RateLimitItem] = parse_many(rules)
        self.key = key

    def check(self) -> None:
        """Count this request; 429 (with when to retry) once any limit is used up."""
        key = self.key()
        outage = outage_of(self.window)
        for item in self.items:
            try:
                allowed = self.window.hit(item, KEY_PREFIX, key)
                if not allowed:
                    reset_at = self.window.get_window_stats(item, KEY_PREFIX, key).reset_time
            except Exception as exc:  # noqa: BLE001 - any storage trouble: fail open, logged
                outage.failed(exc)
                return
            outage.answered()
            if not allowed:
                metrics.count_rate_limited(
                    LIMIT_NAMES.get(getattr(self.key, "__name__", ""), "other")
                )
                g.retry_after = max(1, math.ceil(reset_at - time.time()))
                raise TooManyRequests()


class Limits:
    """The app's limits by view name, all counted on one moving window."""

    def __init__(self, window: MovingWindowRateLimiter, by_view: dict[str, tuple[Limit, ...]]):
        self.window = window
        self.by_view = by_view

    @property
    def storage(self) -> Storage:
        """Where the counters live (/readyz writes a probe to it)."""
        return self.window.storage

    def check(self, view: str) -> None:
        """Count this request against `view`'s limits, in order; 429 once one is used up."""
        for limit in self.by_view.get(view, ()):
            limit.check()


F = TypeVar("F", bound=Callable[..., object])


def limited(view_name: str) -> Callable[[F], F]:
    """A view refused with a 429 when any of the app's limits for `view_name` is used up
    (none when RATE_LIMIT_ENABLED is off)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: object, **kwargs: object) -> object:
            limits: Limits | None = current_app.extensions.get(EXTENSION)
            if limits is not None:
                limits.check(view_name)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def retry_after(response):
    """A 429 says when to come back, in whole seconds."""
    if response.status_code == 429 and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str(g.get("retry_after", 60))
    return response


def init_app(app: Flask, settings: Settings, shared: Shared) -> Limits | None:
    """The app's limits on starts and sends (the views say which they carry: `limited`),
    counted in `shared` unless RATE_LIMIT_STORAGE_URL says where."""
    app.after_request(retry_after)
    if not settings.RATE_LIMIT_ENABLED:
        return None
    storage = open_limit_storage(settings, shared)
    if isinstance(storage, MemoryStorage):
        log.warning(
            "RATE_LIMIT_STORAGE_URL=memory:// counts per process: with %s workers (and every "
            "further instance) the limits multiply; unset it to share the session store's "
            "SQLite file, or set redis://host:port/db",
            os.environ.get("WEB_CONCURRENCY", "several"),
        )
    window = MovingWindowRateLimiter(storage)
    limits = Limits(window, {
        # In this order, each counting only what the one before let through: a client
        # over its own limit adds nothing to its network's, a network nothing to the widget's.
        "start": (
            Limit(window, settings.RATE_LIMIT_START_PER_IP, client_ip),
            Limit(window, settings.RATE_LIMIT_START_PER_NETWORK, network_key),
            Limit(window, settings.RATE_LIMIT_START_PER_WIDGET, widget_key),
        ),
        "send": (Limit(window, settings.RATE_LIMIT_SEND_PER_SESSION, session_key),),
    })
    app.extensions[EXTENSION] = limits
    return limits
