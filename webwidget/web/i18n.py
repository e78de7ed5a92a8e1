"""The page's language: Flask-Babel wiring, locale choice, and text direction.

The visitor's language is, in order: the page's `lang` parameter (the loader passes
`?lang=`; the start form carries it on), the language the visitor's chat was started
in, the browser's Accept-Language, the widget's default. The UI speaks the first of
these we ship a translation for; `dir="rtl"` follows the UI language.

A site owner's override folder may bring its own catalogs
(`translations/<lang>/LC_MESSAGES/messages.po`). They are compiled at start-up (the
owner runs no build step) and merged over the project's catalogs for the widgets that
use that folder only, so `_()` in an override finds them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.support import Translations
from flask import Flask, current_app, has_request_context, request
from flask_babel import Babel, Domain, get_locale, get_translations
from jinja2 import pass_context
from markupsafe import escape
from werkzeug.exceptions import RequestEntityTooLarge

from ..current import current_widget, widgets_of
from ..settings import SettingsError
from .languages import upstream_code
from .visitor import visitor_chats

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
# Shipped UI languages (webwidget/translations/<lang>); English is the source text.
SUPPORTED = ("en", "de", "fr", "es", "it", "nl", "ar")
RTL_LANGUAGES = frozenset({"ar", "he", "fa", "ur", "yi", "ps", "sd", "ug", "dv", "ckb"})


def N_(text: str) -> str:
    """Mark `text` for extraction; it is translated where it is shown."""
    return text


def ui_language(tag: str | None, supported: Sequence[str] = SUPPORTED) -> str | None:
    """`de-AT` -> `de` when we ship German (or the widget brings it), else None."""
    code = upstream_code(tag)
    return code.lower() if code and code.lower() in supported else None


class CatalogError(ValueError):
    """An owner's catalog cannot be used; the message says why (the caller names the file)."""


# Every line of a catalog is a comment, a keyword with a quoted string, or a quoted string.
# Babel's reader silently cuts a string with no closing quote; this catches that.
_PO_LINE = re.compile(
    r'^(?:(?:msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)\s+)?"(?:[^"\\]|\\.)*"$'
)


# The start of an HTML tag, comment or declaration; "a < b" and "<3" are text.
_TAG = re.compile(r"<[A-Za-z/!?][^\s>]{0,20}")


def compile_catalog(path: Path, language: str) -> Translations:
    """Read one `messages.po` and compile it in memory; CatalogError says what is wrong."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CatalogError(f"not UTF-8 text (byte {exc.start})") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#") and not _PO_LINE.match(line):
            raise CatalogError(f"line {number}: not a PO entry (unclosed quote?): {line[:60]!r}")
    try:
        catalog = read_po(io.BytesIO(raw), locale=language, abort_invalid=True)
    except PoFileError as exc:
        raise CatalogError(str(exc)) from None
    for message, errors in catalog.check():
        # A placeholder the source text does not have would fail when the page renders.
        raise CatalogError(f"msgid {message.id!r}: {errors[0]}")
    for message in catalog:
        if not message.id:
            continue  # the header: metadata, never shown
        strings = (
            message.string if isinstance(message.string, tuple | list) else (message.string,)
        )
        tag = next((m.group(0) for s in strings if s and (m := _TAG.search(s))), None)
        if tag:
            # Translations are shown as text (see escaped_gettext): markup would show as-is.
            msgid = message.id[0] if isinstance(message.id, tuple) else message.id
            raise CatalogError(
                f"msgid {msgid!r}: the translation holds markup ({tag!r}...); "
                "translations are text, so write it without HTML"
            )
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled)


def is_language_code(name: str) -> bool:
    """Whether `name` is a two-letter code Babel knows (`de`, `pl`), as a folder name."""
    try:
        return bool(re.fullmatch(r"[a-z]{2}", name)) and bool(Locale.parse(name))
    except (UnknownLocaleError, ValueError):
        return False


def owner_catalogs(folder: str | Path) -> dict[str, Translations]:
    """The catalogs in an override folder, compiled, by language; CatalogError names the file."""
    found: dict[str, Translations] = {}
    for path in sorted(Path(folder).glob("translations/*/LC_MESSAGES/messages.po")):
        language = path.parent.parent.name
        if not is_language_code(language):
            raise CatalogError(f"{path}: {language!r} is not a two-letter language code such as de")
        try:
            found[language] = compile_catalog(path, language)
        except CatalogError as exc:
            raise CatalogError(f"{path}: {exc}") from None
    return found


class WidgetDomain(Domain):
    """The project's catalogs with a widget's own catalogs merged over them, per language."""

    def __init__(self, overlays: Sequence[Mapping[str, Translations]]) -> None:
        super().__init__()
        self.overlays = list(overlays)
        self.languages = tuple(sorted({lang for overlay in overlays for lang in overlay}))
        self._merged: dict[str, Translations] = {}

    def get_translations(self) -> Translations:
        """The merged catalog for the request's language, built once per language."""
        language = str(get_locale() or "en")
        merged = self._merged.get(language)
        if merged is None:
            merged = Translations()
            shipped = Translations.load(str(TRANSLATIONS), [language])
            if isinstance(shipped, Translations):  # else no catalog: English as written
                merged.merge(shipped)
            for overlay in self.overlays:
                if language in overlay:
                    merged.merge(overlay[language])
            self._merged[language] = merged
        return merged


def widget_languages(widget) -> tuple[str, ...]:
    """The UI languages for `widget`: the shipped ones and any its overrides bring."""
    domain = current_app.extensions.get("webwidget.domains", {}).get(getattr(widget, "id", None))
    if domain is None:
        return SUPPORTED
    return SUPPORTED + tuple(lang for lang in domain.languages if lang not in SUPPORTED)


def _chat_language(widget) -> str | None:
    try:
        chat = visitor_chats().current(widget)
    except Exception:  # noqa: BLE001 - an unreadable session only loses the preference
        return None
    return chat.language if chat else None


def select_locale() -> str:
    """The UI language for this request (see the module docstring for the order)."""
    widget = current_widget()
    supported = widget_languages(widget)
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
        code = ui_language(tag, supported)
        if code:
            return code
    best = request.accept_languages.best_match(supported)
    if best:
        return best
    return ui_language(widget.language if widget else None, supported) or "en"


def text_direction(language: str) -> str:
    """`rtl` for right-to-left scripts, else `ltr`."""
    return "rtl" if language.split("-")[0].split("_")[0].lower() in RTL_LANGUAGES else "ltr"


def page_language() -> dict[str, str]:
    """`html_lang` and `html_dir` for base.html."""
    if not has_request_context():
        return {}
    language = str(get_locale() or "en")
    return {"html_lang": language.replace("_", "-"), "html_dir": text_direction(language)}


def use_widget_catalogs() -> None:
    """A widget whose overrides bring catalogs translates with them (and only that widget)."""
    widget = current_widget()
    # Pages are resolved to their widget; the loader's config and the theme files name
    # theirs `widget_id` (they are the same for every visitor: no widget resolved).
    widget_id = widget.id if widget else (request.view_args or {}).get("widget_id")
    domain = current_app.extensions["webwidget.domains"].get(widget_id)
    if domain is not None:
        domain.as_default()


def widget_domains(
    widgets: Mapping[str, object], shared_folder: str | None
) -> dict[str, WidgetDomain]:
    """Compile every override folder's catalogs once; a domain for each widget that has any."""
    compiled: dict[str, dict[str, Translations]] = {}

    def catalogs(folder: str | None, widget) -> dict[str, Translations]:
        if not folder:
            return {}
        if folder not in compiled:
            try:
                compiled[folder] = owner_catalogs(folder)
            except CatalogError as exc:
                where = f"widget {widget.id!r}" if widget is not None else "WIDGET_TEMPLATE_DIR"
                path, _, why = str(exc).partition(": ")
                raise SettingsError(f"{path}: {where}: {why}") from None
        return compiled[folder]

    shared = catalogs(str(Path(shared_folder).resolve()) if shared_folder else None, None)
    domains = {}
    for widget_id, widget in widgets.items():
        overlays = [
            found for found in (shared, catalogs(getattr(widget, "template_dir", None), widget))
            if found
        ]
        if overlays:
            domains[widget_id] = WidgetDomain(overlays)
    return domains


def settle_locale() -> None:
    """Choose the language before the view runs: ending a chat must not change it mid-request."""
    # A poll mostly answers 204 and renders nothing; it picks the language lazily if it renders.
    if request.endpoint != "widget.messages" and current_widget() is not None:
        get_locale()


def vary_on_language(response):
    """Pages differ by Accept-Language, so shared caches must keep them apart."""
    if response.mimetype == "text/html" and response.status_code != 204:
        response.vary.add("Accept-Language")
    return response


def _escaped(translate: Callable[..., str]) -> Callable[..., str]:
    """A gettext for templates whose translation is text: Jinja marks what gettext returns
    as safe markup, so a catalog's `<img src=x>` or `"` would otherwise become HTML."""

    @pass_context
    def translated(context, *args):
        text = translate(*args)
        return escape(text) if context.eval_ctx.autoescape else text

    return translated


def escape_translations(app: Flask) -> None:
    """Install the template gettext callables again, their results escaped as text."""
    # jinja2.ext.i18n adds this method to the environment; Environment's type lacks it.
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_escaped(lambda s: get_translations().ugettext(s)),
        ngettext=_escaped(lambda s, p, n: get_translations().ungettext(s, p, n)),
        pgettext=_escaped(lambda c, s: get_translations().upgettext(c, s)),
        npgettext=_escaped(lambda c, s, p, n: get_translations().unpgettext(c, s, p, n)),
        newstyle=True,
    )


def init_app(app: Flask, template_dir: str | None = None) -> None:
    """Install Flask-Babel with the shipped translations, the owners' ones and the selector."""
    app.extensions["webwidget.domains"] = widget_domains(
        widgets_of(app), template_dir
    )
    Babel(
        app,
        locale_selector=select_locale,
        default_locale="en",
        default_translation_directories=str(TRANSLATIONS),
    )
    escape_translations(app)
    app.context_processor(page_language)
    app.before_request(use_widget_catalogs)
    app.before_request(settle_locale)
    app.after_request(vary_on_language)
