"""gunicorn's logs as JSON: the access log one valid object per line whatever the request
held, and the error log (start, workers, signals, tracebacks) in the app's own format.

gunicorn fills `access_log_format` with raw values: PATH_INFO is percent-decoded, so a
path with `%0a` split a record in two, and a backslash or `%5C%22` made the line invalid
JSON (gunicorn only escapes `"`). Every value here is escaped as a JSON string body
(quotes, backslashes, control characters, non-ASCII), so the format in gunicorn.conf.py
stays a plain JSON template.

gunicorn's error log ("Starting gunicorn", "Booting worker", a worker's traceback) was
plain text on the same stream as the app's JSON: here each record is the app's JSON
object (logs.JsonFormatter, a traceback inside it as one string), redacted like the
app's, on every (re)configuration gunicorn runs.
"""

from __future__ import annotations

import json

from gunicorn.glogging import Logger, SafeAtoms

from .logs import JsonFormatter, RedactingFilter


def json_string_body(value: str) -> str:
    """`value` escaped to sit between the quotes of a JSON string."""
    return json.dumps(value)[1:-1]


class JsonSafeAtoms(SafeAtoms):
    """gunicorn's atoms (case-insensitive, `-` when missing), each escaped for JSON."""

    def __init__(self, atoms: dict) -> None:
        dict.__init__(self)
        for key, value in atoms.items():
            self[key] = json_string_body(value) if isinstance(value, str) else value


class JsonAccessLogger(Logger):
    """gunicorn's logger, with access-log atoms that cannot break a JSON line."""

    atoms_wrapper_class = JsonSafeAtoms

    def setup(self, cfg) -> None:
        """gunicorn's own set-up, then its error log's handlers write the app's JSON."""
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
