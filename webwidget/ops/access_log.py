"""gunicorn's access log as one valid JSON object per line, whatever the request held.

gunicorn fills `access_log_format` with raw values: PATH_INFO is percent-decoded, so a
path with `%0a` split a record in two, and a backslash or `%5C%22` made the line invalid
JSON (gunicorn only escapes `"`). Every value here is escaped as a JSON string body
(quotes, backslashes, control characters, non-ASCII), so the format in gunicorn.conf.py
stays a plain JSON template.
"""

from __future__ import annotations

import json

from gunicorn.glogging import Logger, SafeAtoms


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
