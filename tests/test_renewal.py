"""Widget-token renewal: one upstream renewal per expired token, whatever the number of
tabs, workers and instances that meet it at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import advance, faults, heal, https_client, make_app, stats


@pytest.mark.parametrize("store_url", ["sqlite", "redis"], indirect=True)
def test_tabs_on_two_workers_renew_an_expired_token_once(sandbox, store_url, tmp_path):
    # Two apps on one store stand for two workers (or instances) of one deployment.
    apps = [make_app(sandbox, tmp_path / name, store_url=store_url) for name in ("one", "two")]
    started = https_client(apps[0]).post(
        "/w/default/start", headers={"Sec-Fetch-Site": "same-origin"}
    )
    handle = started.headers["X-Widget-Session"]
    advance(sandbox, 4000)
    # A slow renewal, so that every tab meets the expired token before it is replaced.
    faults(sandbox, latency_ms=400, operations=["create_conversation"])
    before = stats(sandbox)["create_conversation"]

    def tab(n: int):
        client = https_client(apps[n % 2])
        return client.get("/w/default", headers={"X-Widget-Session": handle})

    with ThreadPoolExecutor(max_workers=6) as pool:
        pages = list(pool.map(tab, range(6)))
    heal(sandbox)
    assert [page.status_code for page in pages] == [200] * 6
    assert all('role="log"' in page.get_data(as_text=True) for page in pages)
    assert stats(sandbox)["create_conversation"] - before == 1
    # The renewed token is kept: the next views renew nothing.
    for app in apps:
        assert https_client(app).get(
            "/w/default", headers={"X-Widget-Session": handle}
        ).status_code == 200
    assert stats(sandbox)["create_conversation"] - before == 1


def test_a_failed_renewal_frees_the_lease_for_the_next_try():
    from webwidget.chatcaptain.errors import UpstreamUnavailable
    from webwidget.renewal import MemoryBackend, Renewals

    renewals = Renewals(MemoryBackend())

    def down() -> str:
        raise UpstreamUnavailable("down")

    with pytest.raises(UpstreamUnavailable):
        renewals.renew_once("k", down)
    assert renewals.renew_once("k", lambda: "wt_new") == "wt_new"
    assert renewals.renew_once("k", lambda: "wt_other") == "wt_new"  # published, reused
