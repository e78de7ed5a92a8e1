"""Error pages: every HTTP error and every unexpected exception ends on a friendly page
(or a small fragment for htmx), in the visitor's language, never with a stack trace."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask, g, render_template, request
from flask_babel import format_timedelta, gettext
from werkzeug.exceptions import BadRequest, HTTPException

from ..sessions import SessionStoreUnavailable
from .i18n import N_

log = logging.getLogger(__name__)

ERROR_TEXT = {
    400: (N_("Something is not right"), N_("The request could not be understood.")),
    403: (N_("Not allowed"), N_("This action is not allowed from here.")),
    404: (N_("Not found"), N_("There is no chat here.")),
    405: (N_("Not possible"), N_("This action is not available.")),
    413: (N_("Too long"), N_("That was too much to send at once.")),
    429: (N_("Slow down"), N_("Too many requests. Please wait a moment.")),
    503: (N_("Back soon"), N_("The chat is briefly unavailable. Please try again in a moment.")),
}


class Refused(BadRequest):
    """A 400 with our own words for the visitor (its description); Werkzeug's own 400s
    (a malformed request, an unknown host) get the generic text."""


def render_error(status: int, message: str | None = None):
    """A friendly error page, or a small fragment for htmx; never a stack trace."""
    heading, default = ERROR_TEXT.get(status, (N_("Something went wrong"), N_("Please try again.")))
    # Our own texts translate; any other message passes through gettext unchanged.
    heading, message = gettext(heading), gettext(message or default)
    if status == 429 and g.get("retry_after"):
        message = retry_message(g.retry_after)
    if request.headers.get("HX-Request") == "true":
        body = render_template("errors/_fragment.html", message=message)
        return body, status, {"HX-Retarget": "#ww-status", "HX-Reswap": "innerHTML"}
    return render_template("errors/error.html", heading=heading, message=message), status


def retry_message(seconds: int) -> str:
    """When to try again, in the visitor's language ("in 40 seconds", "in 2 minutes")."""
    wait = format_timedelta(timedelta(seconds=seconds), threshold=1.5, add_direction=False)
    return gettext("Too many requests. Please try again in %(wait)s.", wait=wait)


def register_error_pages(app: Flask) -> None:
    """Every HTTP error and every unexpected exception ends on a friendly page."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        description = error.description if isinstance(error, Refused) else None
        return render_error(error.code or 500, description)

    @app.errorhandler(SessionStoreUnavailable)
    def store_down(error: SessionStoreUnavailable):
        # The store's own words ("database or disk is full", "OOM command not allowed"):
        # what the operator must mend. They name a file or an address, never a secret.
        log.error("session store unavailable: %s", error)
        return render_error(503)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        original = getattr(error, "original_exception", None)
        if isinstance(original, SessionStoreUnavailable):
            return store_down(original)
        log.exception("unhandled error")
        return render_error(500)
