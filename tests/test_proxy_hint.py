"""Behind a proxy with TRUSTED_PROXY_HOPS unset, the first forwarded request says so in
the log, once: every visitor would otherwise share the proxy's per-IP start limit."""

from __future__ import annotations

import logging

from conftest import https_client, make_app

FORWARDED = {"X-Forwarded-For": "203.0.113.7"}


def hints(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "TRUSTED_PROXY_HOPS" in r.getMessage()]


def test_the_first_forwarded_request_warns_once(sandbox, tmp_path, caplog):
    client = https_client(make_app(sandbox, tmp_path))
    with caplog.at_level(logging.WARNING):
        assert client.get("/healthz").status_code == 200
        assert hints(caplog) == []  # a direct request is no sign of a proxy
        for _ in range(3):
            assert client.get("/healthz", headers=FORWARDED).status_code == 200
    assert len(hints(caplog)) == 1
    assert "TRUSTED_PROXY_HOPS is 0" in hints(caplog)[0]


def test_no_warning_once_the_proxy_is_trusted(sandbox, tmp_path, caplog):
    client = https_client(make_app(sandbox, tmp_path, TRUSTED_PROXY_HOPS=1))
    with caplog.at_level(logging.WARNING):
        assert client.get("/healthz", headers=FORWARDED).status_code == 200
    assert hints(caplog) == []
