"""Single-flight for upstream message lists: tabs and instances polling one conversation
share one upstream call per poll interval.

A poll asks for the conversation's list no older than `max_age` seconds (a little less
than its own poll interval, so a lone tab always sees fresh data). If a fresh enough
list is cached it is used; if another request is fetching it right now, the poll waits
for that fetch instead of making its own; otherwise it fetches and caches the result.

Backends: in-process (a dict and threading events) always; with the app's shared state
in Redis (shared/), the cache and the flight lock live there too, so several instances
share them (on a SQLite file lists stay per process: a list may hold megabytes, which
the file would write once per fetch). When the shared cache does not answer, a poll
fetches on its own (`SharedStateUnavailable`, handled where it occurs). Keys are
`ww:msgs:<sha256 of chatbot id and conversation id>`: never a token, and no id a reader
of Redis could use. The cached value is the validated message list and
its per-message digests as JSON, with the version in front so an unchanged poll never
parses the list; a reader that needs the messages validates that JSON in one pass, once
per process and version (a worker that has already read a version reuses its objects).

The version and the delta's per-message states come from one content-aware digest:
everything the upstream sent for a message plus its grouping with its neighbours. A
message whose text, buttons or status changes upstream changes both, so an open page
gets the new rendering instead of a 204.

Sends call `invalidate`: it bumps a generation counter, and a list fetched under an
older generation is neither served nor cached, so the sender sees their own message.

What a process remembers is bounded in bytes, not only in count: cached lists at most
`LISTINGS_BYTES` (the least recently used go first; the list just fetched always stays,
so one list larger than the budget still answers its polls) and remembered states at
most `STATES_BYTES`. A count alone bounds nothing when a list may hold 200 texts of
100 KB each (20 MB a conversation).

Polls never wait on the upstream once a list is cached: a poll whose list is older
than it wants answers from that list and asks the `Refresher` for a new one in the
background (at most `UPSTREAM_REFRESH_CALLS` upstream calls at once per process; when
they are all busy the request is dropped and the next poll asks again). So a worker's
threads serve polls at CPU speed whatever the upstream's latency, and a slow upstream
costs freshness (bounded by `STALE_SECONDS`), not capacity. A refresh that fails makes
the next poll fetch in the foreground, where token renewal and the error notices live.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis
from pydantic import BaseModel

from .chatcaptain.models import MessageDto
from .rendering import message_groups
from .shared import SharedState, SharedStateUnavailable
from .shared.redis import RedisState

log = logging.getLogger(__name__)

# An upstream call for a conversation's messages.
Fetch = Callable[[], list[MessageDto]]

KEY_PREFIX = "ww:msgs:"
# Upper bound on any cached list's life, whatever interval a poll claims.
MAX_AGE_CAP = 15.0
# How long a flight may hold the lock before others stop waiting for it.
LOCK_SECONDS = 10.0
WAIT_STEP = 0.01
# Versions a client may still show, for delta updates: how long and (in-process) how many.
STATES_SECONDS = 3600
STATES_KEPT = 4096
# Conversations whose list (and send counter) this process keeps; the least recently
# used go first, so a long-running process does not grow with every conversation seen.
LISTINGS_KEPT = 4096
# What those lists may hold together, in bytes (`Listing.size`): 4096 lists of 200
# 100 KB texts would be 80 GB. The newest list stays even past it, so a worker keeps
# at most this plus one list (itself at most UPSTREAM_MAX_LIST_BYTES read).
LISTINGS_BYTES = 64 * 1024 * 1024
# What the remembered versions' states may hold together, in bytes (`states_size`).
STATES_BYTES = 16 * 1024 * 1024
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
# How old a cached list may be and still answer a poll while a refresh is pending: the
# slowest poller's interval (60 s) twice over. Beyond it the poll fetches itself.
STALE_SECONDS = 120.0
# How long a conversation's invalidation count is kept after its last send.
GENERATION_SECONDS = 3600.0


def conversation_key(chatbot_id: str, conversation_id: str) -> str:
    """The cache key for one conversation: a digest, so no id or token is stored as a key."""
    digest = hashlib.sha256(f"{chatbot_id}\x1f{conversation_id}".encode()).hexdigest()[:32]
    return KEY_PREFIX + digest


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


class Refresher:
    """Runs background list refreshes, at most `limit` in flight (running or queued).

    `spawn` runs a task; by default a thread pool of `limit` threads made on first use
    (so after gunicorn forks). Tests pass a list's `append` and run the tasks themselves.
    """

    def __init__(
        self,
        limit: int,
        spawn: Callable[[Callable[[], None]], object] | None = None,
        *,
        dropped: Callable[[], None] = lambda: None,
        carry: Callable[[Callable[[], object]], Callable[[], object]] = lambda job: job,
    ):
        self.limit = limit
        self._spawn = spawn
        # Told of every refresh dropped (all slots busy): the app counts them in /metrics.
        self.dropped = dropped
        # Wraps a job where it is asked for, to carry what it needs to where it runs (the
        # app: the asking request's id, for the job's log lines).
        self.carry = carry
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pending: set[str] = set()

    def submit(self, key: str, job: Callable[[], object]) -> bool:
        """Start `job` for `key` unless one is pending for it or the budget is spent (then
        `dropped` is told); `carry` wraps it where it is asked for."""
        with self._lock:
            if key in self._pending:
                return False
            dropped = len(self._pending) >= self.limit
            if not dropped:
                self._pending.add(key)
        if dropped:
            self.dropped()
            return False
        try:
            self._start(functools.partial(self._run, key, self.carry(job)))
        except RuntimeError:  # the pool is shut down: the interpreter is exiting
            with self._lock:
                self._pending.discard(key)
            return False
        return True

    @property
    def pending(self) -> int:
        """Refreshes running or waiting now."""
        return len(self._pending)

    def _start(self, task: Callable[[], None]) -> None:
        if self._spawn is not None:
            self._spawn(task)
            return
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.limit, thread_name_prefix="ww-refresh")
            executor = self._executor
        executor.submit(task)

    def _run(self, key: str, job: Callable[[], object]) -> None:
        try:
            job()
        finally:
            with self._lock:
                self._pending.discard(key)


@dataclass
class _Flight:
    generation: int
    done: threading.Event = field(default_factory=threading.Event)
    listing: Listing | None = None
    error: BaseException | None = None


class Coalescer:
    """Shares upstream list calls per conversation, in-process and optionally through
    shared state (`shared`: the app's Redis key-value state, or a bare Redis client)."""

    def __init__(
        self,
        shared: SharedState | redis.Redis | None = None,
        *,
        clock: Callable[[], float] = time.time,
        refresher: Refresher | None = None,
        on_change: Callable[[str], object] | None = None,
    ) -> None:
        if isinstance(shared, redis.Redis):
            shared = RedisState(shared)
        self.shared: SharedState | None = shared
        self.clock = clock
        self.refresher = refresher
        # Told the key whenever a list of another version than the last one seen is stored.
        self.on_change = on_change
        # Conversations whose last background refresh failed: their next poll fetches.
        self._failed: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._cache: OrderedDict[str, tuple[int, Listing]] = OrderedDict()
        self._cache_bytes = 0
        self._generations: OrderedDict[str, int] = OrderedDict()
        self._states: OrderedDict[tuple[str, str], tuple[list[list[str]], int]] = OrderedDict()
        self._states_bytes = 0

    # --- public -------------------------------------------------------------------------

    def get(
        self,
        key: str,
        fetch: Callable[[], list[MessageDto]],
        *,
        max_age: float = 0.0,
        refresh: Callable[[], list[MessageDto]] | None = None,
        cold_ok: bool = False,
    ) -> Listing | None:
        """The list for `key` no older than `max_age`, fetched at most once at a time.

        With `refresh` (an upstream call that needs no request: it runs in the background)
        and a refresher, a cached list that is too old is answered at once and refreshed
        in the background; the caller then sees the new list on its next read. With
        `cold_ok` as well, no list cached at all answers None (a refresh was asked for)
        instead of waiting: a poll of a page that shows a list already.
        """
        max_age = min(max(max_age, 0.0), MAX_AGE_CAP)
        started = self.clock()
        try:
            generation, cached = self._cached(key)
        except SharedStateUnavailable as error:
            # Sharing is an optimisation: without the shared cache this poll fetches.
            log.warning("coalescing cache unavailable: %s", error)
            listing = self._fetch_alone(key, fetch)
            with self._lock:
                self._failed.pop(key, None)
            return listing
        if cached is None and cold_ok and refresh is not None:
            if self._refresh_later(key, refresh, generation):
                return None
        if cached is not None:
            age = started - cached.fetched_at
            if age <= max_age:
                return cached
            if (
                refresh is not None
                and age <= STALE_SECONDS
                and self._refresh_later(key, refresh, generation)
            ):
                return cached
        listing = self._fetch_now(key, fetch, generation, started, max_age)
        with self._lock:
            self._failed.pop(key, None)
        return listing

    def _refresh_later(self, key: str, refresh: Fetch, generation: int) -> bool:
        """Whether the stale list may answer: a refresh is pending or was just asked for."""
        if self.refresher is None or self.refresher.limit <= 0:
            return False
        with self._lock:
            if key in self._failed:
                return False
            if key in self._flights:
                return True  # a foreground fetch is under way: the next poll gets it
        self.refresher.submit(key, functools.partial(self._refresh, key, refresh, generation))
        # Budget spent or not, the stale list answers: waiting would only queue the poll.
        return True

    def _refresh(self, key: str, refresh: Fetch, generation: int) -> None:
        try:
            self._fetch_shared(key, refresh, generation, self.clock(), 0.0, join=False)
        except Exception as error:  # the next poll meets it in the foreground
            with self._lock:
                self._failed[key] = None
                while len(self._failed) > LISTINGS_KEPT:
                    self._failed.popitem(last=False)
            log.info("background refresh failed: %s", type(error).__name__)

    def _fetch_now(
        self, key: str, fetch: Fetch, generation: int, started: float, max_age: float
    ) -> Listing:
        with self._lock:
            flight = self._flights.get(key)
            joined = flight is not None and flight.generation == self._local_generation(key)
            if not joined:
                flight = _Flight(generation=self._local_generation(key))
                self._flights[key] = flight
        assert flight is not None
        if joined:
            # Someone in this process is fetching now: anything it gets is fresh enough.
            flight.done.wait(LOCK_SECONDS + 1)
            if flight.listing is not None:
                return flight.listing
            if flight.error is not None:
                raise flight.error
        try:
            listing = self._fetch_shared(key, fetch, generation, started, max_age)
            assert listing is not None  # only a background refresh (join=False) gives up
            flight.listing = listing
            return listing
        except BaseException as error:
            flight.error = error
            raise
        finally:
            flight.done.set()
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]

    def invalidate(self, key: str) -> None:
        """Forget the cached list: the next read fetches, and running fetches are not reused."""
        with self._lock:
            self._generations[key] = self._generations.get(key, 0) + 1
            self._generations.move_to_end(key)
            self._drop_locked(key)
            while len(self._generations) > LISTINGS_KEPT:
                # A forgotten counter restarts at 0, so its stale list must go with it.
                forgotten, _ = self._generations.popitem(last=False)
                self._drop_locked(forgotten)
        if self.shared is not None:
            # The cached list names its generation: under the new one it is stale at once.
            try:
                self.shared.incr(key + ":gen", GENERATION_SECONDS)
            except SharedStateUnavailable as error:
                log.warning("could not invalidate a cached list: %s", error)

    def remember_states(self, key: str, version: str, states: list[list[str]]) -> None:
        """Keep what a version showed (message ids and render digests) for later deltas."""
        if self.shared is not None:
            try:
                self.shared.set(f"{key}:v:{version}", json.dumps(states), STATES_SECONDS)
                return
            except SharedStateUnavailable as error:
                log.warning("could not keep a version's states: %s", error)
        size = states_size(states)
        with self._lock:
            old = self._states.pop((key, version), None)
            if old is not None:
                self._states_bytes -= old[1]
            self._states[(key, version)] = (states, size)
            self._states_bytes += size
            # The version just remembered stays, whatever its size: the page shows it.
            while len(self._states) > 1 and (
                len(self._states) > STATES_KEPT or self._states_bytes > STATES_BYTES
            ):
                _, (_, dropped) = self._states.popitem(last=False)
                self._states_bytes -= dropped

    def recall_states(self, key: str, version: str) -> list[list[str]] | None:
        """What `version` showed, if still known; None sends the client a full list."""
        if self.shared is not None:
            try:
                value = self.shared.get(f"{key}:v:{version}")
            except SharedStateUnavailable:
                value = None
            if value is not None:
                states: list[list[str]] = json.loads(value)
                return states
        with self._lock:
            known = self._states.get((key, version))
        return known[0] if known is not None else None

    # --- internals ------------------------------------------------------------------------

    def _local_generation(self, key: str) -> int:
        return self._generations.get(key, 0)

    def _cached(self, key: str) -> tuple[int, Listing | None]:
        """The current generation and the cached listing of that generation, if any;
        SharedStateUnavailable when the shared cache does not answer."""
        if self.shared is None:
            with self._lock:
                generation = self._local_generation(key)
                entry = self._cache.get(key)
            if entry is not None and entry[0] == generation:
                return generation, entry[1]
            return generation, None
        value, gen = self.shared.get_many([key, key + ":gen"])
        generation = int(gen or 0)
        if value is None:
            return generation, None
        stored_generation, fetched_at, version = Listing.header(value)
        if stored_generation != generation:
            return generation, None
        with self._lock:
            known = self._cache.get(key)
        if known is not None and (known[1].fetched_at, known[1].version) == (fetched_at, version):
            # This process has read (or fetched) this very list: its messages are parsed.
            return generation, known[1]
        _, listing = Listing.decode(value)
        self._keep_local(key, generation, listing)
        return generation, listing

    def _keep_local(self, key: str, generation: int, listing: Listing) -> None:
        with self._lock:
            self._put_locked(key, generation, listing)

    def _put_locked(self, key: str, generation: int, listing: Listing) -> None:
        self._drop_locked(key)
        self._cache[key] = (generation, listing)
        self._cache_bytes += listing.size
        # The list just put stays, whatever its size: its polls answer from it.
        while len(self._cache) > 1 and (
            len(self._cache) > LISTINGS_KEPT or self._cache_bytes > LISTINGS_BYTES
        ):
            _, (_, dropped) = self._cache.popitem(last=False)
            self._cache_bytes -= dropped.size

    def _drop_locked(self, key: str) -> None:
        entry = self._cache.pop(key, None)
        if entry is not None:
            self._cache_bytes -= entry[1].size

    @property
    def remembered_bytes(self) -> tuple[int, int]:
        """The bytes counted for this process's cached lists and remembered states."""
        return self._cache_bytes, self._states_bytes

    def _store(self, key: str, generation: int, listing: Listing) -> None:
        with self._lock:
            known = self._cache.get(key)
        self._store_listing(key, generation, listing)
        if self.on_change is not None and (known is None or known[1].version != listing.version):
            self.on_change(key)

    def _store_listing(self, key: str, generation: int, listing: Listing) -> None:
        if self.shared is None:
            with self._lock:
                if self._local_generation(key) == generation:
                    self._put_locked(key, generation, listing)
            return
        # With shared state the local copy only saves parsing: it decides what is current.
        self._keep_local(key, generation, listing)
        try:
            self.shared.set(key, listing.encode(generation), STALE_SECONDS)
        except SharedStateUnavailable as error:
            log.warning("coalescing cache unavailable: %s", error)

    def _fetch(self, key: str, fetch: Fetch, generation: int) -> Listing:
        at = self.clock()
        listing = Listing.of(fetch(), at)
        self._store(key, generation, listing)
        return listing

    def _fetch_alone(self, key: str, fetch: Fetch) -> Listing:
        """Fetch while the shared cache does not answer: nothing is stored, but held polls
        here still learn of a new version."""
        listing = Listing.of(fetch(), self.clock())
        with self._lock:
            known = self._cache.get(key)
        if self.on_change is not None and (known is None or known[1].version != listing.version):
            self.on_change(key)
        return listing

    def _fetch_shared(
        self,
        key: str,
        fetch: Fetch,
        generation: int,
        started: float,
        max_age: float,
        join: bool = True,
    ) -> Listing | None:
        if self.shared is None:
            return self._fetch(key, fetch, generation)
        token = uuid.uuid4().hex
        lock = key + ":lock"
        try:
            locked = self.shared.add(lock, token, LOCK_SECONDS)
        except SharedStateUnavailable:
            return self._fetch_alone(key, fetch)
        if locked:
            try:
                return self._fetch(key, fetch, generation)
            finally:
                # Release only our own lock: it may have expired and been taken meanwhile.
                try:
                    self.shared.delete_if_equal(lock, token)
                except SharedStateUnavailable:
                    pass  # it expires by itself
        if not join:
            return None  # another instance is refreshing it: nothing to add
        # Another instance is fetching: wait for its result rather than call again.
        deadline = time.monotonic() + LOCK_SECONDS
        try:
            while time.monotonic() < deadline:
                time.sleep(WAIT_STEP)
                current, listing = self._cached(key)
                if listing is not None and listing.fetched_at >= started - max_age:
                    return listing
                if current != generation or self.shared.get(lock) is None:
                    break
            # The lock may have gone between our two reads because the list just arrived.
            current, listing = self._cached(key)
        except SharedStateUnavailable:
            return self._fetch_alone(key, fetch)
        if listing is not None and listing.fetched_at >= started - max_age:
            return listing
        return self._fetch(key, fetch, current)
