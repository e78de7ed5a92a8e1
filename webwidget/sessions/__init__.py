"""Server-side sessions: a signed opaque handle in the browser, JSON data in SQLite or Redis.

Transport: the handle travels in the ``__Host-ww_session-<widget>`` cookie (Secure;
HttpOnly; SameSite=None; Partitioned; Path=/; one session per widget) or, for browsers
that drop third-party cookies, in the ``X-Widget-Session`` request header; never in a
URL. A live cookie wins over the header (see interface.py). A response that issues a
new or rotated handle carries it in both Set-Cookie and ``X-Widget-Session``; after
``session.destroy()`` the cookie is expired and ``X-Widget-Session`` is sent empty,
which tells the page script to forget its copy.

Writes: only top-level keys whose JSON changed are merged into the stored record,
atomically, so overlapping requests of one visitor lose no update. A read-only
request writes nothing, except that it refreshes the idle expiry at most once per
``touch_interval`` (60 s) so an active reader does not time out.
"""

from __future__ import annotations

from .errors import CorruptSessionRecord, SessionStoreUnavailable
from .factory import get_store, init_sessions, store_from_url
from .handles import HandleSigner, new_session_id
from .interface import ServerSessionInterface
from .redis_store import RedisSessionStore
from .session import ServerSession, UnavailableSession, visitor_session
from .sqlite_store import SQLiteSessionStore
from .store import SessionRecord, SessionStore

__all__ = [
    "CorruptSessionRecord",
    "HandleSigner",
    "RedisSessionStore",
    "SQLiteSessionStore",
    "ServerSession",
    "ServerSessionInterface",
    "SessionRecord",
    "SessionStore",
    "SessionStoreUnavailable",
    "UnavailableSession",
    "get_store",
    "init_sessions",
    "new_session_id",
    "store_from_url",
    "visitor_session",
]
