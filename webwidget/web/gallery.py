"""The theme gallery (demo mode): every widget's views side by side, light, dark and RTL.

`GET /demo/themes` frames, for each configured widget, its welcome view and a
conversation holding every content kind, in light and dark, and in each language the
widget has a catalog for (the shipped ones and its own; right-to-left ones so marked).
Each frame is `GET /demo/themes/<widget>`, the widget's real page rendered through its
own overrides, catalogs, theme and stylesheet, with a sample conversation instead of a
visitor's; the frames are sandboxed without scripts, so they are pictures, not chats.
A site owner sees a theme without a host page. The sample messages come from demo.py
(the one place that knows the sandbox).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from babel import Locale, UnknownLocaleError
from flask import Blueprint, Flask, abort, current_app, make_response, render_template, request
from flask_babel import get_locale

from ..chatcaptain.models import MessageDto
from ..current import requested_widget, widgets_of
from ..rendering import build_message_views
from ..themes import SHADOWS, localized
from ..widgets import WidgetConfig
from .i18n import text_direction, widget_languages
from .views import page_context

bp = Blueprint("gallery", __name__)

VIEWS = ("welcome", "conversation")


@dataclass(frozen=True)
class Variant:
    """One column of the gallery: a colour scheme and a language."""

    key: str
    label: str
    mode: str
    lang: str


COLOURS = (
    Variant("light", "Light", "light", "en"),
    Variant("dark", "Dark", "dark", "en"),
)


def language_label(lang: str) -> str:
    """A language's English name, e.g. 'German (de)'; right-to-left ones say so."""
    try:
        name = Locale.parse(lang).get_display_name("en") or lang
    except (ValueError, UnknownLocaleError):
        name = lang
    rtl = ", right-to-left" if text_direction(lang) == "rtl" else ""
    return f"{name} ({lang}{rtl})"


def variants_for(widget: WidgetConfig) -> list[Variant]:
    """Light and dark in English, then each other language the widget has a catalog for."""
    others = [lang for lang in widget_languages(widget) if lang != "en"]
    return [*COLOURS, *(Variant(lang, language_label(lang), "light", lang) for lang in others)]


def sample_messages() -> Sequence[MessageDto]:
    """The sample conversation (every content kind) that demo mode installed."""
    return current_app.extensions["webwidget.gallery"]()


@bp.get("/demo/themes")
def index():
    """Every configured widget's welcome view and a conversation, light, dark and in each
    of its languages."""
    widgets = widgets_of().values()
    titled = [(w, localized(w.theme.title, "en", w.title), variants_for(w)) for w in widgets]
    return render_template("demo/themes.html", widgets=titled, views=VIEWS)


@bp.get("/demo/themes.css")
def panels():
    """Each widget's panel radius and shadow for the gallery's frames (no inline style)."""
    rules = []
    for widget in widgets_of().values():
        theme = widget.theme
        rules.append(
            f'.gallery-panel[data-widget="{widget.id}"] {{ border-radius: {theme.panel_radius}px;'
            f" box-shadow: {SHADOWS[theme.shadow]}; }}"
        )
    response = make_response("\n".join(rules) + "\n")
    response.mimetype = "text/css"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/demo/themes/<widget>")
def preview():
    """One widget's page as a visitor would see it: `view`, `mode` and `lang` from the query."""
    config = requested_widget()
    view = request.args.get("view", "welcome")
    mode = request.args.get("mode", "light")
    if view not in VIEWS or mode not in ("light", "dark"):
        abort(404)
    # A theme fixed to light or dark stays so: the gallery shows what visitors get.
    shown_mode = mode if config.theme.mode == "auto" else config.theme.mode
    context = page_context(config, theme_mode=shown_mode, page_url="", lang="")
    if view == "conversation":
        messages = build_message_views(
            sample_messages(), locale=str(get_locale()), can_send=bool(context["can_send"])
        )
        context.update(messages=messages, version="", poll_seconds=3600)
        partial = "widget/_conversation.html"
    else:
        partial = "widget/_welcome.html"
    return render_template("widget/page.html", partial=partial, **context)


def init_app(app: Flask, messages: Callable[[], Sequence[MessageDto]]) -> None:
    """Serve the gallery with `messages` as every widget's sample conversation."""
    app.extensions["webwidget.gallery"] = messages
    app.register_blueprint(bp)
