"""Redis session store: shared by several instances, one hash per session."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Collection, Mapping
from typing import Any, cast

import redis

from ..shared.open import redis_client
from .errors import CorruptSessionRecord, SessionStoreUnavailable
from .store import SessionRecord, encode_value

# Data keys and bookkeeping share one hash; prefixes keep a session key from
# ever shadowing the timestamps.
_DATA = "d:"
_CREATED = "m:created"
_SEEN = "m:seen"

# KEYS: record, previous record (equal to record when there is none).
# ARGV: create?, created_at, last_seen, ttl_ms, n_set, set pairs..., n_del, fields...,
#       n_init, init pairs...
_SAVE_LUA = """
local key, prev = KEYS[1], KEYS[2]
if prev ~= key and redis.call('EXISTS', prev) == 1 then
  redis.call('RENAME', prev, key)
end
local i = 6
local n_set = tonumber(ARGV[5])
local set_at = i
i = i + 2 * n_set
local n_del = tonumber(ARGV[i])
local del_at = i + 1
i = del_at + n_del
local n_init = tonumber(ARGV[i])
local init_at = i + 1
if redis.call('EXISTS', key) == 0 then
  if ARGV[1] ~= '1' then
    return 0
  end
  redis.call('HSET', key, 'm:created', ARGV[2])
  for j = 0, n_init - 1 do
    redis.call('HSET', key, ARGV[init_at + 2 * j], ARGV[init_at + 2 * j + 1])
  end
else
  for j = 0, n_set - 1 do
    redis.call('HSET', key, ARGV[set_at + 2 * j], ARGV[set_at + 2 * j + 1])
  end
  for j = 0, n_del - 1 do
    redis.call('HDEL', key, ARGV[del_at + j])
  end
end
redis.call('HSET', key, 'm:seen', ARGV[3])
redis.call('PEXPIRE', key, ARGV[4])
return 1
"""

# `webwidget sessions migrate`: one session copied in, unless Redis holds a copy seen as
# recently or later (a visitor who went on chatting here since). KEYS: record.
# ARGV: last_seen, created_at, ttl_ms, field/value pairs...
_COPY_LUA = """
local seen = redis.call('HGET', KEYS[1], 'm:seen')
if seen and tonumber(seen) >= tonumber(ARGV[1]) then
  return 'kept'
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'm:created', ARGV[2], 'm:seen', ARGV[1])
for j = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[j], ARGV[j + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if seen then
  return 'updated'
end
return 'copied'
"""


class RedisSessionStore:
    """Sessions as Redis hashes of key -> JSON; merges run in one Lua script."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "webwidget:session:",
        timeout: float = 2.0,
        client: redis.Redis | None = None,
    ) -> None:
        self.key_prefix = key_prefix
        # Beside the sessions, not among them: count_active scans the session prefix.
        self.meta_prefix = key_prefix.rstrip(":") + "-meta:"
        # The app's one client (shared/), else one of the store's own made the same way:
        # text replies, and a 503 fast when Redis is dead.
        self._client = client or redis_client(url, timeout)
        self._save_script = self._client.register_script(_SAVE_LUA)
        self._copy_script = self._client.register_script(_COPY_LUA)

    def _key(self, sid: str) -> str:
        return self.key_prefix + sid

    def load(self, sid: str) -> SessionRecord | None:
        """The record for sid, None if absent; CorruptSessionRecord if unreadable."""
        try:
            fields = self._client.hgetall(self._key(sid))
        except redis.RedisError as exc:
            raise SessionStoreUnavailable(f"Redis session store: {exc}") from exc
        if not fields:
            return None
        # The client decodes responses (decode_responses=True); its types cannot say so.
        return _decode(cast("dict[str, str]", fields))

    def save(
        self,
        sid: str,
        *,
        changed: Mapping[str, str],
        deleted: Collection[str],
        created_at: float,
        last_seen: float,
        expires_at: float,
        create_with: Mapping[str, str] | None = None,
        previous_sid: str | None = None,
    ) -> bool:
        """Atomically merge changes into sid's record; False if it is gone and not created."""
        # A relative TTL is immune to clock skew between this host and Redis.
        ttl_ms = max(1, math.ceil((expires_at - last_seen) * 1000))
        args: list[Any] = [
            "1" if create_with is not None else "0",
            repr(created_at),
            repr(last_seen),
            ttl_ms,
            len(changed),
        ]
        for key, text in changed.items():
            args += [_DATA + key, text]
        args.append(len(deleted))
        args += [_DATA + key for key in deleted]
        init = create_with or {}
        args.append(len(init))
        for key, text in init.items():
            args += [_DATA + key, text]
        keys = [self._key(sid), self._key(previous_sid if previous_sid is not None else sid)]
        try:
            return bool(self._save_script(keys=keys, args=args))
        except redis.RedisError as exc:
            raise SessionStoreUnavailable(f"Redis session store: {exc}") from exc

    def copy_in(self, sid: str, record: SessionRecord, *, ttl: float) -> str:
        """Store `record` as sid's, expiring in `ttl` seconds, unless the copy here was seen
        as recently or later: 'copied', 'updated' (an older copy replaced) or 'kept'."""
        args: list[Any] = [repr(record.last_seen), repr(record.created_at),
                           max(1, math.ceil(ttl * 1000))]
        for key, value in record.data.items():
            args += [_DATA + key, encode_value(value)]
        try:
            return str(self._copy_script(keys=[self._key(sid)], args=args))
        except redis.RedisError as exc:
            raise SessionStoreUnavailable(f"Redis session store: {exc}") from exc

    def delete(self, sid: str) -> None:
        """Remove sid's record if present."""
        try:
            self._client.delete(self._key(sid))
        except redis.RedisError as exc:
            raise SessionStoreUnavailable(f"Redis session store: {exc}") from exc

    def count_active(self) -> int:
        """How many sessions have not expired (Redis drops expired keys itself)."""
        try:
            # SCAN, not KEYS: it never blocks Redis for long.
            return sum(1 for _ in self._client.scan_iter(match=f"{self.key_prefix}*", count=1000))
        except redis.RedisError as exc:
            raise SessionStoreUnavailable(f"Redis session store: {exc}") from exc

    def ping(self) -> None:
        """Raise SessionStoreUnavailable unless Redis answers."""
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise SessionStoreUnavailable(f"Redis session store: {exc}") from exc

    def probe_write(self) -> None:
        """One expiring write: Redis out of memory, read-only or hung shows now."""
        try:
            self._client.set(self.meta_prefix + "probe", "1", px=10_000)
        except redis.RedisError as exc:
            raise SessionStoreUnavailable(f"Redis session store: {exc}") from exc

    def store_id(self) -> str:
        """This Redis's identity; a flushed Redis makes a new one, as it is a new store."""
        key = self.meta_prefix + "store-id"
        try:
            self._client.set(key, secrets.token_urlsafe(12), nx=True)
            return str(self._client.get(key))
        except redis.RedisError as exc:
            raise SessionStoreUnavailable(f"Redis session store: {exc}") from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def _decode(fields: Mapping[str, str]) -> SessionRecord:
    data: dict[str, Any] = {}
    try:
        created_at = float(fields[_CREATED])
        last_seen = float(fields[_SEEN])
        for name, text in fields.items():
            if name.startswith(_DATA):
                data[name[len(_DATA) :]] = json.loads(text)
            elif name not in (_CREATED, _SEEN):
                raise CorruptSessionRecord("unexpected field in session hash")
    except (KeyError, ValueError) as exc:
        raise CorruptSessionRecord("session hash is not valid") from exc
    return SessionRecord(created_at=created_at, last_seen=last_seen, data=data)
