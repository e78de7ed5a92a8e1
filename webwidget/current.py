"""Which widget a request is for: resolved once, when its URL is matched.

A `<widget>` route's id is looked up here before any before_request hook runs and kept
in `g.widget`. The language, the theme, the template overlay, the rate-limit key and the
embed checks ask `current_widget()`; nothing else reads the id from the URL again.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, has_request_context

from .widgets import WidgetConfig

WIDGETS = "webwidget.widgets"


def init_app(app: Flask) -> None:
    """Resolve each request's widget as soon as its route is known."""

    @app.url_value_preprocessor
    def _resolve_widget(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if values and "widget" in values:
            g.widget = app.extensions.get(WIDGETS, {}).get(values["widget"])


def current_widget() -> WidgetConfig | None:
    """The configured widget this request addresses; None outside widget routes and for
    an id no widget has (its view answers 404)."""
    if not has_request_context():
        return None
    return g.get("widget")
