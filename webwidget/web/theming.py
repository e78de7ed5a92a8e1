"""A widget's theme over HTTP: its stylesheets and avatar, and the template context.

A theme is served at `GET /themes/<widget>.css`, linked after `static/css/widget.css`;
an owner's own stylesheet (read once at start-up) at `GET /themes/<widget>/stylesheet.css`,
linked after every built-in one. Both URLs carry a fingerprint of the content, so they
are cached for a long time and a change is a new URL.
"""

from __future__ import annotations

from flask import Blueprint, Flask, abort, make_response, request, url_for
from flask_babel import get_locale

from ..current import current_widget, widgets_of
from ..themes import localized

bp = Blueprint("theme", __name__)


def _cache_for(fingerprint: str) -> str:
    """A year for the URL that names this content; a few minutes for any other."""
    if request.args.get("v") == fingerprint:
        return "public, max-age=31536000, immutable"
    return "public, max-age=300"


def _widget_or_404(widget_id: str):
    config = widgets_of().get(widget_id)
    if config is None:
        abort(404)
    return config


def _cached_asset(body: str | bytes, mimetype: str, fingerprint: str):
    """A response for one of the widget's theme files, cached by its fingerprint."""
    response = make_response(body)
    response.mimetype = mimetype
    response.headers["Cache-Control"] = _cache_for(fingerprint)
    return response


# Outside /w/<widget>: that prefix is per visitor and never cached (security.py); a theme
# is the same for everyone, so its stylesheets live here and cache like static files.
@bp.get("/themes/<widget_id>.css")
def stylesheet(widget_id: str):
    """The widget's theme as CSS; cached for a year when asked for by its fingerprint."""
    theme = _widget_or_404(widget_id).theme
    return _cached_asset(theme.css(), "text/css", theme.fingerprint)


@bp.get("/themes/<widget_id>/stylesheet.css")
def owner_stylesheet(widget_id: str):
    """The site owner's own CSS for the widget, as read at start-up."""
    owned = _widget_or_404(widget_id).theme.stylesheet
    if owned is None:
        abort(404)
    return _cached_asset(owned.text, "text/css", owned.fingerprint)


@bp.get("/themes/<widget_id>/avatar")
def owner_avatar(widget_id: str):
    """The site owner's avatar image for the widget, as read at start-up."""
    owned = _widget_or_404(widget_id).theme.avatar_file
    if owned is None:
        abort(404)
    return _cached_asset(owned.data, owned.mimetype, owned.fingerprint)


def theme_context() -> dict[str, object]:
    """The current widget's theme for templates (base.html, widget/_header.html, ...)."""
    widget = current_widget()
    if widget is None:
        return {}
    theme = widget.theme
    lang = str(get_locale() or widget.language).lower()
    owned = theme.stylesheet
    return {
        "theme": theme,
        "theme_css": url_for("theme.stylesheet", widget_id=widget.id, v=theme.fingerprint),
        "theme_stylesheet": url_for(
            "theme.owner_stylesheet", widget_id=widget.id, v=owned.fingerprint
        )
        if owned
        else None,
        "theme_mode": theme.mode,
        "widget_position": theme.position,
        "subtitle": localized(theme.subtitle, lang),
        "avatar": theme.avatar
        or (
            url_for("theme.owner_avatar", widget_id=widget.id, v=theme.avatar_file.fingerprint)
            if theme.avatar_file
            else None
        ),
        "greeting": localized(theme.greeting, lang),
    }


def init_app(app: Flask) -> None:
    """Serve the theme stylesheets and avatars; give templates the current widget's theme."""
    app.register_blueprint(bp)
    app.context_processor(theme_context)
