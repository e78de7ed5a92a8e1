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
    from webwidget.app import create_app
    from webwidget.settings import Settings

    app = create_app(settings=Settings(_env_file=None), instance_path=str(tmp_path))
    answer = https_client(app).get("/metrics")
    assert answer.status_code == 200
    assert "webwidget_http_requests_total" in answer.get_data(as_text=True)


def test_a_short_metrics_token_stops_start_up():
    from webwidget.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="METRICS_TOKEN"):
        load_settings(_env_file=None, METRICS_TOKEN="short")


def scrape(app) -> str:
    return https_client(app).get(
        "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    ).get_data(as_text=True)


def sample(text: str, line_start: str) -> float:
    """The value of the one sample whose line starts with `line_start`."""
    (value,) = [line.rsplit(" ", 1)[1] for line in text.splitlines()
                if line.startswith(line_start + " ")]
    return float(value)


def test_rate_limit_rejections_and_fail_opens_are_counted(sandbox, tmp_path):
    from conftest import Visitor, free_port

    app = make_app(sandbox, tmp_path, METRICS_TOKEN=TOKEN, RATE_LIMIT_START_PER_IP="1/minute")
    assert [Visitor(https_client(app)).start().status_code for _ in range(3)] == [303, 429, 429]
    assert sample(scrape(app), 'webwidget_rate_limit_rejections_total{limit="per_ip"}') == 2

    dead = f"redis://127.0.0.1:{free_port()}/0"
    down = make_app(sandbox, tmp_path / "down", METRICS_TOKEN=TOKEN,
                    RATE_LIMIT_STORAGE_URL=dead, RATE_LIMIT_START_PER_IP="1/minute")
    assert [Visitor(https_client(down)).start().status_code for _ in range(3)] == [303] * 3
    # Each start checks three limits (per IP, per network, per widget): nine checks skipped.
    assert sample(scrape(down), "webwidget_rate_limit_fail_open_total") == 9


def test_session_store_errors_are_counted(sandbox, tmp_path):
    from conftest import Visitor, free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = make_app(sandbox, tmp_path, store_url=dead, METRICS_TOKEN=TOKEN)
    assert Visitor(https_client(app)).start().status_code == 503
    failed = [line for line in scrape(app).splitlines()
              if line.startswith("webwidget_session_store_errors_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in failed) >= 1, failed


def test_process_figures_and_the_build_are_there(sandbox, tmp_path):
    import os

    text = scrape(make_app(sandbox, tmp_path, METRICS_TOKEN=TOKEN))
    pid = os.getpid()
    assert sample(text, f'webwidget_process_cpu_seconds_total{{pid="{pid}"}}') > 0
    assert sample(text, f'webwidget_process_resident_memory_bytes{{pid="{pid}"}}') > 10e6
    assert sample(text, f'webwidget_process_open_fds{{pid="{pid}"}}') > 3
    assert 'webwidget_build_info{python="' in text and 'version="' in text


def test_token_renewals_are_counted(sandbox, tmp_path):
    from conftest import Visitor, advance

    app = make_app(sandbox, tmp_path, METRICS_TOKEN=TOKEN)
    visitor = Visitor(https_client(app))
    visitor.start()
    advance(sandbox, 4000)  # the widget token expires upstream
    assert visitor.get("/w/default").status_code == 200
    assert sample(scrape(app), 'webwidget_token_renewals_total{outcome="renewed"}') == 1
