"""Abuse limits: chat starts per IP and per widget, sends per session, body and message caps.

Every refusal must come before anything reaches the upstream (counted by the sandbox).
Tests use small limits through the settings.
"""

from __future__ import annotations

import logging
import time

import pytest
import redis
import requests
from conftest import Visitor, https_client, make_app, stats

# What these tests count is the limits, not the upstream's speed: a start slowed past the
# usual test timeouts by a busy machine would answer 504 and still have used its slot.
PATIENT = {"UPSTREAM_READ_TIMEOUT": 10.0, "UPSTREAM_DEADLINE": 15.0}


def limited_app(upstream, tmp_path, **settings):
    """make_app with the upstream timeouts that a loaded machine cannot reach."""
    return make_app(upstream, tmp_path, **{**PATIENT, **settings})


def start_from(app, ip: str | None = None, *, forwarded: str | None = None, htmx=False):
    """A start by a fresh visitor (no session), from `ip` or with an X-Forwarded-For."""
    client = https_client(app)
    headers = {"Sec-Fetch-Site": "same-origin"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    if htmx:
        headers["HX-Request"] = "true"
    environ = {"REMOTE_ADDR": ip} if ip else {}
    return client.post("/w/default/start", headers=headers, environ_overrides=environ)


def assert_friendly_429(response, *, htmx=False):
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    body = response.get_data(as_text=True)
    assert "Too many requests" in body and "Traceback" not in body
    if htmx:
        assert response.headers["HX-Retarget"] == "#ww-status" and "<html" not in body
    else:
        assert "<html" in body


def test_defaults_are_what_a_real_site_would_use():
    from webwidget.settings import Settings

    settings = Settings(_env_file=None)
    assert settings.RATE_LIMIT_START_PER_IP == "10/minute;100/hour"
    assert settings.RATE_LIMIT_START_PER_WIDGET == "600/minute"
    assert settings.RATE_LIMIT_START_PER_NETWORK == "30/minute;300/hour"
    assert settings.RATE_LIMIT_IPV6_PREFIX == 64
    assert settings.RATE_LIMIT_SEND_PER_SESSION == "30/minute"
    assert settings.TRUSTED_PROXY_HOPS == 0


@pytest.mark.parametrize(
    "name",
    ["RATE_LIMIT_START_PER_IP", "RATE_LIMIT_START_PER_NETWORK", "RATE_LIMIT_SEND_PER_SESSION"],
)
def test_a_malformed_limit_stops_start_up_with_its_name(name):
    from webwidget.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=f"{name}: .*not a rate limit"):
        load_settings(_env_file=None, **{name: "lots"})


def test_storage_follows_the_session_store(tmp_path):
    from limits.storage import MemoryStorage, RedisStorage

    from webwidget.settings import Settings
    from webwidget.shared import open_shared
    from webwidget.shared.limit_storage import SQLiteLimitStorage, open_limit_storage

    # The default: the session store's SQLite file, shared by every worker, on the app's
    # one pool of connections to it.
    settings = Settings(_env_file=None)
    shared = open_shared(settings, tmp_path)
    on_file = open_limit_storage(settings, shared)
    assert isinstance(on_file, SQLiteLimitStorage)
    assert on_file.path == tmp_path / "sessions.sqlite3"
    assert on_file._connections is shared.sqlite
    # With the sessions in Redis: the app's one Redis client's connections.
    on_redis = Settings(_env_file=None, SESSION_STORE_URL="redis://10.0.0.1:6379/2")
    shared = open_shared(on_redis, tmp_path)
    in_redis = open_limit_storage(on_redis, shared)
    assert isinstance(in_redis, RedisStorage)
    assert in_redis.storage.connection_pool is shared.redis.connection_pool
    explicit = Settings(_env_file=None, RATE_LIMIT_STORAGE_URL="memory://")
    assert isinstance(open_limit_storage(explicit, open_shared(explicit, tmp_path)), MemoryStorage)


def test_starts_per_ip_are_limited_before_anything_reaches_upstream(sandbox, tmp_path):
    app = limited_app(sandbox, tmp_path, RATE_LIMIT_START_PER_IP="2/minute")
    assert start_from(app).status_code == 303
    assert start_from(app).status_code == 303
    assert_friendly_429(start_from(app))
    assert_friendly_429(start_from(app, htmx=True), htmx=True)
    assert stats(sandbox)["create_contact"] == 2
    # Another address still gets in.
    assert start_from(app, "10.1.2.3").status_code == 303


def test_a_spoofed_forwarded_for_does_not_dodge_the_ip_limit(sandbox, tmp_path):
    app = limited_app(sandbox, tmp_path, RATE_LIMIT_START_PER_IP="2/minute")
    for n in range(2):
        assert start_from(app, forwarded=f"203.0.113.{n}").status_code == 303
    assert_friendly_429(start_from(app, forwarded="203.0.113.99"))
    assert stats(sandbox)["create_contact"] == 2


def test_a_configured_proxy_is_believed(sandbox, tmp_path):
    app = limited_app(sandbox, tmp_path, RATE_LIMIT_START_PER_IP="1/minute", TRUSTED_PROXY_HOPS=1)
    assert start_from(app, forwarded="203.0.113.1").status_code == 303
    assert_friendly_429(start_from(app, forwarded="203.0.113.1"))
    # The proxy appends the real client last; a client-sent value before it is ignored.
    assert_friendly_429(start_from(app, forwarded="198.51.100.7, 203.0.113.1"))
    assert start_from(app, forwarded="203.0.113.2").status_code == 303


def test_starts_per_widget_are_limited_across_addresses(sandbox, tmp_path):
    app = limited_app(sandbox, tmp_path, RATE_LIMIT_START_PER_WIDGET="3/minute")
    for n in range(3):
        assert start_from(app, f"10.0.0.{n}").status_code == 303
    assert_friendly_429(start_from(app, "10.0.0.99"))
    assert stats(sandbox)["create_contact"] == 3


# --- IPv6 and networks: through a trusted proxy, as in production ------------------------

# One VPS's /64 (the red team's host), and two other sites' networks.
ATTACKER_64 = "2001:db8:abcd:12"
NEIGHBOUR_48 = "2001:db8:abcd"  # the attacker's /48: a hosting customer's allocation


def test_an_ipv6_client_is_counted_per_64_not_per_address(sandbox, tmp_path):
    # The finding: 600 starts in 20 s from 62 addresses of one /64, then the widget's
    # ceiling refused every other visitor. Now the /64 has one client's budget.
    app = limited_app(sandbox, tmp_path, TRUSTED_PROXY_HOPS=1)
    answers = [
        start_from(app, forwarded=f"{ATTACKER_64}:{n:x}::{n + 1:x}").status_code
        for n in range(62)
    ]
    assert answers.count(303) == 10 and answers.count(429) == 52
    assert stats(sandbox)["create_contact"] == 10
    # Everyone else still gets in: another site's IPv6 visitor and an IPv4 one.
    assert start_from(app, forwarded="2001:db8:beef::7").status_code == 303
    assert start_from(app, forwarded="203.0.113.9").status_code == 303
    # The same host written as an IPv4-mapped address is the IPv4 client.
    assert start_from(app, forwarded="::ffff:203.0.113.9").status_code == 303
    for _ in range(8):
        start_from(app, forwarded="203.0.113.9")
    assert_friendly_429(start_from(app, forwarded="::ffff:203.0.113.9"))


def test_the_ipv6_prefix_is_configurable(sandbox, tmp_path):
    app = limited_app(
        sandbox, tmp_path, TRUSTED_PROXY_HOPS=1, RATE_LIMIT_IPV6_PREFIX=128,
        RATE_LIMIT_START_PER_IP="1/minute",
    )
    assert start_from(app, forwarded=f"{ATTACKER_64}::1").status_code == 303
    assert start_from(app, forwarded=f"{ATTACKER_64}::2").status_code == 303  # its own budget
    assert_friendly_429(start_from(app, forwarded=f"{ATTACKER_64}::1"))
    wide = limited_app(
        sandbox, tmp_path / "wide", TRUSTED_PROXY_HOPS=1, RATE_LIMIT_IPV6_PREFIX=56,
        RATE_LIMIT_START_PER_IP="1/minute",
    )
    assert start_from(wide, forwarded="2001:db8:abcd:1200::1").status_code == 303
    assert_friendly_429(start_from(wide, forwarded="2001:db8:abcd:12ff::1"))  # same /56


def test_one_network_cannot_use_up_the_widgets_ceiling(sandbox, tmp_path):
    # Many /64s of one /48 (or many addresses of one /24): each client within its own
    # limit, the network as a whole stops at its ceiling, far below the widget's.
    app = limited_app(
        sandbox, tmp_path, TRUSTED_PROXY_HOPS=1,
        RATE_LIMIT_START_PER_IP="5/minute",
        RATE_LIMIT_START_PER_NETWORK="8/minute",
        RATE_LIMIT_START_PER_WIDGET="12/minute",
    )
    ipv6 = [start_from(app, forwarded=f"{NEIGHBOUR_48}:{n:x}::1").status_code for n in range(30)]
    ipv4 = [start_from(app, forwarded=f"198.51.100.{n}").status_code for n in range(30)]
    assert ipv6.count(303) == 8 and ipv4.count(303) == 4  # the widget had 12 - 8 left
    # Two networks at their ceilings made the widget full: the ceiling is for many
    # networks together, each holding a small share of it.
    assert stats(sandbox)["create_contact"] == 12
    assert_friendly_429(start_from(app, forwarded="2001:db8:beef::7"))
    one_network = limited_app(
        sandbox, tmp_path / "one", TRUSTED_PROXY_HOPS=1,
        RATE_LIMIT_START_PER_IP="5/minute",
        RATE_LIMIT_START_PER_NETWORK="8/minute",
        RATE_LIMIT_START_PER_WIDGET="12/minute",
    )
    for n in range(30):
        start_from(one_network, forwarded=f"{NEIGHBOUR_48}:{n:x}::1")
    for n in range(30):
        start_from(one_network, forwarded=f"{NEIGHBOUR_48}:{n:x}:5::1")
    # However hard one network tries, visitors elsewhere still start chats.
    assert start_from(one_network, forwarded="2001:db8:beef::7").status_code == 303
    assert start_from(one_network, forwarded="192.0.2.1").status_code == 303


def test_the_default_ceilings_keep_one_network_far_below_the_widgets():
    from limits import parse_many

    from webwidget.settings import Settings

    def per_minute(rules: str) -> int:
        return next(i.amount for i in parse_many(rules) if i.GRANULARITY.name == "minute")

    settings = Settings(_env_file=None)
    network = per_minute(settings.RATE_LIMIT_START_PER_NETWORK)
    assert per_minute(settings.RATE_LIMIT_START_PER_WIDGET) >= 20 * network
    assert network >= per_minute(settings.RATE_LIMIT_START_PER_IP)


def test_sends_per_session_are_limited(sandbox, tmp_path):
    app = limited_app(sandbox, tmp_path, RATE_LIMIT_SEND_PER_SESSION="3/minute")
    visitor = Visitor(https_client(app))
    visitor.start()
    for n in range(3):
        assert visitor.send(f"hello {n}").status_code == 303
    assert_friendly_429(visitor.send("one too many"))
    assert_friendly_429(visitor.send("one too many", htmx=True), htmx=True)
    assert stats(sandbox)["send_message"] == 3
    # Another visitor from the same address has a budget of its own.
    other = Visitor(https_client(app))
    other.start()
    assert other.send("hi").status_code == 303


def test_limits_are_shared_through_redis_between_instances(sandbox, tmp_path, redis_url):
    url = redis_url.rsplit("/", 1)[0] + "/14"
    redis.Redis.from_url(url).flushdb()
    apps = [
        limited_app(sandbox, tmp_path / name, store_url=url, RATE_LIMIT_START_PER_IP="2/minute")
        for name in ("one", "two")
    ]
    assert start_from(apps[0]).status_code == 303
    assert start_from(apps[1]).status_code == 303
    assert_friendly_429(start_from(apps[0]))
    assert_friendly_429(start_from(apps[1]))
    client = redis.Redis.from_url(url)
    assert any(key.startswith(b"LIMITS:LIMITER/webwidget/ip:") for key in client.keys())
    client.flushdb()
    client.close()


def test_limit_storage_down_lets_visitors_through_and_says_so(sandbox, tmp_path, caplog):
    from conftest import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = limited_app(
        sandbox, tmp_path, RATE_LIMIT_STORAGE_URL=dead, RATE_LIMIT_START_PER_IP="1/minute"
    )
    with caplog.at_level(logging.WARNING, logger="webwidget"):
        assert [start_from(app).status_code for _ in range(3)] == [303, 303, 303]
    assert stats(sandbox)["create_contact"] == 3
    # Once per outage, not once per request.
    said = [r.getMessage() for r in caplog.records if "rate-limit storage" in r.getMessage()]
    assert said == ["rate-limit storage unavailable (ConnectionError): requests are let"
                    " through unchecked until it answers again"]


def test_a_body_over_the_cap_is_a_friendly_413(sandbox, tmp_path):
    app = limited_app(sandbox, tmp_path)
    visitor = Visitor(https_client(app))
    visitor.start()
    before = stats(sandbox)
    big = {"text": "x" * 40_000}
    page = visitor.send(big["text"])
    assert page.status_code == 413
    assert "That was too much to send at once." in page.get_data(as_text=True)
    fragment = visitor.send(big["text"], htmx=True)
    assert fragment.status_code == 413
    assert fragment.headers["HX-Retarget"] == "#ww-status"
    multipart = visitor.client.post(
        "/w/default/send",
        data=big,
        content_type="multipart/form-data",
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert multipart.status_code == 413
    assert stats(sandbox) == before


def test_a_message_over_the_length_cap_is_a_400(sandbox, tmp_path):
    from webwidget.web.views import MAX_MESSAGE_CHARS

    app = limited_app(sandbox, tmp_path)
    visitor = Visitor(https_client(app))
    visitor.start()
    too_long = visitor.send("x" * (MAX_MESSAGE_CHARS + 1))
    assert too_long.status_code == 400
    assert f"at most {MAX_MESSAGE_CHARS} characters" in too_long.get_data(as_text=True)
    assert stats(sandbox)["send_message"] == 0
    assert visitor.send("x" * MAX_MESSAGE_CHARS).status_code == 303
    assert stats(sandbox)["send_message"] == 1


def test_limits_hold_across_two_gunicorn_workers_with_the_default_store(sandbox, tmp_path):
    """Issue 15 item 3: 30 or more starts from one IP against `10/minute` on 2 workers give
    10."""
    from concurrent.futures import ThreadPoolExecutor

    from test_scale_out import Instance, instance_env

    metrics_dir = tmp_path / "metrics"
    env = instance_env(sandbox.url, "unused", WEB_CONCURRENCY="2", GUNICORN_THREADS="4",
                       PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    del env["SESSION_STORE_URL"]  # the default: SQLite in the instance folder
    instance = Instance("limits", tmp_path, env)
    instance.start()
    try:
        def start(_):
            return requests.post(
                instance.url + "/w/default/start",
                headers={"Sec-Fetch-Site": "same-origin", "Connection": "close"},
                allow_redirects=False, timeout=10,
            ).status_code

        # A gevent worker may take a whole burst by itself: more bursts until both have
        # answered (a worker counting on its own would then let more than 10 through).
        statuses: list[int] = []
        served_by: set[str] = set()
        with ThreadPoolExecutor(max_workers=10) as pool:
            while len(statuses) < 30 or (len(served_by) < 2 and len(statuses) < 300):
                statuses += pool.map(start, range(10))
                served_by = {path.name for path in metrics_dir.glob("counter_*.db")}
    finally:
        instance.stop()
    assert len(served_by) == 2, "both workers must have answered for this to prove anything"
    assert statuses.count(303) == 10, statuses
    assert statuses.count(429) == len(statuses) - 10, statuses
    assert stats(sandbox)["create_contact"] == 10


def test_the_sqlite_limit_storage_shares_one_moving_window_between_processes(tmp_path):
    from limits import RateLimitItemPerMinute
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter

    from webwidget.shared.limit_storage import storage_uri

    uri = storage_uri(tmp_path / "sessions.sqlite3")
    # Two storages on one file stand for two workers.
    one, two = storage_from_string(uri), storage_from_string(uri)
    limit = RateLimitItemPerMinute(3)
    first, second = MovingWindowRateLimiter(one), MovingWindowRateLimiter(two)
    assert [first.hit(limit, "ip:1"), second.hit(limit, "ip:1"), first.hit(limit, "ip:1")] == [
        True, True, True
    ]
    assert not second.hit(limit, "ip:1")
    assert not first.test(limit, "ip:1")
    assert second.hit(limit, "ip:2")  # another key has its own window
    stats = first.get_window_stats(limit, "ip:1")
    assert stats.remaining == 0 and 0 < stats.reset_time - time.time() <= 60
    one.clear(limit.key_for("ip:1"))
    assert second.hit(limit, "ip:1")
    assert one.incr("counter", 60) == 1 and two.incr("counter", 60, 2) == 3
    assert one.get("counter") == 3 and one.get_expiry("counter") > 0
    assert one.check() and one.reset() >= 1 and two.get("counter") == 0


@pytest.mark.parametrize(
    ("language", "says"),
    [("en", r"Please try again in \d+ seconds\."),
     ("de", r"Bitte versuchen Sie es in \d+ Sekunden erneut\."),
     ("ar", r"يُرجى المحاولة مرة أخرى بعد \d+ ثانية")],
)
def test_a_429_says_when_to_try_again_in_the_visitors_language(sandbox, tmp_path, language, says):
    import re

    app = limited_app(sandbox, tmp_path, RATE_LIMIT_START_PER_IP="1/minute")
    client = https_client(app)
    headers = {"Sec-Fetch-Site": "same-origin", "Accept-Language": language}
    assert client.post("/w/default/start", headers=headers).status_code == 303
    for htmx in (False, True):
        refused = https_client(app).post(
            "/w/default/start", headers={**headers, **({"HX-Request": "true"} if htmx else {})}
        )
        assert refused.status_code == 429
        assert re.search(says, refused.get_data(as_text=True)), refused.get_data(as_text=True)
