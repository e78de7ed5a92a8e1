"""The page's language: Flask-Babel wiring, locale choice, and text direction.

The visitor's language is, in order: the page's `lang` parameter (the loader passes
`?lang=`; the start form carries it on), the language the visitor's chat was started
in, the browser's Accept-Language, the widget's default. The UI speaks the first of
these we ship a translation for; `dir="rtl"` follows the UI language.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, has_request_context, request
from flask_babel import Babel, get_locale
from werkzeug.exceptions import RequestEntityTooLarge

from .languages import upstream_code

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
# Shipped UI languages (webwidget/translations/<lang>); English is the source text.
SUPPORTED = ("en", "de", "fr", "es", "it", "nl", "ar")
RTL_LANGUAGES = frozenset({"ar", "he", "fa", "ur", "yi", "ps", "sd", "ug", "dv", "ckb"})


def N_(text: str) -> str:
    """Mark `text` for extraction; it is translated where it is shown."""
    return text


def ui_language(tag: str | None) -> str | None:
    """`de-AT` -> `de` when we ship German, else None."""
    code = upstream_code(tag)
    return code.lower() if code and code.lower() in SUPPORTED else None


def current_widget():
    """The widget this request is for, or None."""
    if not has_request_context() or not request.view_args:
        return None
    return current_app.extensions.get("webwidget.widgets", {}).get(request.view_args.get("widget"))


def _chat_language(widget) -> str | None:
    from .conversation import current_chat

    try:
        chat = current_chat(widget)
    except Exception:  # noqa: BLE001 - an unreadable session only loses the preference
        return None
    return chat.language if chat else None


def select_locale() -> str:
    """The UI language for this request (see the module docstring for the order)."""
    widget = current_widget()
    candidates = [request.args.get("lang")]
    if request.method == "POST":
        try:
            candidates.append(request.form.get("lang"))
        except RequestEntityTooLarge:
            pass  # the friendly 413 page asks for the language again: it must not fail twice
    # Only a visitor who holds a session can have a chat; others never touch the store.
    if widget is not None and (request.cookies or request.headers.get("X-Widget-Session")):
        candidates.append(_chat_language(widget))
    for tag in candidates:
        code = ui_language(tag)
        if code:
            return code
    best = request.accept_languages.best_match(SUPPORTED)
    if best:
        return best
    return ui_language(widget.language if widget else None) or "en"


def text_direction(language: str) -> str:
    """`rtl` for right-to-left scripts, else `ltr`."""
    return "rtl" if language.split("-")[0].split("_")[0].lower() in RTL_LANGUAGES else "ltr"


def page_language() -> dict[str, str]:
    """`html_lang` and `html_dir` for base.html."""
    if not has_request_context():
        return {}
    language = str(get_locale() or "en")
    return {"html_lang": language.replace("_", "-"), "html_dir": text_direction(language)}


def settle_locale() -> None:
    """Choose the language before the view runs: ending a chat must not change it mid-request."""
    # A poll mostly answers 204 and renders nothing; it picks the language lazily if it renders.
    if request.endpoint != "widget.messages" and current_widget() is not None:
        get_locale()


def vary_on_language(response):
    """Pages differ by Accept-Language, so shared caches must keep them apart."""
    if response.mimetype == "text/html":
        response.vary.add("Accept-Language")
    return response


def init_app(app: Flask) -> None:
    """Install Flask-Babel with the shipped translations and the locale selector."""
    Babel(
        app,
        locale_selector=select_locale,
        default_locale="en",
        default_translation_directories=str(TRANSLATIONS),
    )
    app.context_processor(page_language)
    app.before_request(settle_locale)
    app.after_request(vary_on_language)
