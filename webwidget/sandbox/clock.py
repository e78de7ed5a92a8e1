"""Time helpers: a wall clock that tests can advance through the store's offset."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(ts: float) -> str:
    """An ISO-8601 UTC timestamp with milliseconds, e.g. 2024-01-01T12:00:00.000Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def now(offset: float) -> float:
    """The sandbox's current time: real time plus the control API's offset."""
    return time.time() + offset
