"""`webwidget sessions`: count the stored sessions, purge the expired ones, and copy a
SQLite store's live sessions into Redis (moving from one instance to several).

Every command reads the store the app would use (SESSION_STORE_URL, else REDIS_URL, else
sessions.sqlite3 in the instance folder) unless `--store` names another. Only expired
records are ever deleted: a live chat's record is never touched by `purge`, and
`migrate` copies, it never removes anything from the SQLite file.

`migrate` copies each live session with the time it has left (its TTL in Redis) and
never overwrites a copy that is as recent or more recent: run it while the instances
still serve from SQLite, switch them to Redis, and run it again to bring over what
visitors changed meanwhile. A second run with nothing new copies nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

from .errors import SessionStoreUnavailable
from .factory import store_from_url
from .redis_store import RedisSessionStore
from .sqlite_store import SQLiteSessionStore
from .store import SessionRecord, SessionStore


class CommandError(Exception):
    """A store the command cannot use; its message says which and what to do."""


def instance_folder() -> Path:
    """The app's instance folder: WEBWIDGET_INSTANCE_PATH, else Flask's default."""
    from flask import Flask

    return Path(os.environ.get("WEBWIDGET_INSTANCE_PATH") or Flask("webwidget").instance_path)


def default_store_url() -> str:
    """The session store the app uses with the current environment."""
    return (
        os.environ.get("SESSION_STORE_URL")
        or os.environ.get("REDIS_URL")
        or f"sqlite:///{instance_folder() / 'sessions.sqlite3'}"
    )


def shown(url: str) -> str:
    """`url` without a password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=f"{parts.username or ''}:***@{parts.hostname}"
                          + (f":{parts.port}" if parts.port else "")).geturl()


def sqlite_path(url: str) -> Path:
    """The file a sqlite:/// URL names (relative paths in the instance folder)."""
    path = Path(url[len("sqlite:///"):])
    return path if path.is_absolute() else instance_folder() / path


def open_store(url: str) -> SessionStore:
    """The store at `url`; a SQLite file must exist already (never created here)."""
    if url.startswith("sqlite:///") and not sqlite_path(url).is_file():
        raise CommandError(f"no session database at {sqlite_path(url)}: check --store,"
                           " SESSION_STORE_URL or WEBWIDGET_INSTANCE_PATH")
    try:
        store = store_from_url(url, base_dir=instance_folder())
        store.ping()
    except (ValueError, SessionStoreUnavailable) as error:
        raise CommandError(f"cannot open {shown(url)}: {error}") from error
    return store


def count(url: str, now: float) -> tuple[int, int]:
    """Live sessions and expired records still stored (Redis drops those itself)."""
    store = open_store(url)
    try:
        if isinstance(store, SQLiteSessionStore):
            with closing(sqlite3.connect(store.path)) as db:
                live, expired = db.execute(
                    "SELECT SUM(expires_at >= ?), SUM(expires_at < ?) FROM sessions", (now, now)
                ).fetchone()
            return int(live or 0), int(expired or 0)
        return store.count_active(), 0
    finally:
        store.close()


def purge(url: str, now: float) -> int:
    """Delete the records past their expiry; how many went (live ones never do)."""
    store = open_store(url)
    try:
        if isinstance(store, SQLiteSessionStore):
            return store.purge_expired(now)
        return 0  # Redis deletes a session when its TTL runs out
    finally:
        store.close()


def live_records(
    path: Path, now: float
) -> Iterator[tuple[str, SessionRecord | None, float]]:
    """(sid, record, expires_at) of every session in the SQLite file that has not expired;
    records that are not JSON are counted apart (None)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT id, data, created_at, last_seen, expires_at FROM sessions"
            " WHERE expires_at >= ? ORDER BY id", (now,)
        ).fetchall()
    for sid, data, created_at, last_seen, expires_at in rows:
        try:
            decoded = json.loads(data)
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            yield sid, None, expires_at
            continue
        yield sid, SessionRecord(created_at=created_at, last_seen=last_seen,
                                 data=decoded), expires_at


def migrate(source: str, target: str, now: float) -> Counter[str]:
    """Copy the live sessions of the SQLite store `source` into the Redis store `target`,
    each with the time it has left; counts: copied, updated, kept, unreadable."""
    if not source.startswith("sqlite:///"):
        raise CommandError(f"--from must be a sqlite:/// store, not {shown(source)}")
    if not target.startswith(("redis://", "rediss://")):
        raise CommandError(f"--to must be a redis:// store, not {shown(target)}")
    open_store(source).close()
    redis_store = open_store(target)
    assert isinstance(redis_store, RedisSessionStore)
    counts: Counter[str] = Counter(copied=0, updated=0, kept=0, unreadable=0)
    try:
        for sid, record, expires_at in live_records(sqlite_path(source), now):
            if record is None:
                counts["unreadable"] += 1
                continue
            counts[redis_store.copy_in(sid, record, ttl=expires_at - now)] += 1
    finally:
        redis_store.close()
    return counts


def run(args: argparse.Namespace) -> int:
    """The `webwidget sessions` command."""
    now = time.time()
    try:
        if args.action == "count":
            url = args.store or default_store_url()
            live, expired = count(url, now)
            print(f"{shown(url)}: {live} live sessions, {expired} expired"
                  + (" (webwidget sessions purge deletes them)" if expired else ""))
        elif args.action == "purge":
            url = args.store or default_store_url()
            print(f"{shown(url)}: {purge(url, now)} expired sessions deleted, live ones kept")
        else:
            source = args.source or default_store_url()
            counts = migrate(source, args.target, now)
            print(f"{shown(source)} -> {shown(args.target)}: {counts['copied']} copied,"
                  f" {counts['updated']} updated (newer in SQLite), {counts['kept']} already"
                  f" there, {counts['unreadable']} unreadable and left out")
    except (CommandError, SessionStoreUnavailable, sqlite3.Error) as error:
        print(f"webwidget sessions: {error}", file=sys.stderr)
        return 2
    return 0


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `sessions count|purge|migrate` on the `webwidget` command's subparsers."""
    command = commands.add_parser(
        "sessions", help="count, purge (expired only) or migrate (SQLite to Redis) sessions"
    )
    actions = command.add_subparsers(dest="action", required=True)
    store_help = "the store (default: SESSION_STORE_URL, else the app's SQLite file)"
    actions.add_parser("count", help="live and expired sessions").add_argument(
        "--store", help=store_help)
    actions.add_parser("purge", help="delete expired sessions, never live ones").add_argument(
        "--store", help=store_help)
    move = actions.add_parser(
        "migrate", help="copy live sessions from SQLite into Redis, each with its time left")
    move.add_argument("--from", dest="source", help="sqlite:///... (default: as --store)")
    move.add_argument("--to", dest="target", required=True, help="redis://host:port/db")
    command.set_defaults(run=run)
