"""/metrics: closed label values, and a bearer token in production (open in demo mode)."""

from __future__ import annotations

import random
import string

import pytest
from conftest import https_client, make_app

TOKEN = "metrics-token-for-the-scraper-0123"


def series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def test_made_up_methods_share_one_label_value(sandbox, tmp_path):
    app = make_app(sandbox.url, tmp_path, METRICS_TOKEN=TOKEN)
    client = https_client(app)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = client.get("/metrics", headers=auth).get_data(as_text=True)
    rng = random.Random(15)
    for _ in range(300):
        method = "".join(rng.choices(string.ascii_uppercase, k=8))
        assert client.open("/w/default", method=method).status_code < 500
    client.open("/w/default", method="DELETE")
    text = client.get("/metrics", headers=auth).get_data(as_text=True)
    methods = {line.split('method="')[1].split('"')[0]
               for line in series(text, "webwidget_http_requests_total")}
    assert methods <= {"GET", "DELETE", "other"}, methods
    assert 'method="other"' in text
    # 300 requests with random methods add at most two series, not 300.
    grown = (len(series(text, "webwidget_http_requests_total"))
             - len(series(before, "webwidget_http_requests_total")))
    assert grown <= 3
    assert len(text) - len(before) < 4000


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN},
     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}],
)
def test_production_metrics_need_the_bearer_token(sandbox, tmp_path, headers):
    client = https_client(make_app(sandbox.url, tmp_path, METRICS_TOKEN=TOKEN))
    refused = client.get("/metrics", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert "webwidget_" not in refused.get_data(as_text=True)
    allowed = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200
    assert "webwidget_http_requests_total" in allowed.get_data(as_text=True)


def test_production_metrics_are_not_there_without_a_token_setting(sandbox, tmp_path):
    client = https_client(make_app(sandbox.url, tmp_path))
    for headers in ({}, {"Authorization": "Bearer anything-anything-anything"}):
        answer = client.get("/metrics", headers=headers)
        assert answer.status_code == 404
        assert "webwidget_" not in answer.get_data(as_text=True)


def test_demo_metrics_are_open(tmp_path):
    from webwidget import create_app
    from webwidget.settings import Settings

    app = create_app(settings=Settings(_env_file=None), instance_path=str(tmp_path))
    answer = https_client(app).get("/metrics")
    assert answer.status_code == 200
    assert "webwidget_http_requests_total" in answer.get_data(as_text=True)


def test_a_short_metrics_token_stops_start_up():
    from webwidget.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="METRICS_TOKEN"):
        load_settings(_env_file=None, METRICS_TOKEN="short")
