"""A conversation's message list as the coalescer keeps it: its messages, a digest per
message and a version, and what it takes in memory.

The version and the delta's per-message states come from one content-aware digest:
everything the upstream sent for a message plus its grouping with its neighbours. A
message whose text, buttons or status changes upstream changes both, so an open page
gets the new rendering instead of a 204. A listing read from shared state stays raw JSON
until its messages are needed; its size is counted as if parsed.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field

from pydantic import BaseModel

from .chatcaptain.models import MessageDto
from .rendering import message_groups

# What a validated message costs in memory beyond its characters (`json_memory`): per
# string, per object (a pydantic model: its __dict__ and field set), per list item, and
# per message (its state and its place in the list). Measured on CPython 3.11 and
# pydantic 2.14 for text, file, button, tag and header messages (tests/test_bounds.py):
# the estimate is at least the memory traced, and at most about twice it.
STRING_COST = 56
OBJECT_COST = 640
ITEM_COST = 8
MESSAGE_COST = 512
# Memory one remembered state takes beyond its id's length: a list and two strings.
STATE_OVERHEAD = 200

def message_states(messages: list[MessageDto]) -> list[list[str]]:
    """[id, digest] of each message: the digest covers all the upstream sent for it
    (content, status, error, timestamps) and its grouping with its neighbours, so any
    change a page could show changes it."""
    return _states_and_size(messages)[0]


def _states_and_size(messages: list[MessageDto]) -> tuple[list[list[str]], int]:
    """The messages' states and the bytes they take in memory (`Listing.size`)."""
    states = []
    size = 0
    for msg, grouping in zip(messages, message_groups(messages), strict=True):
        body = msg.__pydantic_serializer__.to_json(msg, exclude_none=True)
        size += json_memory(body) + MESSAGE_COST
        digest = hashlib.sha256(body)
        digest.update(("\x1f" + "".join(str(int(flag)) for flag in grouping)).encode())
        states.append([str(msg.id), digest.hexdigest()[:12]])
    return states, size


def json_memory(body: bytes | str) -> int:
    """About the bytes in memory of what validating this JSON keeps (an upper bound for
    every message shape measured): its characters at the width Python stores them (one
    emoji makes a whole string four bytes a character) and, when they are not all ASCII,
    the UTF-8 copy validation caches beside them; plus each string's, object's and list
    item's overhead."""
    if isinstance(body, str):
        chars = sys.getsizeof(body) + (0 if body.isascii() else 4 * len(body))
        quote, brace, comma = body.count('"'), body.count("{"), body.count(",")
    else:
        chars = len(body)
        if not body.isascii():
            chars += sys.getsizeof(body.decode(errors="replace"))
        quote, brace, comma = body.count(b'"'), body.count(b"{"), body.count(b",")
    return chars + STRING_COST * (quote // 2) + OBJECT_COST * brace + ITEM_COST * comma


def states_size(states: list[list[str]]) -> int:
    """About the bytes a remembered version's states take in memory."""
    return sum(len(message_id) + len(state) + STATE_OVERHEAD for message_id, state in states)


def states_version(states: list[list[str]]) -> str:
    """The version of a whole list: a digest of its ordered per-message states."""
    digest = hashlib.sha256()
    for message_id, state in states:
        digest.update(f"{message_id}\x1f{state}\x1e".encode())
    return digest.hexdigest()[:16]


class _Stored(BaseModel):
    """The cached body in Redis: validated once when fetched, parsed in one pass when read."""

    states: list[list[str]]
    messages: list[MessageDto]


@dataclass
class Listing:
    """A conversation's message list, its per-message states and its version.

    Built from a fetch (validated messages) or from Redis (raw JSON, parsed on first use).
    """

    version: str
    fetched_at: float
    # About the bytes it takes in memory (`json_memory` of its messages, MESSAGE_COST each).
    size: int = 0
    _messages: list[MessageDto] | None = None
    _states: list[list[str]] | None = None
    _raw: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, messages: list[MessageDto], fetched_at: float) -> Listing:
        """A listing of freshly fetched (already validated) messages."""
        states, size = _states_and_size(messages)
        return cls(
            version=states_version(states),
            fetched_at=fetched_at,
            size=size,
            _messages=messages,
            _states=states,
        )

    @property
    def messages(self) -> list[MessageDto]:
        """The messages, oldest first."""
        if self._messages is None:
            self._parse()
        assert self._messages is not None
        return self._messages

    @property
    def states(self) -> list[list[str]]:
        """[id, digest] per message (see `message_states`)."""
        if self._states is None:
            if self._raw is None:
                self._states = message_states(self.messages)
            else:
                self._parse()
        assert self._states is not None
        return self._states

    def _parse(self) -> None:
        stored = _Stored.model_validate_json(self._raw or '{"states": [], "messages": []}')
        self._messages, self._states = stored.messages, stored.states
        self._raw = None

    def encode(self, generation: int) -> str:
        """`<generation>|<fetched_at>|<version>|<states and messages JSON>` for Redis."""
        raw = self._raw
        if raw is None:
            raw = _Stored.model_construct(
                states=self.states, messages=self.messages
            ).model_dump_json(by_alias=True, exclude_none=True)
        return f"{generation}|{self.fetched_at!r}|{self.version}|{raw}"

    @staticmethod
    def header(value: bytes | str) -> tuple[int, float, str]:
        """The generation, fetch time and version of an encoded listing, without its body."""
        text = value.decode() if isinstance(value, bytes) else value
        generation, fetched_at, version, _ = text.split("|", 3)
        return int(generation), float(fetched_at), version

    @classmethod
    def decode(cls, value: bytes | str) -> tuple[int, Listing]:
        """The generation and listing stored by `encode`."""
        text = value.decode() if isinstance(value, bytes) else value
        generation, fetched_at, version, raw = text.split("|", 3)
        # Counted as parsed (it is on first use), with every `"id":` key taken for a
        # message (each message has one; nested objects may have more: over-counted).
        size = json_memory(raw) + MESSAGE_COST * raw.count('"id":')
        return int(generation), cls(
            version=version, fetched_at=float(fetched_at), size=size, _raw=raw
        )
