"""Session ids and the signed, opaque handles the browser holds."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence

from itsdangerous import BadSignature, Signer

MAX_HANDLE_LENGTH = 256
_SALT = "webwidget.sessions.handle"
# token_urlsafe(32) gives exactly 43 characters; a sha256 signature in base64 another 43.
_SID_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_HANDLE_RE = re.compile(r"[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{1,200}")


# How many characters of its store's identity a session id begins with.
STORE_TAG_LENGTH = 6


def new_session_id(store_tag: str = "") -> str:
    """A fresh random session id (at least 220 random bits), led by `store_tag`: the
    store that issued it, so a miss elsewhere can be told from one here."""
    tag = store_tag[:STORE_TAG_LENGTH]
    return tag + secrets.token_urlsafe(32)[len(tag) :]


class HandleSigner:
    """Signs session ids with the first secret key and verifies with any of them.

    A handle is signed for one scope (a widget): the scope is part of the salt, so a
    handle issued for one widget is a foreign handle to every other.
    """

    def __init__(self, secret_keys: Sequence[str]) -> None:
        if isinstance(secret_keys, str | bytes) or not secret_keys or not all(secret_keys):
            raise ValueError("secret_keys must be a non-empty list of non-empty keys")
        # itsdangerous signs with its *last* key and tries all, so hand it oldest first.
        self._keys = list(reversed(secret_keys))
        self._signers: dict[str, Signer] = {}

    def _signer(self, scope: str) -> Signer:
        # Scopes are the configured widget ids, so this holds a handful of signers.
        signer = self._signers.get(scope)
        if signer is None:
            salt = f"{_SALT}:{scope}" if scope else _SALT
            signer = Signer(self._keys, salt=salt, digest_method=hashlib.sha256)
            self._signers[scope] = signer
        return signer

    def sign(self, sid: str, scope: str = "") -> str:
        """The handle for a session id in `scope`, signed with the newest key."""
        return self._signer(scope).sign(sid).decode("ascii")

    def unsign(self, handle: object, scope: str = "") -> str | None:
        """The session id inside a handle we issued for `scope`, or None for anything else."""
        # The shape check runs first so junk never reaches the HMAC, let alone the store.
        if not isinstance(handle, str) or len(handle) > MAX_HANDLE_LENGTH:
            return None
        if not _HANDLE_RE.fullmatch(handle):
            return None
        try:
            sid = self._signer(scope).unsign(handle).decode("ascii")
        except BadSignature:
            return None
        return sid if _SID_RE.fullmatch(sid) else None
