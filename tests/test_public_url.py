"""PUBLIC_URL: our origin comes from the setting, not from Host; other hosts are refused."""

from __future__ import annotations

import pytest
from conftest import https_client, make_app, stats

PUBLIC = "https://chat.example"
TOKEN = "metrics-token-for-the-scraper-0123"


def start(client, base_url, **headers):
    return client.post("/w/default/start", base_url=base_url,
                       data={"page_url": f"{base_url}/account"}, headers=headers)


@pytest.mark.parametrize("base_url", ["https://evil.example", "https://chat.example.evil",
                                      "https://10.0.0.5:8000", "https://chat.example:8443"])
def test_with_public_url_other_hosts_are_refused_before_any_view(sandbox, tmp_path, base_url):
    client = https_client(make_app(sandbox, tmp_path, PUBLIC_URL=PUBLIC, METRICS_TOKEN=TOKEN))
    page = client.get("/w/default", base_url=base_url)
    assert page.status_code == 400
    assert "could not be understood" in page.get_data(as_text=True)  # the friendly page
    assert start(client, base_url, **{"Sec-Fetch-Site": "same-origin"}).status_code == 400
    assert stats(sandbox)["create_contact"] == 0
    # Probes and scrapers address an instance by its IP.
    assert client.get("/healthz", base_url=base_url).status_code == 200
    metrics = client.get("/metrics", base_url=base_url,
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert metrics.status_code == 200


@pytest.mark.parametrize("base_url", ["https://chat.example", "https://chat.example:443",
                                      "https://CHAT.example"])
def test_the_public_host_is_served(sandbox, tmp_path, base_url):
    client = https_client(make_app(sandbox, tmp_path, PUBLIC_URL=PUBLIC))
    assert client.get("/w/default", base_url=base_url).status_code == 200


def test_without_fetch_metadata_the_origin_must_be_the_public_url(sandbox, tmp_path):
    client = https_client(make_app(sandbox, tmp_path, PUBLIC_URL=PUBLIC))
    ours = client.post("/w/default/start", base_url=PUBLIC, headers={"Origin": PUBLIC})
    assert ours.status_code == 303
    # Behind a proxy that speaks http to us, the origin is still the public https one.
    behind = https_client(make_app(sandbox, tmp_path / "b", PUBLIC_URL=PUBLIC))
    plain = behind.post("/w/default/start", base_url="http://chat.example",
                        headers={"Origin": PUBLIC})
    assert plain.status_code == 303


def test_a_forged_host_cannot_vouch_for_its_own_page_url(sandbox, tmp_path):
    """The attack PUBLIC_URL closes: Host and page_url both on the attacker's origin."""
    forged = "https://evil.example"
    client = https_client(make_app(sandbox, tmp_path, PUBLIC_URL=PUBLIC))
    answer = start(client, forged, Origin=forged)
    assert answer.status_code == 400
    assert stats(sandbox)["create_contact"] == 0


def test_public_url_must_be_an_origin():
    from webwidget.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="PUBLIC_URL"):
        load_settings(_env_file=None, PUBLIC_URL="https://chat.example/widget")
    assert load_settings(_env_file=None, PUBLIC_URL="https://Chat.Example:443/").PUBLIC_URL == (
        PUBLIC
    )
