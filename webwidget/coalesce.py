"""Single-flight for upstream message lists: tabs and instances polling one conversation
share one upstream call per poll interval.

A poll asks for the conversation's list no older than `max_age` seconds (a little less
than its own poll interval, so a lone tab always sees fresh data). If a fresh enough
list is kept it is used; if another request is fetching it right now, the poll waits
for that fetch instead of making its own; otherwise it fetches and keeps the result.
Where lists are kept (this process, or shared state for every instance) is
list_cache.py's; what a list is (messages, states, version) is listing.py's. Keys are
`ww:msgs:<sha256 of chatbot id and conversation id>`: never a token, and no id a reader
of Redis could use.

Sends call `invalidate`: the next read fetches, and a fetch already under way is not
reused, so the sender sees their own message.

Polls never wait on the upstream once a list is kept: a poll whose list is older
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
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis

from .call_slots import CallSkipped, calls_are_optional
from .chatcaptain.models import MessageDto
from .list_cache import LISTINGS_KEPT, LOCK_SECONDS, STALE_SECONDS, LocalLists, SharedLists
from .listing import Listing
from .shared import SharedState, SharedStateUnavailable
from .shared.redis import RedisState

log = logging.getLogger(__name__)

# An upstream call for a conversation's messages.
Fetch = Callable[[], list[MessageDto]]

KEY_PREFIX = "ww:msgs:"
# Upper bound on any kept list's life, whatever interval a poll claims.
MAX_AGE_CAP = 15.0


def conversation_key(chatbot_id: str, conversation_id: str) -> str:
    """The cache key for one conversation: a digest, so no id or token is stored as a key."""
    digest = hashlib.sha256(f"{chatbot_id}\x1f{conversation_id}".encode()).hexdigest()[:32]
    return KEY_PREFIX + digest


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
        self.lists: LocalLists = LocalLists() if shared is None else SharedLists(shared)
        self.clock = clock
        self.refresher = refresher
        # Told the key whenever a list of another version than the last one seen is stored.
        self.on_change = on_change
        # Conversations whose last background refresh failed: their next poll fetches.
        self._failed: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

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
            generation, cached = self.lists.cached(key)
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
            self._across_instances(key, refresh, generation, self.clock(), 0.0, join=False)
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
            joined = flight is not None and flight.generation == self.lists.generation(key)
            if not joined:
                flight = _Flight(generation=self.lists.generation(key))
                self._flights[key] = flight
        assert flight is not None
        if joined:
            # Someone in this process is fetching now: anything it gets is fresh enough.
            flight.done.wait(LOCK_SECONDS + 1)
            if flight.listing is not None:
                return flight.listing
            if isinstance(flight.error, CallSkipped) and not calls_are_optional():
                # That flight was a held poll's check, not made: this request needs the list.
                return self._fetch_now(key, fetch, generation, started, max_age)
            if flight.error is not None:
                raise flight.error
        try:
            listing = self._across_instances(key, fetch, generation, started, max_age)
            assert listing is not None  # only a background refresh (join=False) gives up
            flight.listing = listing
            return listing
        except BaseException as error:
            flight.error = error
            raise
        finally:
            # Gone before its joiners wake: one that fetches again starts a flight of its own.
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
            flight.done.set()

    def invalidate(self, key: str) -> None:
        """Forget the kept list: the next read fetches, and running fetches are not reused."""
        self.lists.bump(key)

    def remember_states(self, key: str, version: str, states: list[list[str]]) -> None:
        """Keep what a version showed (message ids and render digests) for later deltas."""
        self.lists.remember(key, version, states)

    def recall_states(self, key: str, version: str) -> list[list[str]] | None:
        """What `version` showed, if still known; None sends the client a full list."""
        return self.lists.recall(key, version)

    @property
    def remembered_bytes(self) -> tuple[int, int]:
        """The bytes counted for this process's kept lists and remembered states."""
        return self.lists.remembered_bytes

    # --- internals ------------------------------------------------------------------------

    def _across_instances(
        self, key: str, fetch: Fetch, generation: int, started: float, max_age: float,
        join: bool = True,
    ) -> Listing | None:
        return self.lists.across_instances(
            key, generation, started, max_age, join,
            run=lambda current: self._fetch(key, fetch, current),
            alone=lambda: self._fetch_alone(key, fetch),
        )

    def _fetch(self, key: str, fetch: Fetch, generation: int) -> Listing:
        listing = Listing.of(fetch(), self.clock())
        known = self.lists.known(key)
        self.lists.put(key, generation, listing)
        self._tell_change(key, known, listing)
        return listing

    def _fetch_alone(self, key: str, fetch: Fetch) -> Listing:
        """Fetch while the shared cache does not answer: nothing is stored, but held polls
        here still learn of a new version."""
        listing = Listing.of(fetch(), self.clock())
        self._tell_change(key, self.lists.known(key), listing)
        return listing

    def _tell_change(self, key: str, known: Listing | None, listing: Listing) -> None:
        if self.on_change is not None and (known is None or known.version != listing.version):
            self.on_change(key)
