"""Build the app once before gunicorn forks its workers.

Every worker builds its own app, so a bad setting used to stop start-up once per
worker, each time with a full traceback. gunicorn's master calls check_app_builds()
first: a child process builds the app exactly as a worker would (the master itself
keeps no threads, sockets or files of it), and a configuration error ends start-up
there, with one line per setting and exit status 2. Warnings about the settings
(variables that look like ours but are ignored) come from this trial build too, once,
as JSON log lines; the workers then leave them out.
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
        print(_as_json_lines(report, code), file=sys.stderr, flush=True)
    if code == 0:
        from . import SETTINGS_CHECKED

        os.environ[SETTINGS_CHECKED] = "1"  # the workers, forked from here, inherit it
    return code


def _record(level: int, message: str, error: str | None = None) -> str:
    """One line of the app's JSON log."""
    from .ops.logs import JsonFormatter

    record = logging.makeLogRecord({"name": "webwidget", "levelno": level,
                                    "levelname": logging.getLevelName(level), "msg": message})
    record.exc_text = error
    return JsonFormatter().format(record)


def _warning_lines(lines: list[str]) -> str:
    """`lines` as the app's JSON WARNING log lines, one per line."""
    return "".join(_record(logging.WARNING, line) + "\n" for line in lines)


def _as_json_lines(report: str, code: int) -> str:
    """The child's report as gunicorn's log is written: one JSON object per line (a
    traceback is one object, its text in `error`)."""
    if code not in (0, CONFIG_ERROR_EXIT):
        return _record(logging.CRITICAL, "webwidget cannot start: the app failed to build",
                       report.strip())
    return "\n".join(
        line if line.startswith("{") else _record(logging.CRITICAL, line)
        for line in report.splitlines() if line.strip()
    )


def _build_and_report(write_end: int) -> int:
    # The workers log their own start; this trial build should not log a second one.
    logging.disable(logging.CRITICAL)
    try:
        from .app import create_app, settings_warnings
        from .current import widgets_of
        from .settings import SettingsError, lookalike_warnings

        try:
            app = create_app()
        except SettingsError as error:
            warnings = _warning_lines(lookalike_warnings(os.environ))
            os.write(write_end, (warnings + error.report()).encode())
            return CONFIG_ERROR_EXIT
        warnings = _warning_lines(settings_warnings(widgets_of(app)))
        os.write(write_end, warnings.rstrip("\n").encode())
        return 0
    except BaseException:  # noqa: B036 - not a setting: the traceback is the useful part
        os.write(write_end, traceback.format_exc().encode())
        return 1
    finally:
        os.close(write_end)
