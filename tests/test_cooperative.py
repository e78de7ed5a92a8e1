"""CPU-heavy work off a gevent worker's event loop (webwidget/cooperative.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

from webwidget.cooperative import is_cooperative, off_the_event_loop


def test_without_gevent_a_job_runs_where_it_is_called():
    assert not is_cooperative()  # the test process is not monkey-patched
    assert off_the_event_loop(threading.get_ident) == threading.get_ident()


def test_under_gevent_the_event_loop_serves_others_while_a_job_computes():
    # The job computes until a greenlet has had 50 turns: on the event loop's own thread
    # it would never end (the greenlet gets no turn), so the child would time out.
    child = textwrap.dedent("""
        from gevent import monkey
        monkey.patch_all()
        import gevent, threading
        from webwidget.cooperative import is_cooperative, off_the_event_loop

        assert is_cooperative()
        turns = []

        def other_request():
            while len(turns) < 50:
                turns.append(1)
                gevent.sleep(0)

        def job():
            spins = 0
            while len(turns) < 50:
                spins += 1
            return threading.get_native_id()

        other = gevent.spawn(other_request)
        ran_on = off_the_event_loop(job)
        other.join()
        assert ran_on != threading.get_native_id(), "the job ran on the event loop's thread"

        def broken():
            raise ValueError("bad list")

        try:
            off_the_event_loop(broken)
        except ValueError as exc:
            print("raised", exc)
        print("turns", len(turns))
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["raised bad list", "turns 50"]
