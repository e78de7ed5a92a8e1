"""Settings from the environment: REDIS_URL, as PaaS Redis add-ons set it."""

from __future__ import annotations

import pytest
import redis
from conftest import Visitor, https_client, widget_settings

from webwidget.app import create_app
from webwidget.sessions import get_store
from webwidget.sessions.redis_store import RedisSessionStore
from webwidget.settings import SettingsError, load_settings, lookalike_warnings
from webwidget.shared import open_shared
from webwidget.shared.limit_storage import open_limit_storage


def test_redis_url_from_the_environment_is_the_session_store(monkeypatch, tmp_path):
    for name in ("SESSION_STORE_URL", "CHATCAPTAIN_BASE_URL", "RATE_LIMIT_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", "rediss://:pw@redis.example:6380/0")
    settings = load_settings(_env_file=None)
    assert settings.SESSION_STORE_URL == "rediss://:pw@redis.example:6380/0"
    shared = open_shared(settings, tmp_path)
    assert shared.redis.connection_pool.connection_kwargs["host"] == "redis.example"
    # The rate limits count there too, on the same client's connections.
    limits = open_limit_storage(settings, shared)
    assert limits.storage.connection_pool is shared.redis.connection_pool


def test_session_store_url_wins_over_redis_url(tmp_path):
    settings = load_settings(
        _env_file=None, SESSION_STORE_URL="sqlite:///sessions.db", REDIS_URL="redis://r:6379/0"
    )
    assert settings.SESSION_STORE_URL == "sqlite:///sessions.db"
    # The rate limits still count in that Redis, shared by every instance.
    limits = open_limit_storage(settings, open_shared(settings, tmp_path))
    assert limits.storage.connection_pool.connection_kwargs["host"] == "r"


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


def test_without_an_upstream_start_up_stops_unless_the_demo_is_asked_for(monkeypatch):
    for name in ("CHATCAPTAIN_BASE_URL", "WEBWIDGET_DEMO"):
        monkeypatch.delenv(name, raising=False)
    for empty in ({}, {"CHATCAPTAIN_BASE_URL": ""}, {"CHATCAPTAIN_BASE_URL": "  "}):
        with pytest.raises(SettingsError) as caught:
            load_settings(_env_file=None, **empty)
        assert caught.value.problems == [
            "CHATCAPTAIN_BASE_URL: not set; set it to the ChatCaptain API root, e.g."
            " https://api.chatcaptain.com (for the demo on the bundled sandbox run"
            " `webwidget demo`, or set WEBWIDGET_DEMO=1)"
        ]
    monkeypatch.setenv("WEBWIDGET_DEMO", "1")
    assert load_settings(_env_file=None).demo_mode
    # An upstream wins over the opt-in: the demo only ever replaces a missing upstream.
    assert not load_settings(_env_file=None, CHATCAPTAIN_BASE_URL="https://api.example",
                             SECRET_KEY="k" * 32, CHATCAPTAIN_CHATBOT_ID="b",
                             CHATCAPTAIN_CHANNEL_ID="c", CHATCAPTAIN_CHANNEL_TOKEN="t",
                             WIDGET_ALLOWED_ORIGINS="https://a.example").demo_mode


def test_a_misspelt_base_url_is_named_in_the_one_line(monkeypatch):
    monkeypatch.delenv("CHATCAPTAIN_BASE_URL", raising=False)
    monkeypatch.delenv("WEBWIDGET_DEMO", raising=False)
    monkeypatch.setenv("CHATCAPTAIN_BASEURL", "https://api.chatcaptain.com")
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(
        "CHATCAPTAIN_BASE_URL: not set (CHATCAPTAIN_BASEURL is set: misspelt?);"
    )


def test_variables_that_look_like_ours_are_warned_about_and_others_are_not():
    environ = {
        "SESION_STORE_URL": "redis://r:6379/0",
        "CHATCAPTAIN_BASEURL": "https://api.example",
        "chatcaptain_base_url": "https://api.example",
        "METRIC_TOKEN": "x" * 20,
        "CHATCAPTAIN_COLOUR": "red",
        "WEBWIDGET_INSTANCE": "/srv",
        # Ours, spelt right, and the rest of a machine's environment.
        "SESSION_STORE_URL": "redis://r:6379/0",
        "WEBWIDGET_INSTANCE_PATH": "/srv",
        "PROMETHEUS_MULTIPROC_DIR": "/tmp/m",
        "SESSION_MANAGER": "local/host:@/tmp/.ICE-unix/1",
        "XDG_SESSION_TYPE": "x11",
        "REDIS_HOST": "r",
        "PATH": "/usr/bin",
        "PWD": "/srv",
        "HARBOUR_CHANNEL_TOKEN": "a-token",
    }
    warnings = lookalike_warnings(environ)
    assert warnings == [
        "CHATCAPTAIN_BASEURL is set but webwidget reads no such variable, so it is ignored;"
        " did you mean CHATCAPTAIN_BASE_URL?",
        "CHATCAPTAIN_COLOUR is set but webwidget reads no such variable, so it is ignored",
        "METRIC_TOKEN is set but webwidget reads no such variable, so it is ignored;"
        " did you mean METRICS_TOKEN?",
        "SESION_STORE_URL is set but webwidget reads no such variable, so it is ignored;"
        " did you mean SESSION_STORE_URL?",
        "WEBWIDGET_INSTANCE is set but webwidget reads no such variable, so it is ignored;"
        " did you mean WEBWIDGET_INSTANCE_PATH?",
        "chatcaptain_base_url is set but webwidget reads no such variable, so it is ignored;"
        " did you mean CHATCAPTAIN_BASE_URL?",
    ]


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"UPSTREAM_READ_TIMEOUT": 10, "UPSTREAM_DEADLINE": 8}, ["UPSTREAM_READ_TIMEOUT"]),
        ({"UPSTREAM_CONNECT_TIMEOUT": 3, "UPSTREAM_READ_TIMEOUT": 3, "UPSTREAM_DEADLINE": 2},
         ["UPSTREAM_CONNECT_TIMEOUT", "UPSTREAM_READ_TIMEOUT"]),
        ({"SESSION_IDLE_TIMEOUT": 7200, "SESSION_ABSOLUTE_TIMEOUT": 3600},
         ["SESSION_IDLE_TIMEOUT"]),
    ],
)
def test_contradictory_timeouts_stop_start_up(values, names):
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, **values)
    assert [problem.split(":")[0] for problem in caught.value.problems] == names
    assert all("longer than" in problem for problem in caught.value.problems)
