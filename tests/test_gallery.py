"""The theme gallery at /demo/themes: every widget's views, light, dark and in each of its
languages, demo mode only."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest
from conftest import CHANNEL_TOKEN, https_client, widget_settings

from webwidget.app import create_app
from webwidget.rendering import CONTENT_TEMPLATES, build_message_views
from webwidget.settings import Settings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "theme-harbour" / "widgets.toml"


@pytest.fixture
def demo_app(tmp_path, monkeypatch):
    """Demo mode (the bundled sandbox) with the harbour example's widgets next to `default`."""
    monkeypatch.setenv("HARBOUR_CHANNEL_TOKEN", CHANNEL_TOKEN)
    monkeypatch.setenv("BAKERY_CHANNEL_TOKEN", CHANNEL_TOKEN)
    app = create_app(
        settings=Settings(_env_file=None, WIDGETS_FILE=str(EXAMPLE)), instance_path=str(tmp_path)
    )
    app.config["TESTING"] = True
    return app


def frames(html: str) -> list[str]:
    return [unescape(src) for src in re.findall(r'<iframe[^>]* src="([^"]+)"', html)]


def test_the_gallery_frames_every_widget_in_each_view_and_variant(demo_app):
    client = https_client(demo_app)
    page = client.get("/demo/themes")
    assert page.status_code == 200
    # It frames this app's own pages, and nothing else may frame the gallery.
    csp = page.headers["Content-Security-Policy"]
    assert "frame-src 'self'" in csp and "frame-ancestors 'none'" in csp
    html = page.get_data(as_text=True)
    # Each widget under its title (the theme's, in English here).
    for title in ("Chat with us", "Harbour Office", "Bäckerei Korn"):
        assert re.search(rf'<h2 id="gallery-[a-z]+">{title} <small>', html), title
    sources = frames(html)
    # Light and dark, then each language the widget has a catalog for: the seven shipped.
    shipped = ("de", "fr", "es", "it", "nl", "ar")
    assert len(sources) == 3 * 2 * (2 + len(shipped))
    for widget in ("default", "harbour", "bakery"):
        for view in ("welcome", "conversation"):
            for mode, lang in (("light", "en"), ("dark", "en"), *(("light", s) for s in shipped)):
                assert f"/demo/themes/{widget}?view={view}&mode={mode}&lang={lang}" in sources
    assert "Welcome · German (de)" in html and "Conversation · Arabic (ar, right-to-left)" in html
    # Pictures, not chats: the frames run no script and submit no form.
    assert len(re.findall(r"<iframe[^>]*\ssandbox[\s>]", html)) == len(sources)
    # Each panel wears its widget's radius and shadow, from a stylesheet (no inline style).
    assert "style=" not in html
    panels = client.get("/demo/themes.css").get_data(as_text=True)
    assert '.gallery-panel[data-widget="harbour"] { border-radius: 6px;' in panels
    assert '.gallery-panel[data-widget="default"] { border-radius: 16px;' in panels


def test_each_preview_is_the_widgets_own_page_with_its_overrides_and_catalogs(demo_app):
    client = https_client(demo_app)
    welcome = client.get("/demo/themes/harbour?view=welcome&mode=light&lang=de")
    assert welcome.status_code == 200
    html = welcome.get_data(as_text=True)
    assert "Bürozeiten: Mo–Fr 9–17 Uhr" in html and "Hafenbüro" in html
    assert "/themes/harbour/stylesheet.css?v=" in html
    # Only the gallery (this origin) and the widget's own origins may frame a preview.
    assert "frame-ancestors 'self' https://www.harbour.example" in (
        welcome.headers["Content-Security-Policy"]
    )
    rtl = client.get("/demo/themes/harbour?view=conversation&mode=light&lang=ar")
    html = rtl.get_data(as_text=True)
    assert re.search(r'<html lang="ar" dir="rtl"', html)
    assert 'class="ww-text harbour-text"' in html and 'role="log"' in html
    # Dark where the theme follows the visitor; a theme fixed to light stays light.
    dark = client.get("/demo/themes/default?view=conversation&mode=dark&lang=en")
    assert 'data-theme="dark"' in dark.get_data(as_text=True)
    fixed = client.get("/demo/themes/harbour?view=welcome&mode=dark&lang=en")
    assert 'data-theme="light"' in fixed.get_data(as_text=True)
    assert client.get("/demo/themes/nobody?view=welcome").status_code == 404
    assert client.get("/demo/themes/default?view=other").status_code == 404


def test_the_sample_conversation_holds_every_content_kind(demo_app):
    client = https_client(demo_app)
    html = client.get("/demo/themes/default?view=conversation&mode=light&lang=en").get_data(
        as_text=True
    )
    assert html.count("data-message-id=") >= 20
    # No visitor session was made to show it.
    for path in ("/demo/themes", "/demo/themes/default?view=conversation&mode=dark&lang=ar"):
        assert "set-cookie" not in {k.lower() for k, _ in client.get(path).headers}
    with demo_app.test_request_context("/demo/themes/default"):
        messages = demo_app.extensions["webwidget.gallery"]()
        kinds = {kind for view in build_message_views(messages) for kind in view.kinds}
    assert kinds >= set(CONTENT_TEMPLATES), set(CONTENT_TEMPLATES) - kinds


def test_there_is_no_gallery_outside_demo_mode(sandbox, tmp_path):
    app = create_app(
        settings=widget_settings(sandbox.url, f"sqlite:///{tmp_path / 's.sqlite3'}"),
        instance_path=str(tmp_path),
    )
    client = https_client(app)
    assert client.get("/demo/themes").status_code == 404
    assert client.get("/demo/themes/default?view=welcome").status_code == 404


def test_a_language_a_widgets_own_catalog_brings_is_previewed_too(tmp_path):
    folder = tmp_path / "templates" / "translations" / "pt" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Start chat"\nmsgstr "Iniciar conversa"\n',
        encoding="utf-8",
    )
    widgets = tmp_path / "widgets.toml"
    widgets.write_text(
        '[widgets.porto]\nchatbot_id = "demo-bot"\nchannel_id = "channel_abc123"\n'
        f'channel_token = "{CHANNEL_TOKEN}"\ntemplate_dir = "templates"\n',
        encoding="utf-8",
    )
    app = create_app(settings=Settings(_env_file=None, WIDGETS_FILE=str(widgets)),
                     instance_path=str(tmp_path / "instance"))
    client = https_client(app)
    html = client.get("/demo/themes").get_data(as_text=True)
    assert "/demo/themes/porto?view=welcome&mode=light&lang=pt" in frames(html)
    assert "Welcome · Portuguese (pt)" in html
    welcome = client.get("/demo/themes/porto?view=welcome&mode=light&lang=pt")
    assert "Iniciar conversa" in welcome.get_data(as_text=True)
