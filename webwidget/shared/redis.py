"""Shared state in Redis: every instance shares it; Redis keeps the times to live."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from .interface import SharedStateUnavailable

# Delete the key only if it still holds the caller's value (a lease may have expired and
# been taken by another holder meanwhile).
_DELETE_IF_EQUAL = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _text(value: str | bytes | None) -> str | None:
    # The app's client decodes replies; a bare client (tests, tools) gives bytes.
    return value.decode() if isinstance(value, bytes) else value


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


class RedisState:
    """Plain string keys on one client (which decodes replies to text)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._delete_if_equal = client.register_script(_DELETE_IF_EQUAL)

    @staticmethod
    @contextmanager
    def _answering() -> Iterator[None]:
        try:
            yield
        except redis.RedisError as error:
            raise SharedStateUnavailable(f"Redis shared state: {type(error).__name__}") from error

    def get(self, key: str) -> str | None:
        """The key's value, None when absent or expired."""
        with self._answering():
            value = self.client.get(key)
        return _text(value)

    def get_many(self, keys: list[str]) -> list[str | None]:
        """Each key's value, None when absent or expired (one MGET)."""
        with self._answering():
            values = self.client.mget(keys)
        return [_text(value) for value in values]

    def set(self, key: str, value: str, ttl: float) -> None:
        """Store `value` for `ttl` seconds."""
        with self._answering():
            self.client.set(key, value, px=_ms(ttl))

    def add(self, key: str, value: str, ttl: float) -> bool:
        """Store `value` unless the key is there; whether it was stored."""
        with self._answering():
            return bool(self.client.set(key, value, nx=True, px=_ms(ttl)))

    def incr(self, key: str, ttl: float) -> int:
        """The counter plus one, kept `ttl` seconds from now."""
        with self._answering():
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.pexpire(key, _ms(ttl))
            count, _ = pipe.execute()
        return int(count)

    def delete_if_equal(self, key: str, value: str) -> bool:
        """Delete the key while it holds `value`."""
        with self._answering():
            return bool(self._delete_if_equal(keys=[key], args=[value]))
