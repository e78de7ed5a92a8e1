"""Settings from the environment: REDIS_URL, as PaaS Redis add-ons set it."""

from __future__ import annotations

import pytest
import redis
from conftest import Visitor, https_client, widget_settings

from webwidget import create_app
from webwidget.sessions import get_store
from webwidget.sessions.redis_store import RedisSessionStore
from webwidget.settings import SettingsError, load_settings
from webwidget.web.limits import storage_url


def test_redis_url_from_the_environment_is_the_session_store(monkeypatch):
    for name in ("SESSION_STORE_URL", "CHATCAPTAIN_BASE_URL", "RATE_LIMIT_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", "rediss://:pw@redis.example:6380/0")
    settings = load_settings(_env_file=None)
    assert settings.SESSION_STORE_URL == "rediss://:pw@redis.example:6380/0"
    assert storage_url(settings) == "rediss://:pw@redis.example:6380/0"


def test_session_store_url_wins_over_redis_url():
    settings = load_settings(
        _env_file=None, SESSION_STORE_URL="sqlite:///sessions.db", REDIS_URL="redis://r:6379/0"
    )
    assert settings.SESSION_STORE_URL == "sqlite:///sessions.db"


def test_a_bad_redis_url_is_one_line_naming_it():
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, REDIS_URL="http://redis.example")
    assert caught.value.problems == [
        "REDIS_URL: use redis://host:port/db or rediss://host:port/db"
    ]


def test_a_chat_started_with_only_redis_url_keeps_its_session_in_redis(
    sandbox, redis_url, tmp_path
):
    settings = widget_settings(sandbox.url, None, REDIS_URL=redis_url.replace("/0", "/5"))
    app = create_app(settings=settings, instance_path=str(tmp_path))
    app.config["TESTING"] = True
    assert isinstance(get_store(app), RedisSessionStore)
    server = redis.Redis.from_url(redis_url.replace("/0", "/5"))
    server.flushdb()
    Visitor(https_client(app)).start()
    assert len(list(server.scan_iter(match="webwidget:session:*"))) == 1
    # Nothing went to a SQLite file in the instance folder instead.
    assert not (tmp_path / "sessions.sqlite3").exists()
