"""Response headers and the same-origin check for state changes, set in one place.

flask-talisman would do part of this but forces `SameSite=Lax` cookies, which an
embedded iframe cannot use, so the few headers are set here by hand.

CSRF rules for a state-changing request (POST, PUT, PATCH, DELETE):

1. Same origin. With fetch metadata, only `Sec-Fetch-Site: same-origin` passes
   (`same-site`, `cross-site` and `none` are refused: the iframe's own forms and htmx
   calls are always same-origin). Without it (older browsers), the `Origin` header
   must equal this server's origin; `Origin: null` or no Origin at all is refused.
   An allowed host page is *not* same-origin: it may frame the widget, never post to it.
2. The custom header. `HX-Request: true` is the custom header htmx adds to every
   request; it is not CORS-safelisted, so another origin cannot send it without a
   preflight, which this app never grants (it sends no Access-Control-* headers).
   A request that carries `HX-Request` with any other value is refused, and a body
   that is not an HTML form encoding (urlencoded, multipart or empty) is refused unless
   it carries `HX-Request: true`: a plain no-JavaScript form can only send form
   encodings, and `text/plain` (form enctype, sendBeacon) is the classic CSRF body.
"""

from __future__ import annotations

import secrets

from flask import Flask, Request, abort, current_app, g, request

from ..current import current_widget, widget_id_in_path, widgets_of
from ..settings import parse_origin

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = frozenset({"", "application/x-www-form-urlencoded", "multipart/form-data"})
HSTS = "max-age=31536000"
# Demo-mode pages that frame the widget: the host page and the theme gallery.
FRAMING_PAGES = frozenset({"demo.host_page", "gallery.index"})


# Probes and scrapers address an instance by IP; these answers hold no origin-bound data.
HOST_FREE_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "metrics.scrape", "static"})


def own_origin() -> str:
    """This server's origin: PUBLIC_URL when set, else from Host (ProxyFix applied)."""
    public = current_app.config["WEBWIDGET_SETTINGS"].PUBLIC_URL
    return public or request.host_url.rstrip("/")


def refuse_unknown_hosts():
    """With PUBLIC_URL set, a request for any other Host is refused (400), before any view.

    Our origin then never comes from a header an attacker chooses (DNS rebinding, a
    forged Host behind a permissive proxy): not for CSRF, not for originUrl.
    """
    public = current_app.config["WEBWIDGET_SETTINGS"].PUBLIC_URL
    if not public or request.endpoint in HOST_FREE_ENDPOINTS:
        return
    scheme = public.split("://", 1)[0]
    try:
        asked = parse_origin(f"{scheme}://{request.host}")
    except ValueError:
        asked = None
    if asked != public:
        abort(400)


def request_is_same_origin() -> bool:
    """Fetch metadata first; where a browser sends none, the Origin header must be ours."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("Origin")
    return origin is not None and origin == own_origin()


def carries_custom_header() -> bool:
    """Whether the request satisfies rule 2 of the module docstring."""
    hx = request.headers.get("HX-Request")
    if hx is not None and hx != "true":
        return False
    return hx == "true" or request.mimetype in FORM_TYPES


def refuse_cross_site_changes():
    """A state-changing request from another site is refused before it reaches a view."""
    if request.method in STATE_CHANGING and not (
        request_is_same_origin() and carries_custom_header()
    ):
        abort(403)


def session_scope(req: Request) -> str | None:
    """The known widget a request addresses: each widget has its own visitor session.

    Read from the path (sessions open before routing), the same segment `<widget>`
    routes take; None outside widget routes and for unknown ids, which get no session.
    """
    widget_id = widget_id_in_path(req.path)
    return widget_id if widget_id is not None and widget_id in widgets_of() else None


def frame_ancestors() -> str:
    """Who may frame this response: exactly the widget's allowed origins, else nobody.

    `'self'` joins them only in demo mode, where the demo host page at `/` is served by
    this same app; a production widget is framed by its configured origins alone.
    """
    # Routing resolved it; a request it refused (405) still names one in its path.
    widget = current_widget() or widgets_of().get(widget_id_in_path() or "")
    if widget is None:
        return "'none'"
    demo = current_app.config["WEBWIDGET_SETTINGS"].demo_mode
    origins = (*(("'self'",) if demo else ()), *widget.allowed_origins)
    return " ".join(origins) or "'none'"


def csp_nonce() -> str:
    """A per-response nonce for an inline script a theme may need; the CSP lists it once used."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def content_security_policy() -> str:
    """Scripts and styles from our origin only; media from https and the demo sandbox."""
    media = " ".join(("'self'", "https:", *current_app.config.get("WEBWIDGET_MEDIA_ORIGINS", ())))
    scripts = "'self'" + (f" 'nonce-{g.csp_nonce}'" if "csp_nonce" in g else "")
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {scripts}",
            "style-src 'self'",
            f"img-src {media} data:",
            f"media-src {media}",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-ancestors {frame_ancestors()}",
            # The demo host page and the theme gallery frame the widget this app serves.
            *(("frame-src 'self'",) if request.endpoint in FRAMING_PAGES else ()),
        )
    )


def set_security_headers(response):
    """Add the headers every response carries."""
    # A 204 (the unchanged poll, most of all traffic) has no document to protect, and
    # leaving the policy off keeps it under 1 KB on the wire.
    if response.mimetype == "text/html" and response.status_code != 204:
        response.headers["Content-Security-Policy"] = content_security_policy()
    # Pages, fragments and error pages are per visitor: never kept by a cache. The
    # session interface adds the same to any other response that used the session.
    if response.mimetype == "text/html" or widget_id_in_path() is not None:
        response.headers["Cache-Control"] = "no-store"
    response.headers.pop("X-Frame-Options", None)  # CSP frame-ancestors decides, per widget
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = HSTS
    return response


def init_app(app: Flask) -> None:
    """Wire the host and same-origin checks, the headers and the nonce helper into `app`."""
    app.before_request(refuse_unknown_hosts)
    app.before_request(refuse_cross_site_changes)
    app.after_request(set_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
