"""Processes that build the app at the same instant on a fresh instance folder, as
gunicorn's workers do. Used by tests/test_startup_lock.py, and runnable for long runs:

    .venv/bin/python tests/boot_race.py create_app --rounds 100 --processes 100

It has no pytest import: every child process imports this module, and should be cheap.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

TARGETS = ("session_store", "sandbox_store", "create_app")


def boot(what: str, folder: str, barrier, results) -> None:
    """One process: wait for the others, then set up `what` in the shared folder."""
    try:
        if what == "create_app":
            from webwidget.app import create_app

            os.environ.pop("CHATCAPTAIN_BASE_URL", None)  # demo mode: all three shared files
            os.environ["WEBWIDGET_DEMO"] = "1"
            barrier.wait(timeout=120)
            create_app(instance_path=folder)
        elif what == "session_store":
            from webwidget.sessions.sqlite_store import SQLiteSessionStore

            barrier.wait(timeout=120)
            SQLiteSessionStore(Path(folder) / "sessions.sqlite3").ping()
        else:
            from webwidget.sandbox.store import Store

            barrier.wait(timeout=120)
            Store(str(Path(folder) / "sandbox.sqlite3")).close()
        results.put("ok")
    except BaseException as error:  # noqa: B036 - every failure must reach the parent
        results.put(f"{type(error).__name__}: {error}")


def race(what: str, rounds: int, processes: int, base: Path) -> list[str]:
    """Run `rounds` rounds of `processes` processes; one line per failed round."""
    # forkserver: children fork from a single-threaded server that imported webwidget
    # once, like gunicorn's workers from their master, and never fork pytest's threads.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["webwidget", "webwidget.sandbox"])
    failures = []
    for number in range(rounds):
        folder = base / f"round-{number}"
        folder.mkdir()
        barrier = context.Barrier(processes)
        results = context.Queue()
        children = [
            context.Process(target=boot, args=(what, str(folder), barrier, results))
            for _ in range(processes)
        ]
        for child in children:
            child.start()
        outcomes = [results.get(timeout=300) for _ in children]
        for child in children:
            child.join(timeout=60)
        bad = sorted({outcome for outcome in outcomes if outcome != "ok"})
        if bad:
            failures.append(f"round {number}: {bad}")
    return failures


def main() -> int:
    """Run the race from the command line and print a one-line verdict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=TARGETS)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--processes", type=int, default=100)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as base:
        failures = race(args.what, args.rounds, args.processes, Path(base))
    for line in failures:
        print(line)
    print(
        f"{args.what}: {len(failures)} of {args.rounds} rounds of {args.processes} processes"
        f" failed ({time.monotonic() - started:.0f} s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
