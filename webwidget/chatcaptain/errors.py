"""Typed failures of the ChatCaptain client; their text never holds a secret or a URL.

Every exception is an `UpstreamError` with a stable `kind` (for metrics and for the
widget's error handler), the `operation` that failed and, when one arrived, the HTTP
`status`. Messages are built only from those fields, a short reason and the upstream's
own `error` string (with known secrets redacted by the client), so `str(exc)` and
tracebacks are safe to log. The client raises them `from None`: a chained requests
exception would carry the URL, and with it the `token` query parameter.
"""

from __future__ import annotations

from typing import ClassVar

# Upstream error strings are shown in logs only; cap them so a huge body cannot flood logs.
MAX_DETAIL_CHARS = 200


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


class UpstreamError(Exception):
    """Base of every failure talking to ChatCaptain."""

    kind: ClassVar[str] = "error"

    def __init__(self, reason: str, *, operation: str | None = None, status: int | None = None):
        self.reason = _clip(reason)
        self.operation = operation
        self.status = status
        super().__init__(self.reason)

    def __str__(self) -> str:
        parts = [f"{self.operation}: " if self.operation else "", self.reason]
        if self.status is not None:
            parts.append(f" (HTTP {self.status})")
        return "".join(parts)


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached or answered 5xx (after any retries)."""

    kind = "unavailable"


class UpstreamTimeout(UpstreamUnavailable):
    """A connect or read timeout, or the operation's overall deadline, was exceeded."""

    kind = "timeout"


class UpstreamRejected(UpstreamError):
    """A 4xx answer, or a 2xx whose body carries a non-empty `error`."""

    kind = "rejected"

    def __init__(self, status: int, error: str | None, *, operation: str | None = None):
        self.error = _clip(error) if error else ""
        super().__init__(
            f"rejected: {self.error}" if self.error else "rejected",
            operation=operation,
            status=status,
        )


class TokenInvalid(UpstreamRejected):
    """The widget token was refused (401/403 on a call that carries one)."""

    kind = "token_invalid"


class TokenExpired(TokenInvalid):
    """The widget token has expired; create_conversation hands out a new one."""

    kind = "token_expired"


class ContractViolation(UpstreamError):
    """The answer was not JSON or did not match the contract's models."""

    kind = "contract"


class SendingUnsupported(UpstreamError):
    """This upstream offers no way for the visitor to send a message."""

    kind = "unsupported"

    def __init__(self, reason: str = "sending messages is not supported by this upstream"):
        super().__init__(reason, operation="send_message")
