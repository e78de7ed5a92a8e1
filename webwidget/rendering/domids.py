"""Stable element ids for messages, which delta updates target out of band."""

from __future__ import annotations

import hashlib
import re

_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def dom_id(message_id: object) -> str:
    """A stable element id for a message: readable when the id is plain, else its digest."""
    text = str(message_id)
    if _SAFE_ID.fullmatch(text):
        return f"m-{text}"
    # Letters only: a digest's digits could read like numbers the message never held.
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    return "mh-" + digest.translate(_LETTERS)
