"""The key-value interface shared state is written against, and its one error."""

from __future__ import annotations

from typing import Protocol


class SharedStateUnavailable(Exception):
    """The shared place did not answer (Redis down, SQLite file locked or full).

    Every backend raises this and only this for its own trouble, so a caller decides
    explicitly what an outage means for it (usually: carry on without sharing).
    """


class SharedState(Protocol):
    """Strings under string keys, each with a time to live in seconds.

    A key past its time to live is absent for every operation. Values are text; counters
    are decimal text, as Redis keeps them.
    """

    def get(self, key: str) -> str | None:
        """The key's value, None when absent or expired."""
        ...

    def get_many(self, keys: list[str]) -> list[str | None]:
        """Each key's value (None when absent or expired), read at one moment."""
        ...

    def set(self, key: str, value: str, ttl: float) -> None:
        """Store `value` for `ttl` seconds, replacing any value."""
        ...

    def add(self, key: str, value: str, ttl: float) -> bool:
        """Store `value` for `ttl` seconds only if the key is absent; whether it was."""
        ...

    def incr(self, key: str, ttl: float) -> int:
        """Add one to the counter (absent counts as 0) and keep it `ttl` seconds from now."""
        ...

    def delete_if_equal(self, key: str, value: str) -> bool:
        """Delete the key only while it holds `value` (a lease its holder frees); whether
        it did."""
        ...
