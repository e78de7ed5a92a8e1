"""Server-side sessions, run against both the SQLite and the Redis store."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from conftest import StoppedClock, corrupt_session
from flask import Flask, jsonify, request, session

import webwidget.sessions as sessions_pkg
from webwidget.sessions import (
    HandleSigner,
    RedisSessionStore,
    ServerSessionInterface,
    SessionStoreUnavailable,
    SQLiteSessionStore,
    init_sessions,
    store_from_url,
)

KEYS = ["new-key", "old-key"]
IDLE = 600.0
ABSOLUTE = 3600.0
BASE = "https://widget.test"


class CountingStore:
    """Wraps a store and counts calls per method."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)

        return counted

    def count(self, *names: str) -> int:
        return sum(1 for c in self.calls if c in names)


@pytest.fixture(params=["sqlite", "redis"])
def raw_store(request, tmp_path):
    if request.param == "sqlite":
        store = SQLiteSessionStore(tmp_path / "sessions.db")
    else:
        url = request.getfixturevalue("redis_url")
        store = RedisSessionStore(url, key_prefix=f"test:{uuid.uuid4().hex}:")
    yield store
    store.close()


@pytest.fixture
def store(raw_store):
    return CountingStore(raw_store)


@pytest.fixture
def clock():
    return StoppedClock()


def session_app(store, clock, keys=KEYS) -> Flask:
    """A small Flask app exercising the session from views (not the widget)."""
    app = Flask(__name__)
    app.session_interface = ServerSessionInterface(
        store, secret_keys=keys, idle_timeout=IDLE, absolute_timeout=ABSOLUTE, clock=clock
    )
    @app.errorhandler(SessionStoreUnavailable)
    def unavailable(exc):
        return "store down", 503

    @app.get("/read")
    def read():
        return jsonify(data=dict(session), handle=session.handle, new=session.new)

    @app.get("/static-ish")
    def static_ish():
        return "no session used"

    @app.post("/set")
    def set_values():
        session.update(request.get_json())
        # The handle exists during the request so a template could render it.
        return jsonify(handle=session.handle)

    @app.post("/nested")
    def nested():
        session["cart"]["items"].append("x")
        return ""

    @app.post("/regenerate")
    def regenerate():
        session.regenerate()
        return jsonify(handle=session.handle)

    @app.post("/destroy")
    def destroy():
        session.destroy()
        return ""

    return app


def start(client) -> str:
    """Create a session with one key; return its handle."""
    resp = client.post("/set", json={"hello": "world"})
    assert resp.status_code == 200
    return resp.headers["X-Widget-Session"]


def read(app, handle: str | None, via: str = "header"):
    client = app.test_client(use_cookies=False)
    headers = {}
    if handle is not None:
        headers = (
            {"X-Widget-Session": handle}
            if via == "header"
            else {"Cookie": f"__Host-ww_session={handle}"}
        )
    return client.get("/read", base_url=BASE, headers=headers)


def sid_of(handle: str) -> str:
    return HandleSigner(KEYS).unsign(handle)


def test_new_session_sets_cookie_with_all_attributes_and_header(store, clock):
    app = session_app(store, clock)
    resp = app.test_client().post("/set", json={"a": 1}, base_url=BASE)
    handle = resp.headers["X-Widget-Session"]
    assert resp.get_json()["handle"] == handle
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"__Host-ww_session={handle};")
    attrs = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite", "partitioned", "path"} <= attrs
    assert "SameSite=None" in cookie and "Path=/" in cookie
    assert resp.headers["Cache-Control"] == "no-store"
    assert {"cookie", "x-widget-session"} <= {v.lower() for v in resp.vary}
    assert len(sid_of(handle)) == 43  # 256-bit token_urlsafe


def test_cookie_round_trip_and_no_new_cookie_for_existing(store, clock):
    app = session_app(store, clock)
    client = app.test_client()
    client.post("/set", json={"a": 1}, base_url=BASE)
    resp = client.get("/read", base_url=BASE)
    assert resp.get_json()["data"] == {"a": 1}
    assert "Set-Cookie" not in resp.headers and "X-Widget-Session" not in resp.headers
    assert resp.headers["Cache-Control"] == "no-store"


def test_empty_session_is_not_persisted(store, clock):
    app = session_app(store, clock)
    resp = read(app, None)
    assert resp.get_json() == {"data": {}, "handle": None, "new": True}
    assert "Set-Cookie" not in resp.headers and "X-Widget-Session" not in resp.headers
    assert store.count("save") == 0


def test_handle_via_header_alone(store, clock):
    app = session_app(store, clock)
    handle = start(app.test_client(use_cookies=False))
    resp = read(app, handle, via="header")
    assert resp.get_json()["data"] == {"hello": "world"}
    assert read(app, handle, via="cookie").get_json()["data"] == {"hello": "world"}


def test_handle_never_read_from_url(store, clock):
    app = session_app(store, clock)
    handle = start(app.test_client(use_cookies=False))
    client = app.test_client(use_cookies=False)
    resp = client.get(
        "/read",
        base_url=BASE,
        query_string={"X-Widget-Session": handle, "__Host-ww_session": handle},
    )
    assert resp.get_json()["data"] == {}


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "",
        "x" * 300,
        "A" * 43 + "." + "B" * 43,  # right shape, wrong signature
        "A" * 43,  # unsigned id
        "\u00e9\u00e9\u00e9." + "B" * 43,
        "a.b.c.d",
        "A" * 43 + "." + "B" * 250,  # oversized
    ],
)
def test_bad_handles_give_fresh_session_without_store_lookup(store, clock, bad):
    app = session_app(store, clock)
    for via in ("header", "cookie"):
        try:
            resp = read(app, bad, via=via)
        except (ValueError, UnicodeError):
            continue  # the test client itself refuses non-latin-1 header values
        assert resp.status_code == 200
        assert resp.get_json()["data"] == {}
    assert store.count("load") == 0


def test_forged_signature_of_real_id_is_rejected(store, clock):
    app = session_app(store, clock)
    handle = start(app.test_client(use_cookies=False))
    forged = HandleSigner(["attacker-key"]).sign(sid_of(handle))
    store.calls.clear()
    assert read(app, forged).get_json()["data"] == {}
    assert store.count("load") == 0


def test_key_rotation(store, clock):
    old_app = session_app(store, clock, keys=["old-key"])
    old_handle = start(old_app.test_client(use_cookies=False))
    new_app = session_app(store, clock, keys=["new-key", "old-key"])
    assert read(new_app, old_handle).get_json()["data"] == {"hello": "world"}
    new_handle = start(new_app.test_client(use_cookies=False))
    assert HandleSigner(["new-key"]).unsign(new_handle) is not None
    assert HandleSigner(["old-key"]).unsign(new_handle) is None


def test_regenerate_gives_new_handle_and_kills_old(store, clock):
    app = session_app(store, clock)
    client = app.test_client(use_cookies=False)
    old = start(client)
    resp = client.post("/regenerate", base_url=BASE, headers={"X-Widget-Session": old})
    new = resp.headers["X-Widget-Session"]
    assert new != old and resp.get_json()["handle"] == new
    assert f"__Host-ww_session={new};" in resp.headers["Set-Cookie"]
    assert read(app, new).get_json()["data"] == {"hello": "world"}
    assert read(app, old).get_json()["data"] == {}


def test_destroy_then_replay_is_empty(store, clock):
    app = session_app(store, clock)
    client = app.test_client(use_cookies=False)
    handle = start(client)
    resp = client.post("/destroy", base_url=BASE, headers={"X-Widget-Session": handle})
    assert resp.headers["X-Widget-Session"] == ""
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("__Host-ww_session=;") and "Partitioned" in cookie
    assert "Max-Age=0" in cookie or "Expires=Thu, 01 Jan 1970" in cookie
    assert read(app, handle).get_json() == {"data": {}, "handle": None, "new": True}
    assert store.inner.load(sid_of(handle)) is None


def test_idle_timeout(store, clock):
    app = session_app(store, clock)
    handle = start(app.test_client(use_cookies=False))
    clock.advance(IDLE - 1)
    assert read(app, handle).get_json()["data"] == {"hello": "world"}  # refreshes last_seen
    clock.advance(IDLE - 1)
    assert read(app, handle).get_json()["data"] == {"hello": "world"}
    clock.advance(IDLE + 1)
    assert read(app, handle).get_json()["data"] == {}
    assert store.inner.load(sid_of(handle)) is None  # the stale record went


def test_absolute_timeout(store, clock):
    app = session_app(store, clock)
    handle = start(app.test_client(use_cookies=False))
    for _ in range(int(ABSOLUTE // (IDLE / 2))):
        clock.advance(IDLE / 2)
        assert read(app, handle).get_json()["data"] == {"hello": "world"}
    clock.advance(IDLE / 2)
    assert read(app, handle).get_json()["data"] == {}


def test_read_only_request_does_no_write(store, clock):
    app = session_app(store, clock)
    handle = start(app.test_client(use_cookies=False))
    store.calls.clear()
    read(app, handle)
    clock.advance(30)
    read(app, handle)
    assert store.count("save", "delete") == 0
    clock.advance(61)  # past the touch interval: one cheap expiry refresh
    read(app, handle)
    assert store.count("save") == 1


def test_nested_mutation_is_saved(store, clock):
    app = session_app(store, clock)
    client = app.test_client(use_cookies=False)
    handle = client.post("/set", json={"cart": {"items": []}}).headers["X-Widget-Session"]
    client.post("/nested", headers={"X-Widget-Session": handle})
    assert read(app, handle).get_json()["data"] == {"cart": {"items": ["x"]}}


def test_overlapping_requests_lose_no_update(store, clock):
    app = session_app(store, clock)
    both_loaded = threading.Barrier(2, timeout=5)
    a_saved = threading.Event()

    @app.post("/overlap/<key>")
    def overlap(key):
        _ = dict(session)
        both_loaded.wait()  # both requests have loaded the session before either saves
        session[key] = key.upper()
        if key == "b":
            # b saves what it loaded before a's save, plus its own key: a's must survive.
            assert a_saved.wait(5), "request a never finished"
        return ""

    handle = start(app.test_client(use_cookies=False))
    results: dict[str, int] = {}

    def hit(key: str) -> None:
        client = app.test_client(use_cookies=False)
        results[key] = client.post(
            f"/overlap/{key}", base_url=BASE, headers={"X-Widget-Session": handle}
        ).status_code
        if key == "a":
            a_saved.set()  # the response is out: its session was saved before

    threads = [threading.Thread(target=hit, args=(k,)) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {"a": 200, "b": 200}
    assert read(app, handle).get_json()["data"] == {"hello": "world", "a": "A", "b": "B"}


def test_deleting_a_key_is_merged(store, clock):
    app = session_app(store, clock)

    @app.post("/forget")
    def forget():
        session.pop("hello")
        session["other"] = 1
        return ""

    client = app.test_client(use_cookies=False)
    handle = start(client)
    client.post("/forget", headers={"X-Widget-Session": handle})
    assert read(app, handle).get_json()["data"] == {"other": 1}


def test_corrupt_record_is_discarded_and_id_not_logged(store, raw_store, clock, caplog,
                                                      redis_url):
    app = session_app(store, clock)
    handle = start(app.test_client(use_cookies=False))
    sid = sid_of(handle)
    corrupt_session(raw_store, sid, redis_url)
    with caplog.at_level(logging.WARNING, logger="webwidget.sessions"):
        assert read(app, handle).get_json()["data"] == {}
    assert "corrupt" in caplog.text
    assert sid not in caplog.text and handle not in caplog.text
    assert raw_store.load(sid) is None


def test_redis_shape_corruption_is_discarded(redis_url, clock):
    raw = RedisSessionStore(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:")
    try:
        app = session_app(raw, clock)
        handle = start(app.test_client(use_cookies=False))
        with redis.Redis.from_url(redis_url) as client:  # past the store, as a bad deploy
            client.hdel(raw.key_prefix + sid_of(handle), "m:created")
        assert read(app, handle).get_json()["data"] == {}
    finally:
        raw.close()


def test_non_json_value_is_refused(store, clock):
    app = session_app(store, clock)

    @app.post("/bad")
    def bad():
        session["x"] = {1, 2}
        return ""

    app.testing = True
    with pytest.raises(TypeError, match="'x'"):
        app.test_client().post("/bad", base_url=BASE)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_outage_becomes_503(clock):
    store = RedisSessionStore(f"redis://127.0.0.1:{closed_port()}/0", timeout=0.5)
    try:
        with pytest.raises(SessionStoreUnavailable):
            store.ping()
        app = session_app(store, clock)
        handle = HandleSigner(KEYS).sign("A" * 43)
        resp = read(app, handle)
        assert resp.status_code == 503
        assert "Set-Cookie" not in resp.headers  # the visitor keeps their handle
        # Views that never touch the session still work.
        client = app.test_client(use_cookies=False)
        resp = client.get("/static-ish", base_url=BASE, headers={"X-Widget-Session": handle})
        assert resp.status_code == 200
        # A save-time failure of a new session also answers 503, not 500.
        resp = client.post("/set", json={"a": 1}, base_url=BASE)
        assert resp.status_code == 503
    finally:
        store.close()


def test_ping(raw_store):
    raw_store.ping()


def test_sqlite_locked_is_unavailable(tmp_path):
    import sqlite3

    store = SQLiteSessionStore(tmp_path / "s.db", busy_timeout=0.05)
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        with pytest.raises(SessionStoreUnavailable):
            store.save(
                "A" * 43,
                changed={},
                deleted=(),
                created_at=0,
                last_seen=0,
                expires_at=1,
                create_with={},
            )
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_sqlite_purge_expired(tmp_path):
    store = SQLiteSessionStore(tmp_path / "s.db", purge_every=3)
    now = time.time()
    store.save(
        "A" * 43,
        changed={},
        deleted=(),
        created_at=now - 100,
        last_seen=now - 100,
        expires_at=now - 50,
        create_with={"k": "1"},
    )
    assert store.load("A" * 43) is not None
    store.save(
        "B" * 43,
        changed={},
        deleted=(),
        created_at=now,
        last_seen=now,
        expires_at=now + 50,
        create_with={},
    )
    store.save(
        "C" * 43,
        changed={},
        deleted=(),
        created_at=now,
        last_seen=now,
        expires_at=now + 50,
        create_with={},
    )  # third write purges
    assert store.load("A" * 43) is None
    assert store.load("B" * 43) is not None
    assert store.purge_expired(now + 100) == 2


def test_store_from_url(tmp_path, redis_url):
    sqlite_store = store_from_url(f"sqlite:///{tmp_path}/a.db")
    assert isinstance(sqlite_store, SQLiteSessionStore)
    assert sqlite_store.path == Path(f"{tmp_path}/a.db")
    rel = store_from_url("sqlite:///rel.db", base_dir=tmp_path)
    assert rel.path == tmp_path / "rel.db"
    redis_store = store_from_url(redis_url)
    assert isinstance(redis_store, RedisSessionStore)
    redis_store.ping()
    redis_store.close()
    for bad in ("postgres://x/y", "sqlite://relative.db", "sqlite:///:memory:", "", "memcached"):
        with pytest.raises(ValueError, match="SESSION_STORE_URL"):
            store_from_url(bad)


def test_init_sessions(tmp_path):
    from webwidget.shared.open import open_url

    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    init_sessions(
        app,
        shared=open_url("sqlite:///sessions.db", base_dir=app.instance_path),
        secret_keys=["k"],
        idle_timeout=60,
        absolute_timeout=600,
    )
    store = app.extensions["webwidget.sessions"]
    assert isinstance(store, SQLiteSessionStore)
    assert store.path == tmp_path / "instance" / "sessions.db"
    assert isinstance(app.session_interface, ServerSessionInterface)


def test_no_pickle_in_package():
    root = Path(sessions_pkg.__file__).parent
    sources = list(root.rglob("*.py"))
    assert sources
    for path in sources:
        assert "pickle" not in path.read_text(), path


def test_records_are_json(store, raw_store, clock):
    app = session_app(store, clock)
    handle = start(app.test_client(use_cookies=False))
    record = raw_store.load(sid_of(handle))
    assert json.loads(json.dumps(record.data)) == {"hello": "world"}


def test_response_not_using_session_stays_cacheable(store, clock):
    app = session_app(store, clock)
    handle = start(app.test_client(use_cookies=False))
    client = app.test_client(use_cookies=False)
    resp = client.get("/static-ish", base_url=BASE, headers={"X-Widget-Session": handle})
    assert "Cache-Control" not in resp.headers and not resp.vary
    resp = read(app, handle)
    assert resp.headers["Cache-Control"] == "no-store"


def test_regenerate_keeps_update_committed_meanwhile(store, raw_store, clock):
    app = session_app(store, clock)

    @app.post("/start-conversation")
    def start_conversation():
        _ = dict(session)
        # Another request of the same visitor commits while this one is running.
        raw_store.save(
            sid_of(request.headers["X-Widget-Session"]),
            changed={"other": '"value"'},
            deleted=(),
            created_at=clock(),
            last_seen=clock(),
            expires_at=clock() + IDLE,
        )
        session.regenerate()
        session["conversation"] = 1
        return ""

    client = app.test_client(use_cookies=False)
    old = start(client)
    new = client.post(
        "/start-conversation", base_url=BASE, headers={"X-Widget-Session": old}
    ).headers["X-Widget-Session"]
    assert read(app, new).get_json()["data"] == {
        "hello": "world",
        "other": "value",
        "conversation": 1,
    }
    assert read(app, old).get_json()["data"] == {}


def test_the_store_counts_its_unexpired_sessions(raw_store):
    now = time.time()

    def save(sid: str, *, last_seen: float, expires_at: float) -> None:
        assert raw_store.save(sid, changed={}, deleted=(), created_at=last_seen,
                              last_seen=last_seen, expires_at=expires_at,
                              create_with={"k": '"v"'})

    assert raw_store.count_active() == 0
    save("a", last_seen=now, expires_at=now + 60)
    save("b", last_seen=now, expires_at=now + 60)
    if isinstance(raw_store, SQLiteSessionStore):
        # Redis drops an expired record itself; SQLite keeps it until a purge.
        save("old", last_seen=now - 120, expires_at=now - 60)
    assert raw_store.count_active() == 2
    raw_store.delete("a")
    assert raw_store.count_active() == 1
