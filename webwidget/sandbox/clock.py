"""Time helpers: a wall clock that tests can advance through the store's offset."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(ts: float) -> str:
    """An ISO-8601 UTC timestamp with milliseconds, e.g. 2024-01-01T12:00:00.000Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def now(offset: float, held_at: float | None = None) -> float:
    """The sandbox's current time: real time (or the instant it was held at) plus the offset.

    A held clock lets a test decide when a bot reply falls due, instead of racing it.
    """
    return (time.time() if held_at is None else held_at) + offset
