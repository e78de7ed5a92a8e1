"""Response headers and the same-origin check for state changes, set in one place.

flask-talisman would do part of this but forces `SameSite=Lax` cookies, which an
embedded iframe cannot use, so the few headers are set here by hand.
"""

from __future__ import annotations

from flask import Flask, abort, current_app, request

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def request_is_same_origin() -> bool:
    """Fetch metadata first; where a browser sends none, the Origin header must be ours."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("Origin")
    return origin is not None and origin == request.host_url.rstrip("/")


def frame_ancestors() -> str:
    """Who may frame this response: the widget's allowed origins, else only ourselves."""
    widgets = current_app.extensions["webwidget.widgets"]
    if request.blueprint == "widget" and request.view_args and "widget" in request.view_args:
        widget = widgets.get(request.view_args["widget"])
        if widget is None:
            return "'none'"
        return " ".join(("'self'", *widget.allowed_origins))
    return "'self'"


def content_security_policy() -> str:
    """Scripts and styles from our origin only; media from https and the demo sandbox."""
    media = " ".join(("'self'", "https:", *current_app.config.get("WEBWIDGET_MEDIA_ORIGINS", ())))
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {media} data:",
            f"media-src {media}",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-ancestors {frame_ancestors()}",
        )
    )


def refuse_cross_site_changes():
    """A state-changing request from another site is refused before it reaches a view."""
    if request.method in STATE_CHANGING and not request_is_same_origin():
        abort(403)


def set_security_headers(response):
    """Add the headers every response carries."""
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = content_security_policy()
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


def init_app(app: Flask) -> None:
    """Wire the same-origin check and the headers into `app`."""
    app.before_request(refuse_cross_site_changes)
    app.after_request(set_security_headers)
