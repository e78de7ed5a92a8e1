"""`webwidget sessions`: count, purge (expired only, never a live chat) and migrate a
SQLite store's live sessions into a real Redis with their time left, idempotently, so
that a visitor's chat goes on on an instance that reads Redis."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from conftest import Visitor, https_client, make_app

from webwidget.cli import main
from webwidget.sessions.redis_store import RedisSessionStore
from webwidget.sessions.sqlite_store import SQLiteSessionStore

MESSAGE_ID = re.compile(r'data-message-id="([^"]+)"')
HOUR = 3600.0


@pytest.fixture
def redis_db(redis_url):
    """An empty Redis database of this test worker's own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    url = redis_url.rsplit("/", 1)[0] + f"/{1 + int(worker.removeprefix('gw') or 0) % 15}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


def session(store: SQLiteSessionStore, sid: str, *, seen_ago: float, left: float,
            **data: str) -> None:
    """A stored session last seen `seen_ago` seconds ago, expiring in `left` (negative:
    expired already)."""
    now = time.time()
    texts = {key: f'"{value}"' for key, value in data.items()}
    store.save(sid, changed=texts, deleted=(), created_at=now - seen_ago - 60,
               last_seen=now - seen_ago, expires_at=now + left, create_with=texts)


def run(capsys, *argv: str) -> tuple[int, str]:
    status = main(["sessions", *argv])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_count_and_purge_delete_expired_sessions_only(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    store = SQLiteSessionStore(tmp_path / "sessions.sqlite3")
    session(store, "live-a", seen_ago=60, left=HOUR, chat="a")
    session(store, "live-b", seen_ago=10, left=5, chat="b")  # about to expire, still live
    session(store, "gone", seen_ago=2 * HOUR, left=-HOUR, chat="c")
    assert run(capsys, "count", "--store", url) == (
        0, f"{url}: 2 live sessions, 1 expired (webwidget sessions purge deletes them)\n")
    assert run(capsys, "purge", "--store", url) == (
        0, f"{url}: 1 expired sessions deleted, live ones kept\n")
    assert store.load("gone") is None
    assert store.load("live-a").data == {"chat": "a"}
    assert store.load("live-b").data == {"chat": "b"}
    assert run(capsys, "count", "--store", url)[1] == f"{url}: 2 live sessions, 0 expired\n"


def test_count_reads_the_apps_store_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SESSION_STORE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("WEBWIDGET_INSTANCE_PATH", str(tmp_path))
    store = SQLiteSessionStore(tmp_path / "sessions.sqlite3")
    session(store, "live", seen_ago=1, left=HOUR, chat="a")
    assert run(capsys, "count") == (
        0, f"sqlite:///{tmp_path / 'sessions.sqlite3'}: 1 live sessions, 0 expired\n")
    # A path that holds no database is said, not created.
    status, said = run(capsys, "count", "--store", f"sqlite:///{tmp_path / 'nothing.db'}")
    assert status == 2 and "no session database at" in said
    assert not (tmp_path / "nothing.db").exists()


def test_migrate_copies_live_sessions_with_their_time_left_and_is_idempotent(
    tmp_path, capsys, redis_db
):
    source = f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    store = SQLiteSessionStore(tmp_path / "sessions.sqlite3")
    session(store, "live-a", seen_ago=60, left=HOUR, chat="a")
    session(store, "live-b", seen_ago=10, left=600, chat="b")
    session(store, "gone", seen_ago=2 * HOUR, left=-HOUR, chat="c")
    assert run(capsys, "migrate", "--from", source, "--to", redis_db) == (0, (
        f"{source} -> {redis_db}: 2 copied, 0 updated (newer in SQLite), 0 already there,"
        " 0 unreadable and left out\n"))
    target = RedisSessionStore(redis_db)
    for sid in ("live-a", "live-b"):
        assert target.load(sid) == store.load(sid)
    assert target.load("gone") is None
    with redis.Redis.from_url(redis_db) as client:
        ttl = client.pttl(target.key_prefix + "live-b") / 1000
    assert 590 < ttl <= 600
    # Again: nothing new, nothing copied; the SQLite file is untouched.
    assert run(capsys, "migrate", "--from", source, "--to", redis_db)[1].startswith(
        f"{source} -> {redis_db}: 0 copied, 0 updated (newer in SQLite), 2 already there")
    assert store.load("live-a") is not None
    # A visitor who went on chatting on an instance still on SQLite: the newer copy wins;
    # one who went on on Redis keeps what Redis has.
    session(store, "live-a", seen_ago=0, left=HOUR, chat="a, later")
    target.save("live-b", changed={"chat": '"b, on redis"'}, deleted=(),
                created_at=time.time() - 100, last_seen=time.time() + 1,
                expires_at=time.time() + HOUR)
    assert run(capsys, "migrate", "--from", source, "--to", redis_db)[1].startswith(
        f"{source} -> {redis_db}: 0 copied, 1 updated (newer in SQLite), 1 already there")
    assert target.load("live-a").data == {"chat": "a, later"}
    assert target.load("live-b").data == {"chat": "b, on redis"}
    target.close()


def test_a_chat_goes_on_after_its_store_moves_from_sqlite_to_redis(
    sandbox, tmp_path, redis_db
):
    on_sqlite = make_app(sandbox, tmp_path / "a")
    visitor = Visitor(https_client(on_sqlite))
    handle = visitor.start().headers["X-Widget-Session"]
    before = MESSAGE_ID.findall(visitor.get("/w/default").get_data(as_text=True))
    assert before
    # The real console script, as an operator runs it.
    result = subprocess.run(
        [str(Path(sys.executable).with_name("webwidget")), "sessions", "migrate",
         "--from", f"sqlite:///{tmp_path / 'a' / 'sessions.sqlite3'}", "--to", redis_db],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert ": 1 copied, 0 updated" in result.stdout
    on_redis = make_app(sandbox, tmp_path / "b", store_url=redis_db)
    page = https_client(on_redis).get("/w/default", headers={"X-Widget-Session": handle})
    assert page.status_code == 200
    assert MESSAGE_ID.findall(page.get_data(as_text=True)) == before


def test_migrate_refuses_what_it_cannot_do(tmp_path, capsys, redis_db):
    status, said = run(capsys, "migrate", "--from", redis_db, "--to", redis_db)
    assert status == 2 and "--from must be a sqlite:/// store" in said
    SQLiteSessionStore(tmp_path / "s.sqlite3")
    status, said = run(capsys, "migrate", "--from", f"sqlite:///{tmp_path / 's.sqlite3'}",
                       "--to", f"sqlite:///{tmp_path / 't.sqlite3'}")
    assert status == 2 and "--to must be a redis:// store" in said
