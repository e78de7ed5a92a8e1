"""The boot race: processes building the app at the same instant on a fresh instance
folder, as gunicorn's workers do, must all start (tests/boot_race.py runs the rounds).

Each round makes a fresh folder and releases every process from one barrier. CI runs
a bounded number of rounds; the long run is `python tests/boot_race.py create_app`.
"""

from __future__ import annotations

import pytest
from boot_race import race


@pytest.mark.parametrize(
    ("what", "rounds", "processes"),
    [
        # Without the start-up lock about one round in five of these failed with
        # "database is locked" from `PRAGMA journal_mode=WAL`.
        ("session_store", 40, 16),
        ("sandbox_store", 40, 16),
        # The whole app in demo mode: session store, sandbox state and the demo key (read
        # empty by a worker between another's creating and writing it).
        ("create_app", 12, 4),
    ],
)
def test_processes_booting_together_all_start(what, rounds, processes, tmp_path):
    failures = race(what, rounds, processes, tmp_path)
    assert not failures, f"{len(failures)} of {rounds} rounds failed: {failures[:3]}"
