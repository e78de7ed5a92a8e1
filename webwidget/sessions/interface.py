"""Flask SessionInterface keeping data server-side behind a signed handle.

Scopes: with `scope_of` (the app passes the widget a request addresses), each widget
has its own session, its own cookie (`__Host-ww_session-<widget>`) and handles signed
for it alone, so a widget's host page can never get a handle that opens another
widget's chat. A request outside every scope gets an empty session and no store read.

Transport precedence: the cookie is tried first and the `X-Widget-Session` header only
when the cookie is absent or does not lead to a live session. The `__Host-` cookie can
only have been set by this host (a sibling subdomain cannot plant it), while the header
is whatever the page script was handed, so the cookie is the stronger proof.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin

from .errors import CorruptSessionRecord, SessionStoreUnavailable
from .handles import STORE_TAG_LENGTH, HandleSigner, new_session_id
from .session import ServerSession, UnavailableSession
from .store import SessionStore, encode_value

logger = logging.getLogger(__name__)


class ServerSessionInterface(SessionInterface):
    """Reads the handle from the cookie or X-Widget-Session header; merges changes on save."""

    def __init__(
        self,
        store: SessionStore,
        *,
        secret_keys: list[str],
        idle_timeout: float,
        absolute_timeout: float,
        cookie_name: str = "__Host-ww_session",
        header_name: str = "X-Widget-Session",
        clock: Callable[[], float] = time.time,
        touch_interval: float = 60.0,
        scope_of: Callable[[Request], str | None] | None = None,
        skip_prefix: str | None = None,
    ) -> None:
        if idle_timeout <= 0 or absolute_timeout <= 0:
            raise ValueError("idle_timeout and absolute_timeout must be positive seconds")
        self.store = store
        self.signer = HandleSigner(secret_keys)
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self.cookie_name = cookie_name
        self.header_name = header_name
        self.clock = clock
        self.touch_interval = touch_interval
        self.scope_of = scope_of
        # Paths that never open a session (static files).
        self.skip_prefix = skip_prefix

    def cookie_for(self, scope: str) -> str:
        """The cookie that carries a handle of `scope`."""
        return f"{self.cookie_name}-{scope}" if scope else self.cookie_name

    def _signing(self, scope: str) -> Callable[[str], str]:
        return lambda sid: self.signer.sign(sid, scope)

    def _new_session(self, scope: str = "", lost: str | None = None) -> ServerSession:
        return ServerSession(
            sign=self._signing(scope),
            delete=self.store.delete,
            scope=scope,
            new_sid=self._new_sid,
            lost=lost,
        )

    def _store_tag(self) -> str:
        # Read afresh (once per new session): a flushed Redis has a new identity.
        try:
            return self.store.store_id()[:STORE_TAG_LENGTH]
        except SessionStoreUnavailable:
            return ""  # the save will fail and say so; an untagged id is still valid

    def _new_sid(self) -> str:
        return new_session_id(self._store_tag())

    def _why_missing(self, sid: str) -> str:
        tag = self._store_tag()
        return "ended" if not tag or sid.startswith(tag) else "unknown"

    def _candidates(self, request: Request, scope: str) -> Sequence[str]:
        # Cookie first (see the module docstring). Never the URL: handles in URLs leak
        # through logs and Referer.
        found = [request.cookies.get(self.cookie_for(scope)), request.headers.get(self.header_name)]
        return [h for i, h in enumerate(found) if h and h not in found[:i]]

    def _expired(self, created_at: float, last_seen: float, now: float) -> bool:
        return now - last_seen > self.idle_timeout or now - created_at > self.absolute_timeout

    def expires_at(self, created_at: float, last_seen: float) -> float:
        """When a record last seen at last_seen stops being valid."""
        return min(last_seen + self.idle_timeout, created_at + self.absolute_timeout)

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        """Load the session a valid handle points to, else a fresh empty one."""
        if self.skip_prefix and request.path.startswith(self.skip_prefix):
            # Static files never use the session: no store read (assets.init_app sets this).
            return self._new_session()
        scope = self.scope_of(request) if self.scope_of is not None else ""
        if scope is None:
            return self._new_session()  # no widget, no session: nothing is read
        now = self.clock()
        lost: str | None = None
        try:
            for handle in self._candidates(request, scope):
                sid = self.signer.unsign(handle, scope)
                if sid is None:
                    continue  # forged or foreign: costs no store lookup
                try:
                    record = self.store.load(sid)
                except CorruptSessionRecord as exc:
                    # The id is a bearer secret: log the fault, never the id.
                    logger.warning("discarding a corrupt session record: %s", exc)
                    self.store.delete(sid)
                    continue
                if record is None:
                    lost = lost or self._why_missing(sid)
                    continue
                if self._expired(record.created_at, record.last_seen, now):
                    self.store.delete(sid)
                    lost = lost or "expired"
                    continue
                return ServerSession(
                    record.data,
                    sign=self._signing(scope),
                    delete=self.store.delete,
                    stored_sid=sid,
                    created_at=record.created_at,
                    last_seen=record.last_seen,
                    scope=scope,
                    new_sid=self._new_sid,
                )
        except SessionStoreUnavailable as exc:
            logger.error("session store unavailable at open: %s", exc)
            return UnavailableSession(
                sign=self._signing(scope), delete=self.store.delete, scope=scope
            )
        return self._new_session(scope, lost)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Merge what this request changed into the store and send the handle if it is new."""
        if not isinstance(session, ServerSession):
            raise TypeError("ServerSessionInterface saves only the sessions it opened")
        if isinstance(session, UnavailableSession):
            # Sending nothing keeps the visitor's handle for when the store is back.
            response.headers["Cache-Control"] = "no-store"
            return
        try:
            self._save(session, response)
        except SessionStoreUnavailable as exc:
            logger.error("session store unavailable at save: %s", exc)
            _become_503(response)

    def _save(self, session: ServerSession, response: Response) -> None:
        now = self.clock()
        current = {}
        for key, value in dict.items(session):
            try:
                current[key] = encode_value(value)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"session value for {key!r} is not JSON-serialisable") from exc
        changed = {k: v for k, v in current.items() if session.baseline.get(k) != v}
        deleted = [k for k in session.baseline if k not in current]

        if session._sid is None or (session.new and not current):
            # Nothing stored for this visitor (fresh, emptied, or destroyed).
            if session.destroyed:
                self._mark_private(response)
                response.delete_cookie(
                    self.cookie_for(session.scope),
                    path="/",
                    secure=True,
                    httponly=True,
                    samesite="None",
                    partitioned=True,
                )
                # An empty header tells the page script to forget its copy of the handle.
                response.headers[self.header_name] = ""
            return

        if session.accessed or session.modified or session.rotated:
            # Static files and other responses that never used the session stay cacheable.
            self._mark_private(response)
        sid = session._sid
        assert sid is not None
        if session.rotated:
            created_at = session.created_at if session.created_at is not None else now
            self.store.save(
                sid,
                changed=changed,
                deleted=deleted,
                created_at=created_at,
                last_seen=now,
                expires_at=self.expires_at(created_at, now),
                create_with=current,
                previous_sid=session._stored_sid,
            )
            self._send_handle(response, session.handle, session.scope)
            return

        assert session.created_at is not None and session.last_seen is not None
        if not changed and not deleted:
            # Reads are free, but an active reader must not hit the idle timeout: refresh
            # last_seen at most once per touch_interval.
            if now - session.last_seen < self.touch_interval:
                return
            try:
                self.store.save(
                    sid,
                    changed={},
                    deleted=(),
                    created_at=session.created_at,
                    last_seen=now,
                    expires_at=self.expires_at(session.created_at, now),
                )
            except SessionStoreUnavailable as exc:
                logger.warning("could not refresh session expiry: %s", exc)
            return
        written = self.store.save(
            sid,
            changed=changed,
            deleted=deleted,
            created_at=session.created_at,
            last_seen=now,
            expires_at=self.expires_at(session.created_at, now),
        )
        if not written:
            # Another request destroyed or rotated it meanwhile; reviving it would undo that.
            logger.info("session record vanished during the request; changes dropped")

    def _mark_private(self, response: Response) -> None:
        response.headers["Cache-Control"] = "no-store"
        response.vary.update(("Cookie", self.header_name))

    def _send_handle(self, response: Response, handle: str | None, scope: str) -> None:
        assert handle is not None
        # Partitioned (CHIPS) + SameSite=None keeps the cookie usable inside a third-party
        # iframe; the header copy covers browsers that drop such cookies anyway. The
        # __Host- name makes browsers refuse it unless Secure, Path=/ and without Domain.
        response.set_cookie(
            self.cookie_for(scope),
            handle,
            max_age=int(self.absolute_timeout),
            path="/",
            secure=True,
            httponly=True,
            samesite="None",
            partitioned=True,
        )
        response.headers[self.header_name] = handle


def _become_503(response: Response) -> None:
    # The view already ran but its session changes were not kept: say so, let htmx retry.
    response.status_code = 503
    response.set_data(b"Session store unavailable, please retry.")
    response.mimetype = "text/plain"
    response.headers["Retry-After"] = "2"
    response.headers["Cache-Control"] = "no-store"
