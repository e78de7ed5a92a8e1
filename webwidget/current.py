"""Which widget a request is for: resolved once, when its URL is matched.

A `<widget>` route's id is taken out of the view's arguments and looked up here before
any before_request hook runs; the configured widget (or None for an id no widget has) is
kept in `g.widget`. Views ask `requested_widget()` (the 404 for an unknown id); the
language, the theme, the template overlay, the rate-limit key and the embed checks ask
`current_widget()`. Nothing else reads the id from the URL again, except
`widget_id_in_path` for what runs before routing (sessions) or without it (a 405).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import Flask, abort, current_app, g, has_request_context, request

from .widgets import WidgetConfig

# The app's widgets by id (create_app puts them there).
WIDGETS = "webwidget.widgets"
# A widget route's first segment after /w/: what routing will take as `<widget>`.
_WIDGET_PATH = re.compile(r"^/w/([^/]+)")


def init_app(app: Flask) -> None:
    """Resolve each request's widget as soon as its route is known."""

    @app.url_value_preprocessor
    def _resolve_widget(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if values and "widget" in values:
            g.widget = widgets_of(app).get(values.pop("widget"))


def widgets_of(app: Flask | None = None) -> Mapping[str, WidgetConfig]:
    """The app's configured widgets by id (the current app's by default)."""
    widgets: Mapping[str, WidgetConfig] = (app or current_app).extensions[WIDGETS]
    return widgets


def current_widget() -> WidgetConfig | None:
    """The configured widget this request addresses; None outside widget routes and for
    an id no widget has (its view answers 404)."""
    if not has_request_context():
        return None
    widget: WidgetConfig | None = g.get("widget")
    return widget


def requested_widget() -> WidgetConfig:
    """The widget a `<widget>` view serves; the 404 for an id no widget has."""
    widget = current_widget()
    if widget is None:
        abort(404)
    return widget


def widget_id_in_path(path: str | None = None) -> str | None:
    """The id in a `/w/<widget>` path (the request's by default), known or not: for what
    runs before routing or when routing failed (405)."""
    match = _WIDGET_PATH.match(request.path if path is None else path)
    return match.group(1) if match else None
