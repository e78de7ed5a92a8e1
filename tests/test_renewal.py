"""Widget-token renewal: one upstream renewal per expired token, whatever the number of
tabs, workers and instances that meet it at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import StoppedClock, advance, faults, heal, https_client, make_app, stats


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
    from webwidget.renewal import Renewals
    from webwidget.shared import MemoryState

    renewals = Renewals(MemoryState())

    def down() -> str:
        raise UpstreamUnavailable("down")

    with pytest.raises(UpstreamUnavailable):
        renewals.renew_once("k", down)
    assert renewals.renew_once("k", lambda: "wt_new") == "wt_new"
    assert renewals.renew_once("k", lambda: "wt_other") == "wt_new"  # published, reused


# --- the single flight itself, on the memory backend: no sandbox, no redis-server ---------


class _Waiting:
    """A monotonic clock and a pause that moves it: what happens while a request waits for
    another's renewal is scripted by `during_pause`."""

    def __init__(self, during_pause=lambda: None) -> None:
        self.now = 0.0
        self.pauses = 0
        self.during_pause = during_pause

    def monotonic(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses += 1
        self.now += seconds
        self.during_pause()


def _renewals(state, waiting: _Waiting | None = None):
    from webwidget.renewal import Renewals

    waiting = waiting or _Waiting()
    renewals = Renewals(state, monotonic=waiting.monotonic, pause=waiting.pause)
    outcomes: list[str] = []
    renewals.observe = outcomes.append
    return renewals, outcomes


def _refuse() -> str:
    raise AssertionError("renewed although another request holds the lease")


def test_the_first_request_renews_and_the_next_adopts_its_token():
    from webwidget.shared import MemoryState

    renewals, outcomes = _renewals(MemoryState())
    assert renewals.renew_once("k", lambda: "wt_new") == "wt_new"
    assert renewals.renew_once("k", _refuse) == "wt_new"
    assert outcomes == ["renewed", "shared"]


def test_a_request_waits_for_the_lease_holders_token_and_adopts_it():
    from webwidget.shared import MemoryState

    state = MemoryState()
    state.add("k:lease", "another request", 15)
    # The other request publishes its token while this one waits.
    waiting = _Waiting(lambda: waiting.pauses == 3 and state.set("k:token", "wt_theirs", 300))
    renewals, outcomes = _renewals(state, waiting)
    assert renewals.renew_once("k", _refuse) == "wt_theirs"
    assert waiting.pauses == 3
    assert outcomes == ["shared"]


def test_a_waiting_request_only_reads_while_the_lease_is_held():
    from webwidget.shared import MemoryState

    class Counting(MemoryState):
        adds = 0

        def add(self, key, value, ttl):
            Counting.adds += 1
            return super().add(key, value, ttl)

    state = Counting()
    state.add("k:lease", "another request", 15)
    Counting.adds = 0
    waiting = _Waiting(lambda: waiting.pauses == 5 and state.set("k:token", "wt_theirs", 300))
    renewals, _ = _renewals(state, waiting)
    assert renewals.renew_once("k", _refuse) == "wt_theirs"
    # Writes while waiting took SQLite's write lock from the holder's publish.
    assert Counting.adds == 0


def test_a_renewal_that_cannot_be_published_frees_its_lease():
    from webwidget.shared import MemoryState, SharedStateUnavailable

    class Unpublished(MemoryState):
        def set(self, key, value, ttl):
            raise SharedStateUnavailable("locked")

    state = Unpublished()
    renewals, outcomes = _renewals(state)
    assert renewals.renew_once("k", lambda: "wt_new") == "wt_new"
    assert outcomes == ["renewed"]
    # A waiter renews itself rather than wait out the lease for a token that never comes.
    assert state.get("k:lease") is None


def test_a_lease_holder_that_never_publishes_times_the_waiter_out():
    from webwidget.chatcaptain.errors import UpstreamTimeout
    from webwidget.shared import MemoryState

    state = MemoryState()
    state.add("k:lease", "a stuck request", 15)
    renewals, outcomes = _renewals(state)
    with pytest.raises(UpstreamTimeout):
        renewals.renew_once("k", _refuse)
    assert outcomes == ["failed"]


def test_a_dead_holders_lease_runs_out_and_the_next_request_renews():
    from webwidget.shared import MemoryState

    clock = StoppedClock()
    state = MemoryState(clock)
    state.add("k:lease", "a request that died", 15)
    clock.advance(15.5)
    renewals, outcomes = _renewals(state)
    assert renewals.renew_once("k", lambda: "wt_new") == "wt_new"
    assert outcomes == ["renewed"]


def test_a_request_that_missed_the_token_by_a_moment_does_not_renew_again():
    from webwidget.shared import MemoryState

    class Racing(MemoryState):
        """The first request renews and publishes between the second's look for a token
        and its try for the lease."""

        raced = False

        def get(self, key):
            found = super().get(key)
            if key == "k:token" and not Racing.raced:
                Racing.raced = True
                assert renewals.renew_once("k", lambda: "wt_first") == "wt_first"
            return found

    renewals, outcomes = _renewals(Racing())
    assert renewals.renew_once("k", _refuse) == "wt_first"
    assert outcomes == ["renewed", "shared"]


class _Unavailable:
    """Shared state that never answers (Redis down, the SQLite file locked)."""

    def __getattr__(self, name):
        def fail(*args):
            from webwidget.shared import SharedStateUnavailable

            raise SharedStateUnavailable("down")

        return fail


def test_without_shared_state_the_visitor_still_gets_a_renewed_token():
    renewals, outcomes = _renewals(_Unavailable())
    assert renewals.renew_once("k", lambda: "wt_new") == "wt_new"
    assert outcomes == ["renewed"]
