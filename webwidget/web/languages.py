"""The visitor's language: the page's parameter, else Accept-Language, else the widget's."""

from __future__ import annotations

import re

from werkzeug.datastructures import LanguageAccept

PRIMARY_TAG = re.compile(r"^([A-Za-z]{2})(?:[-_][A-Za-z0-9]{1,8})*$")


def upstream_code(tag: str | None) -> str | None:
    """`de-AT` -> `DE`: the upstream takes two-letter upper-case codes."""
    if not tag:
        return None
    match = PRIMARY_TAG.match(tag.strip())
    return match.group(1).upper() if match else None


def choose_language(param: str | None, accept: LanguageAccept, default: str) -> str:
    """The first usable of the page parameter, the browser's preference, the default."""
    code = upstream_code(param)
    if code:
        return code
    for tag, _quality in accept:
        code = upstream_code(tag)
        if code:
            return code
    return default
