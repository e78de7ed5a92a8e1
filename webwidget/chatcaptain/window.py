"""A list answer's JSON parsed message by message, keeping only the window shown.

A conversation's list comes whole (the API has no paging): 20,000 messages are about
6 MB, and the answer may reach UPSTREAM_MAX_LIST_BYTES. `json.loads` would build every
message as objects (about six times its JSON for short messages) before the newest 200
are kept; here each message is parsed and let go in turn, so reading a list holds its
text and the window, whatever the number of messages before it.
"""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def parse_window(text: str, last: int | None, before: str | None) -> Any:
    """The JSON of a list answer with only the newest `last` messages before the one whose
    id is `before` (none when no message has that id), as `json.loads` and a slice of
    its `messages` would give; ValueError if it is no JSON."""
    pos = _skip(text, 0)
    if not text.startswith("{", pos):
        return json.loads(text)  # no object: the caller says what is wrong with it
    payload: dict[str, Any] = {}
    pos = _skip(text, pos + 1)
    if text.startswith("}", pos):
        return _end(text, pos + 1, payload)
    while True:
        if not text.startswith('"', pos):
            raise ValueError(f"expected a key at {pos}")
        key, pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, pos)
        if not text.startswith(":", pos):
            raise ValueError(f"expected ':' at {pos}")
        pos = _skip(text, pos + 1)
        if key == "messages" and text.startswith("[", pos):
            payload[key], pos = _messages(text, pos + 1, last, before)
        else:
            payload[key], pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text.startswith("}", pos):
            return _end(text, pos + 1, payload)
        if not text.startswith(",", pos):
            raise ValueError(f"expected ',' or '}}' at {pos}")
        pos = _skip(text, pos + 1)


def _messages(
    text: str, pos: int, last: int | None, before: str | None
) -> tuple[list[Any], int]:
    """The window of the array starting at `pos` (after its '['), and where it ends."""
    kept: deque[Any] = deque(maxlen=max(last, 0) if last is not None else None)
    found = before is None
    pos = _skip(text, pos)
    if text.startswith("]", pos):
        return [], pos + 1
    while True:
        item, pos = _DECODER.raw_decode(text, pos)
        if not found:
            if isinstance(item, dict) and item.get("id") == before:
                found = True
            else:
                kept.append(item)
        elif before is None:
            kept.append(item)
        pos = _skip(text, pos)
        if text.startswith("]", pos):
            return (list(kept) if found else []), pos + 1
        if not text.startswith(",", pos):
            raise ValueError(f"expected ',' or ']' at {pos}")
        pos = _skip(text, pos + 1)


def _skip(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _end(text: str, pos: int, payload: dict[str, Any]) -> dict[str, Any]:
    if _skip(text, pos) != len(text):
        raise ValueError(f"extra data at {pos}")
    return payload
