"""The store contract shared by SQLite and Redis, and the JSON encoding of values."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class SessionRecord:
    """One stored session: its data and the times the timeouts are measured from."""

    created_at: float
    last_seen: float
    data: dict[str, Any]


def encode_value(value: Any) -> str:
    """Canonical JSON for one top-level value, so equal data gives equal text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False
    )


class SessionStore(Protocol):
    """Where session records live; every method may raise SessionStoreUnavailable."""

    def load(self, sid: str) -> SessionRecord | None:
        """The record for sid, None if absent; CorruptSessionRecord if unreadable."""

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
        """Atomically merge changes into sid's record; False if it is gone and not created.

        In one atomic step: if previous_sid names a record, it is renamed to sid; then if
        sid exists, the JSON texts in `changed` are set and `deleted` keys removed; if it
        does not exist and create_with is given, it is created holding create_with;
        otherwise nothing is written. last_seen and the expiry are updated on success.
        """

    def delete(self, sid: str) -> None:
        """Remove sid's record if present."""

    def ping(self) -> None:
        """Raise SessionStoreUnavailable unless the store answers."""

    def probe_write(self) -> None:
        """Raise SessionStoreUnavailable unless a write reaches the store now (disk full,
        read-only file, Redis out of memory or hung): checked before creating anything
        upstream that only a session could keep."""

    def store_id(self) -> str:
        """This store's identity, made once when it is first asked for: handles carry a
        few characters of it, so a miss can tell "ended here" from "never seen here"."""

    def count_active(self) -> int:
        """How many sessions have not expired (the active-sessions gauge)."""

    def close(self) -> None:
        """Release connections."""
