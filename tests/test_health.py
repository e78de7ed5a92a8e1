"""Readiness that means ready: a wrong upstream path fails /readyz (503) through a probe
that changes nothing upstream; refused credentials make it `degraded`, naming the
setting to check in the body and the log, never a secret. Details only with the
METRICS_TOKEN bearer (or in demo mode); an anonymous caller sees the status alone."""

from __future__ import annotations

import logging

from conftest import CHANNEL_TOKEN, MovableClock, Visitor, https_client, make_app, stats

METRICS_TOKEN = "metrics-token-for-the-scraper-0123"
BEARER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def ready(app, **headers):
    answer = https_client(app).get("/readyz", headers=headers)
    return answer.status_code, answer.get_json(), answer.get_data(as_text=True)


def test_ready_with_details_for_the_bearer_and_the_status_alone_for_anyone(sandbox, tmp_path):
    app = make_app(sandbox, tmp_path, METRICS_TOKEN=METRICS_TOKEN)
    assert ready(app)[:2] == (200, {"status": "ready"})
    status, body, _ = ready(app, **BEARER)
    assert status == 200
    assert body["checks"] == {"session_store": "ok", "upstream": "ok"}
    assert "hints" not in body
    assert ready(app, Authorization="Bearer wrong-token-of-some-length")[1] == {"status": "ready"}


def test_a_base_url_ending_in_v1_fails_readiness_and_says_which_setting(
    sandbox, tmp_path, caplog
):
    app = make_app(sandbox.url + "/v1", tmp_path, METRICS_TOKEN=METRICS_TOKEN)
    before = stats(sandbox)
    with caplog.at_level(logging.WARNING):
        status, body, text = ready(app, **BEARER)
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["upstream"] == "not_found"
    assert any("CHATCAPTAIN_BASE_URL" in hint for hint in body["hints"])
    assert sandbox.url not in text and "127.0.0.1" not in text
    assert any("CHATCAPTAIN_BASE_URL" in record.getMessage() for record in caplog.records)
    # Anonymous: the status alone.
    assert ready(app)[:2] == (503, {"status": "unavailable"})
    # The probe created nothing upstream.
    after = stats(sandbox)
    assert after.get("create_contact", 0) == before.get("create_contact", 0)
    assert after.get("create_conversation", 0) == before.get("create_conversation", 0)


def test_an_unknown_chatbot_id_fails_readiness(sandbox, tmp_path):
    app = make_app(sandbox, tmp_path, METRICS_TOKEN=METRICS_TOKEN,
                   CHATCAPTAIN_CHATBOT_ID="no-such-bot")
    status, body, _ = ready(app, **BEARER)
    assert status == 503 and body["checks"]["upstream"] == "not_found"


def test_the_probe_is_one_get_per_worker_every_ten_seconds(sandbox, tmp_path):
    clock = MovableClock()
    app = make_app(sandbox, tmp_path, clock=clock)
    before = stats(sandbox).get("list_messages", 0)
    for _ in range(5):
        assert ready(app)[0] == 200
    assert stats(sandbox).get("list_messages", 0) == before + 1
    clock.advance(11)
    assert ready(app)[0] == 200
    assert stats(sandbox).get("list_messages", 0) == before + 2


def test_a_refused_channel_token_makes_readiness_degraded_and_names_the_setting(
    sandbox, tmp_path, caplog
):
    wrong = "channel_token_that_is_wrong_123"
    app = make_app(sandbox, tmp_path, METRICS_TOKEN=METRICS_TOKEN,
                   CHATCAPTAIN_CHANNEL_TOKEN=wrong)
    assert ready(app)[1] == {"status": "ready"}  # nothing refused yet
    with caplog.at_level(logging.WARNING):
        Visitor(https_client(app)).start()  # the upstream answers 401 "Invalid channel token."
    status, body, text = ready(app, **BEARER)
    assert status == 200  # the process is fine; its credentials are not
    assert body["status"] == "degraded"
    assert body["checks"]["upstream"] == "credentials_rejected"
    assert any("CHATCAPTAIN_CHANNEL_TOKEN" in hint for hint in body["hints"])
    assert wrong not in text and CHANNEL_TOKEN not in text
    logged = [record.getMessage() for record in caplog.records]
    assert any("CHATCAPTAIN_CHANNEL_TOKEN" in line and "status=401" in line for line in logged)
    assert not any(wrong in line for line in logged)
    assert ready(app)[1] == {"status": "degraded"}


def test_demo_mode_shows_the_details_to_anyone(tmp_path, monkeypatch):
    monkeypatch.delenv("CHATCAPTAIN_BASE_URL", raising=False)
    from webwidget import create_app
    from webwidget.settings import Settings

    app = create_app(settings=Settings(_env_file=None), instance_path=str(tmp_path))
    status, body, _ = ready(app)
    assert status == 200
    assert body["checks"] == {"session_store": "ok", "upstream": "ok"}
