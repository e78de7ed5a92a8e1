"""Structured JSON logs with a request id, and a filter that keeps secrets out of them.

`init_app` gives every request an id (a sane incoming X-Request-ID, else a new one),
echoes it in the response, and installs one JSON handler on the root logger. The
handler carries `RedactingFilter`: every record's message (and exception text) has
query strings cut and any known secret (channel tokens, API key, secret keys) or
token-like value replaced before it is written, whichever library logged it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import TypeVar

from flask import Flask, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"
# Anything else in an incoming id (newlines, quotes, huge values) is replaced, not logged.
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

T = TypeVar("T")
# Work a request asked for that runs after it, on another thread (a background refresh):
# the asking request's id and what the work is.
_asked_by: ContextVar[tuple[str, str] | None] = ContextVar("webwidget_asked_by", default=None)

REDACTED = "[redacted]"
# Generic shapes of secrets: query strings (the widget token travels in `?token=`),
# key=value or "key": "value" pairs with a secret-sounding key, sandbox-style tokens.
_PATTERNS = (
    re.compile(r"\?[^\s\"'<>]*"),
    re.compile(
        r"(?i)((?:token|widgetToken|channelToken|newWebToken|api[_-]?key|secret|password|"
        r"x-chatcaptain-key|x-widget-session|(?:__Host-)?ww_session(?:-[\w-]+)?)[\"']?\s*[:=]\s*[\"']?)[^\s\"',&;}]+"
    ),
    re.compile(r"\b(?:wt|ct|cv)_[A-Za-z0-9_-]{8,}"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret and every secret-shaped value replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _PATTERNS[0].sub("?" + REDACTED, text)
    text = _PATTERNS[1].sub(lambda m: m.group(1) + REDACTED, text)
    return _PATTERNS[2].sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message and exception text with `redact`; drops nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add_secrets(self, secrets: Iterable[str | None]) -> None:
        """Remember more values that must never be written (at least 8 characters)."""
        self.secrets.update(s for s in secrets if s and len(s) >= 8)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed third-party record: keep its raw text
            message = str(record.msg)
        record.msg = redact(message, self.secrets)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        # The formatted text above replaces the traceback objects (they hold locals).
        record.exc_info = None
        return True


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request's id, or the id of the request that
    asked for the background work running now (then `background` says which), or "-"."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add `request_id` (and `background` in work a request asked for)."""
        if has_request_context():
            record.request_id = g.get("request_id", "-")
        elif (asked := _asked_by.get()) is not None:
            record.request_id, record.background = asked
        else:
            record.request_id = "-"
        return True


def asked_by_this_request(kind: str, job: Callable[[], T]) -> Callable[[], T]:
    """`job`, whose log lines carry this request's id and `"background": kind` on whatever
    thread runs it later: an operator finds a refresh's failure from the poll that asked."""
    asked = g.get("request_id") if has_request_context() else None
    if not asked:
        return job

    def run() -> T:
        token = _asked_by.set((asked, kind))
        try:
            return job()
        finally:
            _asked_by.reset(token)

    return run


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, error text."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as compact JSON."""
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if background := getattr(record, "background", None):
            entry["background"] = background
        if record.exc_info and not record.exc_text:  # a record no RedactingFilter saw
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            entry["error"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (test capture, gunicorn's redirect)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102 - StreamHandler API
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def install_handler(level: int = logging.INFO) -> RedactingFilter:
    """The root logger's JSON handler (installed once per process); its redacting filter."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, StderrHandler):
            return next(f for f in handler.filters if isinstance(f, RedactingFilter))
    handler = StderrHandler()
    redactor = RedactingFilter()
    # Redact first, then stamp: the request id is ours and safe.
    handler.addFilter(redactor)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    return redactor


def incoming_request_id() -> str:
    """The caller's X-Request-ID if it is sane, else a fresh one."""
    # From the environ: werkzeug's header lookup raises and catches a KeyError per miss.
    value = request.environ.get(REQUEST_ID_ENVIRON, "")
    return value if SAFE_REQUEST_ID.match(value) else uuid.uuid4().hex


def init_app(app: Flask, secrets: Iterable[str | None] = ()) -> RedactingFilter:
    """Request ids in and out, and JSON logs that never hold `secrets`."""
    redactor = install_handler()
    redactor.add_secrets(secrets)

    @app.before_request
    def _request_id() -> None:
        g.request_id = incoming_request_id()

    @app.after_request
    def _echo_request_id(response):
        response.headers[REQUEST_ID_HEADER] = g.get("request_id") or incoming_request_id()
        return response

    return redactor
