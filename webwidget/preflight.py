"""Build the app once before gunicorn forks its workers.

Every worker builds its own app, so a bad setting used to stop start-up once per
worker, each time with a full traceback. gunicorn's master calls check_app_builds()
first: a child process builds the app exactly as a worker would (the master itself
keeps no threads, sockets or files of it), and a configuration error ends start-up
there, with one line per setting and exit status 2.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

CONFIG_ERROR_EXIT = 2


def check_app_builds() -> int:
    """0 if the app builds; else print why (one line per setting) and return the status."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: build, report, and leave without running any exit hooks
        os.close(read_end)
        os._exit(_build_and_report(write_end))
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        report = reader.read().decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if report:
        print(report, file=sys.stderr, flush=True)
    return code


def _build_and_report(write_end: int) -> int:
    # The workers log their own start; this trial build should not log a second one.
    logging.disable(logging.CRITICAL)
    try:
        from . import create_app
        from .settings import SettingsError

        try:
            create_app()
        except SettingsError as error:
            os.write(write_end, error.report().encode())
            return CONFIG_ERROR_EXIT
        return 0
    except BaseException:  # noqa: B036 - not a setting: the traceback is the useful part
        os.write(write_end, traceback.format_exc().encode())
        return 1
    finally:
        os.close(write_end)
