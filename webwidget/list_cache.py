"""Where the coalescer keeps conversations' lists: in this process (`LocalLists`), or in
the app's shared state with a parsed copy here (`SharedLists`).

Each list is kept under its generation: a send bumps the conversation's generation
(`bump`), and a list fetched under an older one is neither served nor kept, so the
sender sees their own message. What a process keeps is bounded in bytes, not only in
count: lists at most `LISTINGS_BYTES` (the least recently used go first; the list just
put always stays, so one list larger than the budget still answers its polls) and
remembered states at most `STATES_BYTES`. A count alone bounds nothing when a list may
hold 200 texts of 100 KB each (20 MB a conversation).

In shared state (Redis; on a SQLite file lists stay per process: a list may hold
megabytes, which the file would write once per fetch) the value is the listing's
version and fetch time in front of its JSON, so an unchanged poll never parses the list;
instances fetch one at a time under a lock there (`across_instances`). When shared
state does not answer, `SharedStateUnavailable` reaches the coalescer, which fetches on
its own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

from .listing import Listing, states_size
from .shared import SharedState, SharedStateUnavailable

log = logging.getLogger(__name__)

# How a flight fetches and keeps a list under a generation.
Run = Callable[[int], Listing]

# Conversations whose list (and send counter) this process keeps; the least recently
# used go first, so a long-running process does not grow with every conversation seen.
LISTINGS_KEPT = 4096
# What those lists may hold together, in bytes (`Listing.size`): 4096 lists of 200
# 100 KB texts would be 80 GB. The newest list stays even past it, so a worker keeps
# at most this plus one list (itself at most UPSTREAM_MAX_LIST_BYTES read).
LISTINGS_BYTES = 64 * 1024 * 1024
# Versions a client may still show, for delta updates: how long and (in-process) how many.
STATES_SECONDS = 3600
STATES_KEPT = 4096
# What the remembered versions' states may hold together, in bytes (`states_size`).
STATES_BYTES = 16 * 1024 * 1024
# How old a cached list may be and still answer a poll while a refresh is pending: the
# slowest poller's interval (60 s) twice over. Beyond it the poll fetches itself.
STALE_SECONDS = 120.0
# How long a conversation's invalidation count is kept after its last send.
GENERATION_SECONDS = 3600.0
# How long a flight may hold the lock before others stop waiting for it.
LOCK_SECONDS = 10.0
WAIT_STEP = 0.01


class LocalLists:
    """Lists, generations and remembered states in this process, bounded in bytes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[int, Listing]] = OrderedDict()
        self._cache_bytes = 0
        self._generations: OrderedDict[str, int] = OrderedDict()
        self._states: OrderedDict[tuple[str, str], tuple[list[list[str]], int]] = OrderedDict()
        self._states_bytes = 0

    def generation(self, key: str) -> int:
        """This process's count of sends to the conversation."""
        return self._generations.get(key, 0)

    def known(self, key: str) -> Listing | None:
        """The listing this process holds for `key`, of whatever generation."""
        with self._lock:
            entry = self._cache.get(key)
        return entry[1] if entry is not None else None

    def cached(self, key: str) -> tuple[int, Listing | None]:
        """The current generation and the listing kept under it, if any."""
        with self._lock:
            generation = self.generation(key)
            entry = self._cache.get(key)
        if entry is not None and entry[0] == generation:
            return generation, entry[1]
        return generation, None

    def put(self, key: str, generation: int, listing: Listing) -> None:
        """Keep `listing`, unless a send made `generation` stale meanwhile."""
        with self._lock:
            if self.generation(key) == generation:
                self._put_locked(key, generation, listing)

    def bump(self, key: str) -> None:
        """A send: the kept list is stale, and lists fetched before it are not kept."""
        with self._lock:
            self._generations[key] = self._generations.get(key, 0) + 1
            self._generations.move_to_end(key)
            self._drop_locked(key)
            while len(self._generations) > LISTINGS_KEPT:
                # A forgotten counter restarts at 0, so its stale list must go with it.
                forgotten, _ = self._generations.popitem(last=False)
                self._drop_locked(forgotten)

    def remember(self, key: str, version: str, states: list[list[str]]) -> None:
        """Keep what a version showed (message ids and render digests) for later deltas."""
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

    def recall(self, key: str, version: str) -> list[list[str]] | None:
        """What `version` showed, if still known."""
        with self._lock:
            known = self._states.get((key, version))
        return known[0] if known is not None else None

    def across_instances(
        self, key: str, generation: int, started: float, max_age: float, join: bool,
        run: Run, alone: Callable[[], Listing],
    ) -> Listing | None:
        """Fetch and keep the list (`run`): one process, nothing to coordinate."""
        return run(generation)

    @property
    def remembered_bytes(self) -> tuple[int, int]:
        """The bytes counted for this process's lists and remembered states."""
        return self._cache_bytes, self._states_bytes

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


class SharedLists(LocalLists):
    """Lists, generations and states in shared state, which decides what is current; the
    local copy only saves parsing (and keeps states when shared state does not answer)."""

    def __init__(self, shared: SharedState) -> None:
        super().__init__()
        self.shared = shared

    def cached(self, key: str) -> tuple[int, Listing | None]:
        """The current generation and the list stored under it, if any (parsed once per
        process and version); SharedStateUnavailable when shared state does not answer."""
        value, gen = self.shared.get_many([key, key + ":gen"])
        generation = int(gen or 0)
        if value is None:
            return generation, None
        stored_generation, fetched_at, version = Listing.header(value)
        if stored_generation != generation:
            return generation, None
        known = self.known(key)
        if known is not None and (known.fetched_at, known.version) == (fetched_at, version):
            # This process has read (or fetched) this very list: its messages are parsed.
            return generation, known
        _, listing = Listing.decode(value)
        self._keep_local(key, generation, listing)
        return generation, listing

    def put(self, key: str, generation: int, listing: Listing) -> None:
        """Store `listing` for every instance (the local copy saves this one parsing)."""
        self._keep_local(key, generation, listing)
        try:
            self.shared.set(key, listing.encode(generation), STALE_SECONDS)
        except SharedStateUnavailable as error:
            log.warning("coalescing cache unavailable: %s", error)

    def bump(self, key: str) -> None:
        """A send, for every instance: the stored list names its generation, so under the
        new one it is stale at once."""
        super().bump(key)
        try:
            self.shared.incr(key + ":gen", GENERATION_SECONDS)
        except SharedStateUnavailable as error:
            log.warning("could not invalidate a cached list: %s", error)

    def remember(self, key: str, version: str, states: list[list[str]]) -> None:
        """Keep a version's states for every instance (here when shared state is away)."""
        try:
            self.shared.set(f"{key}:v:{version}", json.dumps(states), STATES_SECONDS)
        except SharedStateUnavailable as error:
            log.warning("could not keep a version's states: %s", error)
            super().remember(key, version, states)

    def recall(self, key: str, version: str) -> list[list[str]] | None:
        """A version's states from shared state, else from here."""
        try:
            value = self.shared.get(f"{key}:v:{version}")
        except SharedStateUnavailable:
            value = None
        if value is not None:
            states: list[list[str]] = json.loads(value)
            return states
        return super().recall(key, version)

    def across_instances(
        self, key: str, generation: int, started: float, max_age: float, join: bool,
        run: Run, alone: Callable[[], Listing],
    ) -> Listing | None:
        """Fetch and store the list (`run`) unless another instance is at it: then, with
        `join`, wait for its list (no older than `max_age` before `started`), else None.
        `alone` fetches while shared state does not answer."""
        token = uuid.uuid4().hex
        lock = key + ":lock"
        try:
            locked = self.shared.add(lock, token, LOCK_SECONDS)
        except SharedStateUnavailable:
            return alone()
        if locked:
            try:
                return run(generation)
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
                current, listing = self.cached(key)
                if listing is not None and listing.fetched_at >= started - max_age:
                    return listing
                if current != generation or self.shared.get(lock) is None:
                    break
            # The lock may have gone between our two reads because the list just arrived.
            current, listing = self.cached(key)
        except SharedStateUnavailable:
            return alone()
        if listing is not None and listing.fetched_at >= started - max_age:
            return listing
        return run(current)

    def _keep_local(self, key: str, generation: int, listing: Listing) -> None:
        with self._lock:
            self._put_locked(key, generation, listing)
