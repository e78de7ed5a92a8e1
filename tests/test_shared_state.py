"""One contract for shared state, run against every backend: memory, SQLite and the real
redis-server. Time passes by moving a clock (Redis: by shortening every key's remaining
life, which is what time passing means to Redis), never by sleeping."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
import redis
from conftest import StoppedClock, free_port, worker_redis_db

from webwidget.shared import MemoryState, SharedStateUnavailable, open_shared
from webwidget.shared.open import open_url


class Backend:
    """A backend under test and the way time passes for it."""

    def __init__(self, state, advance) -> None:
        self.state = state
        self.advance = advance


def _redis_time_passes(client: redis.Redis):
    def advance(seconds: float) -> None:
        elapsed = int(seconds * 1000)
        for key in client.scan_iter():
            left = client.pttl(key)
            if left > 0:
                # PEXPIRE with a time not in the future deletes the key, as expiry would.
                client.pexpire(key, left - elapsed)

    return advance


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request, tmp_path):
    clock = StoppedClock()
    if request.param == "memory":
        yield Backend(MemoryState(clock), clock.advance)
        return
    if request.param == "sqlite":
        shared = open_url(f"sqlite:///{tmp_path / 'shared.sqlite3'}", clock=clock)
        yield Backend(shared.state, clock.advance)
        return
    shared = open_url(worker_redis_db(request.getfixturevalue("redis_url")))
    shared.redis.flushdb()
    yield Backend(shared.state, _redis_time_passes(shared.redis))
    shared.redis.close()


def test_a_value_set_is_read_until_its_time_to_live_ends(backend):
    state = backend.state
    assert state.get("k") is None
    state.set("k", "v1", 10)
    assert state.get("k") == "v1"
    backend.advance(9.5)
    assert state.get("k") == "v1"
    backend.advance(1)
    assert state.get("k") is None


def test_get_many_reads_each_key_or_none(backend):
    state = backend.state
    state.set("a", "1", 10)
    state.set("b", "2", 30)
    assert state.get_many(["a", "missing", "b"]) == ["1", None, "2"]
    backend.advance(20)
    assert state.get_many(["a", "b"]) == [None, "2"]


def test_set_replaces_the_value_and_its_time_to_live(backend):
    state = backend.state
    state.set("k", "old", 5)
    state.set("k", "new", 20)
    backend.advance(10)
    assert state.get("k") == "new"


def test_add_stores_only_when_the_key_is_absent_or_expired(backend):
    state = backend.state
    assert state.add("lease", "a", 10) is True
    assert state.add("lease", "b", 10) is False
    assert state.get("lease") == "a"
    backend.advance(11)
    assert state.add("lease", "b", 10) is True
    assert state.get("lease") == "b"


def test_incr_counts_from_one_and_keeps_the_counter_for_its_time_to_live(backend):
    state = backend.state
    assert state.incr("n", 10) == 1
    assert state.incr("n", 10) == 2
    backend.advance(8)
    # Each increment keeps the counter another full time to live.
    assert state.incr("n", 10) == 3
    backend.advance(8)
    assert state.get("n") == "3"
    backend.advance(3)
    assert state.get("n") is None
    assert state.incr("n", 10) == 1


def test_delete_if_equal_frees_only_the_holders_value(backend):
    state = backend.state
    state.add("lease", "mine", 10)
    assert state.delete_if_equal("lease", "theirs") is False
    assert state.get("lease") == "mine"
    assert state.delete_if_equal("lease", "mine") is True
    assert state.get("lease") is None
    assert state.delete_if_equal("lease", "mine") is False


def test_an_expired_value_is_not_deleted_as_if_it_were_still_held(backend):
    state = backend.state
    state.set("lease", "mine", 5)
    backend.advance(6)
    assert state.delete_if_equal("lease", "mine") is False
    assert state.add("lease", "next", 5) is True


def test_text_round_trips_whole(backend):
    value = "1|1700000000.25|ab12|" + '{"t": "héllo 😀 \\u0000 |"}' * 1000
    backend.state.set("big", value, 10)
    assert backend.state.get("big") == value


def test_only_one_of_many_concurrent_adds_wins(backend):
    with ThreadPoolExecutor(max_workers=8) as pool:
        won = list(pool.map(lambda n: backend.state.add("once", str(n), 10), range(32)))
    assert won.count(True) == 1


def test_concurrent_increments_are_all_counted(backend):
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(lambda _: backend.state.incr("hits", 10), range(40)))
    assert sorted(counts) == list(range(1, 41))


# --- one decision, and outages as one exception type ------------------------------------


def test_open_shared_puts_state_where_the_sessions_are(tmp_path, redis_url):
    settings = SimpleNamespace(SESSION_STORE_URL=None)
    shared = open_shared(settings, tmp_path)
    assert shared.redis is None and shared.lists is None  # lists stay per process
    assert shared.sqlite_path == tmp_path / "sessions.sqlite3"
    relative = open_shared(SimpleNamespace(SESSION_STORE_URL="sqlite:///x/s.db"), tmp_path)
    assert relative.sqlite_path == tmp_path / "x" / "s.db"
    on_redis = open_shared(SimpleNamespace(SESSION_STORE_URL=redis_url), tmp_path)
    assert on_redis.sqlite is None and on_redis.redis is not None
    assert on_redis.lists is on_redis.state
    on_redis.redis.close()


@pytest.mark.parametrize(
    "url", ["memcached://localhost", "sqlite:///", "sqlite:///:memory:", "sqlite:///a?mode=ro"]
)
def test_open_refuses_what_it_cannot_share(url, tmp_path):
    with pytest.raises(ValueError, match="SESSION_STORE_URL"):
        open_url(url, base_dir=tmp_path)


def test_redis_down_is_shared_state_unavailable():
    shared = open_url(f"redis://127.0.0.1:{free_port()}/0")
    for call in (
        lambda: shared.state.get("k"),
        lambda: shared.state.get_many(["k", "l"]),
        lambda: shared.state.set("k", "v", 1),
        lambda: shared.state.add("k", "v", 1),
        lambda: shared.state.incr("k", 1),
        lambda: shared.state.delete_if_equal("k", "v"),
    ):
        with pytest.raises(SharedStateUnavailable):
            call()


def test_a_sqlite_file_that_fails_is_unavailable_and_heals(tmp_path):
    shared = open_url(f"sqlite:///{tmp_path / 'shared.sqlite3'}")
    shared.state.set("k", "v", 60)
    # Another process holds the write lock longer than the busy timeout allows.
    shared.sqlite.busy_timeout = 0.05
    shared.sqlite.forget()
    blocker = sqlite3.connect(tmp_path / "shared.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(SharedStateUnavailable):
        shared.state.set("k", "w", 60)
    blocker.execute("ROLLBACK")
    blocker.close()
    shared.state.set("k", "w", 60)
    assert shared.state.get("k") == "w"


@pytest.mark.parametrize("store_url", ["sqlite", "redis"], indirect=True)
def test_an_app_opens_one_redis_client_or_one_sqlite_pool_for_all_it_shares(
    sandbox, store_url, tmp_path
):
    from conftest import make_app

    from webwidget.ops.health import LIMITS_EXTENSION
    from webwidget.sessions import get_store
    from webwidget.shared.open import EXTENSION
    from webwidget.web.visitor import core_of

    app = make_app(sandbox, tmp_path, store_url=store_url)
    shared = app.extensions[EXTENSION]
    core = core_of(app)
    assert core.renewals.state is shared.state
    # Lists are shared through the same client (Redis), or stay per process (SQLite).
    assert getattr(core.coalescer.lists, "shared", None) is shared.lists
    assert core.wakeups.redis is shared.redis
    store = get_store(app)
    window = app.extensions[LIMITS_EXTENSION]
    if shared.redis is not None:
        assert store._client is shared.redis
        assert window.storage.storage.connection_pool is shared.redis.connection_pool
    else:
        assert store._connections is shared.sqlite
        assert window.storage._connections is shared.sqlite
