"""The upstream's circuit breaker on its own, with a clock the test moves."""

from __future__ import annotations

import threading

import pytest
from conftest import StoppedClock

from webwidget.breaker import Breaker, BreakerOpen


class Down(Exception):
    """A failure that counts (the service is down)."""


class Refused(Exception):
    """An answer that does not count (the service is up and said no)."""


def fail(error: type[Exception] = Down):
    def call():
        raise error("no")

    return call


@pytest.fixture
def clock():
    return StoppedClock(1000.0)


@pytest.fixture
def changes():
    return []


@pytest.fixture
def breaker(clock, changes):
    return Breaker(fail_max=3, reset_timeout=10, counts=lambda e: isinstance(e, Down),
                   clock=clock, on_state=changes.append)


def trip(breaker: Breaker) -> None:
    for _ in range(breaker.fail_max):
        with pytest.raises(Down):
            breaker.call(fail())


def test_it_opens_after_fail_max_failures_in_a_row_and_then_fails_fast(breaker, changes):
    for _ in range(2):
        with pytest.raises(Down):
            breaker.call(fail())
    assert breaker.state == "closed"
    with pytest.raises(Down):  # the failure that trips it is the caller's own error
        breaker.call(fail())
    assert breaker.state == "open" and changes == ["open"]
    called = []
    with pytest.raises(BreakerOpen):
        breaker.call(lambda: called.append(1))
    assert called == []


def test_a_success_or_a_refusal_resets_the_count(breaker):
    for between in (lambda: "ok", fail(Refused)):
        for _ in range(2):
            with pytest.raises(Down):
                breaker.call(fail())
        try:
            breaker.call(between)
        except Refused:
            pass
        with pytest.raises(Down):
            breaker.call(fail())
        assert breaker.state == "closed"
        breaker.call(lambda: "ok")


def test_after_the_reset_timeout_one_probe_closes_it(breaker, clock, changes):
    trip(breaker)
    clock.now += 9.9
    with pytest.raises(BreakerOpen):
        breaker.call(lambda: "ok")
    clock.now += 0.1
    assert breaker.call(lambda: "probe") == "probe"
    assert breaker.state == "closed"
    assert changes == ["open", "half-open", "closed"]


def test_a_failed_probe_opens_it_for_another_timeout(breaker, clock, changes):
    trip(breaker)
    clock.now += 10
    with pytest.raises(Down):
        breaker.call(fail())
    assert breaker.state == "open"
    clock.now += 9
    with pytest.raises(BreakerOpen):
        breaker.call(lambda: "ok")
    clock.now += 1
    assert breaker.call(lambda: "ok") == "ok"
    assert changes == ["open", "half-open", "open", "half-open", "closed"]


def test_a_refused_probe_still_says_the_service_is_up(breaker, clock):
    trip(breaker)
    clock.now += 10
    with pytest.raises(Refused):
        breaker.call(fail(Refused))
    assert breaker.state == "closed"


def test_while_the_probe_is_in_flight_every_other_call_fails_fast(breaker, clock):
    trip(breaker)
    clock.now += 10
    entered, release = threading.Event(), threading.Event()

    def slow_probe():
        entered.set()
        release.wait(5)
        return "probed"

    results = []
    probe = threading.Thread(target=lambda: results.append(breaker.call(slow_probe)))
    probe.start()
    assert entered.wait(5)
    with pytest.raises(BreakerOpen):
        breaker.call(lambda: "second")
    assert breaker.state == "half-open"
    release.set()
    probe.join(5)
    assert results == ["probed"] and breaker.state == "closed"


def test_calls_run_outside_the_lock_so_many_are_in_flight_at_once(breaker):
    inside = threading.Barrier(4, timeout=5)  # broken unless all four are inside together
    results = []

    def call():
        results.append(breaker.call(lambda: inside.wait() >= 0))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [True] * 4


def test_a_call_that_began_before_it_opened_does_not_close_it(breaker, clock):
    entered, release = threading.Event(), threading.Event()

    def slow_success():
        entered.set()
        release.wait(5)
        return "late"

    late = threading.Thread(target=lambda: breaker.call(slow_success))
    late.start()
    assert entered.wait(5)
    trip(breaker)
    release.set()
    late.join(5)
    assert breaker.state == "open"


def test_only_the_probe_knows_it_is_the_probe(breaker, clock):
    seen = []
    breaker.call(lambda: seen.append(breaker.probing_here))
    trip(breaker)
    clock.now += 10
    breaker.call(lambda: seen.append(breaker.probing_here))
    breaker.call(lambda: seen.append(breaker.probing_here))
    assert seen == [False, True, False]
    assert not breaker.probing_here
