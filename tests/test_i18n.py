"""Languages: complete catalogs, the visitor's language in order of preference, RTL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from conftest import Visitor, https_client, widget_settings

from webwidget.app import create_app
from webwidget.web.i18n import SUPPORTED, TRANSLATIONS, text_direction

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "lazy_gettext": None}


def extracted_msgids() -> set[str]:
    """What babel extracts from the code and templates right now (babel.cfg's mapping)."""
    method_map = [("webwidget/**.py", "python"), ("templates/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, keywords=KEYWORDS, comment_tags=()
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def catalog(path: Path):
    with path.open("rb") as handle:
        return read_po(handle)


def test_the_template_is_up_to_date_with_code_and_templates():
    pot = {m.id for m in catalog(TRANSLATIONS / "messages.pot") if m.id}
    current = extracted_msgids()
    assert current - pot == set(), (
        "new strings: run the extract/update/compile steps in docs/theming.md"
    )
    assert pot - current == set(), "obsolete strings in messages.pot: re-extract"
    assert len(pot) > 40


@pytest.mark.parametrize("language", SUPPORTED)
def test_every_shipped_language_translates_every_string(language):
    pot_ids = {m.id for m in catalog(TRANSLATIONS / "messages.pot") if m.id}
    po_path = TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"
    po = catalog(po_path)
    translated = {m.id: m.string for m in po if m.id and not m.fuzzy}
    missing = sorted(i for i in pot_ids if not translated.get(i))
    assert missing == [], f"{language} misses {missing}"
    # The compiled catalog the app loads says exactly what the .po says.
    with (po_path.with_suffix(".mo")).open("rb") as handle:
        mo = {m.id: m.string for m in read_mo(handle) if m.id}
    assert {i: mo.get(i) for i in pot_ids} == {i: translated[i] for i in pot_ids}
    # Translations are output unescaped by Jinja's i18n: keep markup and quotes out.
    assert not [s for s in translated.values() if re.search(r'[<>"&]', s)]


def test_the_shipped_languages_are_exactly_the_catalogs_on_disk():
    on_disk = {p.parent.parent.name for p in TRANSLATIONS.glob("*/LC_MESSAGES/messages.mo")}
    assert on_disk == set(SUPPORTED) >= {"en", "de", "fr", "es", "it", "nl", "ar"}


@pytest.fixture
def app(sandbox, tmp_path):
    app = create_app(
        settings=widget_settings(
            sandbox.url, f"sqlite:///{tmp_path / 's.sqlite3'}", WIDGET_LANGUAGE="NL"
        ),
        instance_path=str(tmp_path),
    )
    app.config["TESTING"] = True
    return app


def html_lang(html: str) -> tuple[str, str]:
    match = re.search(r'<html lang="([^"]+)" dir="([^"]+)"', html)
    return match.group(1), match.group(2)


@pytest.mark.parametrize(
    ("query", "accept", "lang", "button"),
    [
        ("?lang=de", "fr", "de", "Chat starten"),  # the page's parameter first
        ("?lang=fr-CA", "", "fr", "Démarrer le chat"),
        ("", "es-ES,es;q=0.9,en;q=0.5", "es", "Iniciar chat"),  # then Accept-Language
        ("?lang=zz", "it", "it", "Inizia la chat"),  # an unusable parameter is skipped
        (
            "?lang=he",
            "da, en;q=0.1",
            "en",
            "Start chat",
        ),  # no Hebrew catalog: the browser's next best
        ("", "", "nl", "Chat starten"),  # then the widget's default (WIDGET_LANGUAGE=NL)
        ("", "da", "nl", "Chat starten"),
        ("?lang=ar", "", "ar", "بدء الدردشة"),
    ],
)
def test_the_visitor_language_comes_from_the_page_then_the_browser_then_the_widget(
    app, query, accept, lang, button
):
    response = https_client(app).get(
        f"/w/default{query}", headers={"Accept-Language": accept} if accept else {}
    )
    html = response.get_data(as_text=True)
    assert html_lang(html) == (lang, "rtl" if lang == "ar" else "ltr")
    assert button in html
    assert "Accept-Language" in response.headers.get("Vary", "")


def test_the_chat_keeps_the_language_it_started_in(app):
    visitor = Visitor(https_client(app))
    assert visitor.start(lang="ar").status_code == 303
    # No parameter and a German browser: the conversation stays Arabic and right-to-left.
    page = visitor.get("/w/default", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert html_lang(page) == ("ar", "rtl")
    assert "إنهاء الدردشة" in page
    # Ending deletes the chat, yet the goodbye is still in the chat's language.
    ended = visitor.end(headers={"HX-Request": "true"})
    assert "انتهت الدردشة" in ended.get_data(as_text=True)


def test_error_pages_speak_the_visitor_language(app):
    client = https_client(app)
    german = client.get("/w/unknown", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Nicht gefunden" in german and "Hier gibt es keinen Chat." in german
    visitor = Visitor(client)
    visitor.start()
    empty = visitor.post("/w/default/send?lang=fr", {"text": ""})
    assert empty.status_code == 400 and "Saisissez d’abord un message." in empty.get_data(
        as_text=True
    )


@pytest.mark.parametrize(
    ("tag", "direction"),
    [
        ("ar", "rtl"),
        ("he", "rtl"),
        ("he-IL", "rtl"),
        ("fa", "rtl"),
        ("en", "ltr"),
        ("de_DE", "ltr"),
    ],
)
def test_text_direction(tag, direction):
    assert text_direction(tag) == direction
