"""The session object views see as flask.session."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

from flask import session
from flask.sessions import SessionMixin
from werkzeug.datastructures import CallbackDict

from .errors import SessionStoreUnavailable
from .handles import new_session_id
from .store import encode_value


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """A dict of JSON values stored server-side under a signed, opaque handle."""

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        sign: Callable[[str], str],
        delete: Callable[[str], None],
        stored_sid: str | None = None,
        created_at: float | None = None,
        last_seen: float | None = None,
        scope: str = "",
        new_sid: Callable[[], str] = new_session_id,
        lost: str | None = None,
    ) -> None:
        def on_update(self: ServerSession) -> None:
            self.modified = True
            # Allocating the id at the first write lets this very request render .handle.
            if self._sid is None:
                self._sid = self._new_sid()

        super().__init__(data, on_update)
        self._sign = sign
        self._delete = delete
        self._new_sid = new_sid
        # Why a handle the browser sent led to no session: "ended" (here, by the visitor
        # or a timeout), "expired" (found past its timeout) or "unknown" (issued by
        # another store: instances on separate SQLite files, or a store emptied since).
        self.lost = lost
        self._stored_sid = stored_sid
        self._sid = stored_sid
        self._destroyed = False
        # The widget this session belongs to: it names the cookie and salts the handle.
        self.scope = scope
        self.new = stored_sid is None
        self.modified = False
        self.accessed = False
        self.created_at = created_at
        self.last_seen = last_seen
        # JSON as loaded: comparing against it on save catches in-place nested edits.
        self.baseline = {key: encode_value(value) for key, value in dict.items(self)}

    # Reads mark the session accessed so only responses that used it become private.
    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        """Read a key, marking the session accessed."""
        self.accessed = True
        return super().get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Set a key if absent, marking the session accessed."""
        self.accessed = True
        return super().setdefault(key, default)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return super().__iter__()

    def __len__(self) -> int:
        self.accessed = True
        return super().__len__()

    @property
    def handle(self) -> str | None:
        """The signed handle for this session, or None while it holds nothing."""
        self.accessed = True
        return self._sign(self._sid) if self._sid is not None else None

    @property
    def rotated(self) -> bool:
        """True when the handle the browser holds must be replaced on this response."""
        return self._sid is not None and self._sid != self._stored_sid

    @property
    def destroyed(self) -> bool:
        """True once destroy() ran in this request."""
        return self._destroyed

    def regenerate(self) -> None:
        """Move the data to a new id; the old handle stops working once this response is saved."""
        self._sid = self._new_sid()
        self.modified = True

    def destroy(self) -> None:
        """Delete the stored record now and empty the session; the old handle is dead."""
        if self._stored_sid is not None:
            self._delete(self._stored_sid)
        dict.clear(self)
        self._stored_sid = None
        self._sid = None
        self._destroyed = True
        self.new = True
        self.modified = True
        self.created_at = None
        self.last_seen = None
        self.baseline = {}


def _unavailable(*args: Any, **kwargs: Any) -> NoReturn:
    raise SessionStoreUnavailable("the session store is unavailable")


class UnavailableSession(ServerSession):
    """Stands in when the store failed at open: any use raises SessionStoreUnavailable.

    Raising on use (not at open) lets a view's error handler answer 503, while views
    that never touch the session (health checks, static files) keep working.
    """

    __getitem__ = __setitem__ = __delitem__ = __contains__ = __iter__ = __len__ = _unavailable
    get = keys = values = items = pop = popitem = setdefault = update = clear = _unavailable
    copy = regenerate = destroy = _unavailable
    handle = property(_unavailable)


def visitor_session() -> ServerSession:
    """This request's session as the ServerSession it is (Flask types `session` as any
    SessionMixin, which has no handle, regenerate or destroy)."""
    if not isinstance(session, ServerSession):
        raise RuntimeError("the app's session interface is not ServerSessionInterface")
    return session
