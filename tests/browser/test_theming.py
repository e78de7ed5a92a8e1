"""The theming journey in Chromium: a site owner's override, catalog and stylesheet at work.

The widget is built the way a site owner builds one: a widgets file, a template folder
with a header override that adds a classed element with translated text, a stylesheet
that styles it and a German catalog; a host page on another site frames it.
"""

from __future__ import annotations

import pytest
from conftest import SECRET_KEY, free_port
from flask import Flask
from playwright.sync_api import expect

from .conftest import MESSAGE, WAIT

HEADER = """{#- Acme's header: the brand plus the opening hours, in the visitor's language. -#}
<div id="ww-brand" class="ww-brand">
  <div class="ww-brand__text">
    <h1 class="ww-title" dir="auto">{{ title }}</h1>
    <p class="acme-hours">{{ _("Open on weekdays") }}</p>
  </div>
</div>
"""
CATALOG = """# Acme's German strings.
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Language: de\\n"

msgid "Open on weekdays"
msgstr "Werktags geöffnet"
"""
STYLESHEET = """.acme-hours {
  color: #7a1f5c;
  letter-spacing: 3px;
  text-transform: uppercase;
}
"""


def build_site(folder, host_origin: str):
    """What the site owner writes: four files and a widgets file naming them."""
    (folder / "acme" / "widget").mkdir(parents=True)
    (folder / "acme" / "widget" / "_header.html").write_text(HEADER, encoding="utf-8")
    catalog = folder / "acme" / "translations" / "de" / "LC_MESSAGES"
    catalog.mkdir(parents=True)
    (catalog / "messages.po").write_text(CATALOG, encoding="utf-8")
    (folder / "acme.css").write_text(STYLESHEET, encoding="utf-8")
    widgets = folder / "widgets.toml"
    widgets.write_text(
        f"""[widgets.acme]
chatbot_id = "demo-bot"
channel_id = "channel_abc123"
channel_token_env = "ACME_CHANNEL_TOKEN"
allowed_origins = ["{host_origin}"]
template_dir = "acme"

[widgets.acme.theme]
primary_color = "#7a1f5c"
primary_color_dark = "#e7a3cf"
stylesheet = "acme.css"
panel_radius = 6
shadow = "none"
""",
        encoding="utf-8",
    )
    return widgets


@pytest.fixture
def acme(sandbox, tmp_path, monkeypatch):
    """The owner's widget on a real server at localhost, framed by a page on 127.0.0.1."""
    from webwidget.app import create_app
    from webwidget.sandbox.server import BackgroundServer
    from webwidget.settings import Settings

    monkeypatch.setenv("ACME_CHANNEL_TOKEN", "channel_token_xyz789")
    host_port = free_port()
    widgets = build_site(tmp_path, f"http://127.0.0.1:{host_port}")
    settings = Settings(
        _env_file=None,
        SECRET_KEY=SECRET_KEY,
        CHATCAPTAIN_BASE_URL=sandbox.url,
        CHATCAPTAIN_SENDING_ENABLED=True,
        WIDGETS_FILE=str(widgets),
        SESSION_STORE_URL=f"sqlite:///{tmp_path / 'sessions.sqlite3'}",
    )
    widget = BackgroundServer(create_app(settings=settings, instance_path=str(tmp_path))).start()
    host = Flask(__name__)
    widget_url = f"http://localhost:{widget.port}"

    @host.get("/")
    def host_page():
        return (
            "<!doctype html><html lang='de'><head><title>Acme</title></head><body>"
            f'<iframe title="Chat" src="{widget_url}/w/acme" width="380" height="600"></iframe>'
            "</body></html>"
        )

    @host.get("/loader")
    def loader_page():
        return (
            "<!doctype html><html lang='de'><head><title>Acme</title></head><body><h1>Acme</h1>"
            f'<script src="{widget_url}/embed.js" data-widget="acme" async></script>'
            "</body></html>"
        )

    host_server = BackgroundServer(host, port=host_port).start()
    try:
        yield host_server.url
    finally:
        host_server.stop()
        widget.stop()


def test_the_owners_override_speaks_german_and_wears_the_owners_stylesheet(browser, acme):
    context = browser.new_context(locale="de-DE", extra_http_headers={"Accept-Language": "de"})
    page = context.new_page()
    blocked = []
    # The sandbox's avatars come over plain http and are blocked; no style may be.
    page.on("console", lambda m: "style-src" in m.text and blocked.append(m.text))
    page.goto(acme)
    frame = page.frame_locator("iframe")
    hours = frame.locator(".acme-hours")
    expect(hours).to_have_text("Werktags geöffnet", timeout=WAIT * 1000)
    # The stylesheet's rules, as the browser computed them (#7a1f5c).
    expect(hours).to_have_css("color", "rgb(122, 31, 92)")
    expect(hours).to_have_css("letter-spacing", "3px")
    expect(hours).to_have_css("text-transform", "uppercase")
    expect(frame.locator("html")).to_have_attribute("lang", "de")
    # The project's own German is still there around the override.
    frame.get_by_role("button", name="Chat starten").click()
    expect(frame.locator(MESSAGE).first).to_be_visible(timeout=WAIT * 1000)
    expect(frame.locator(".acme-hours")).to_have_text("Werktags geöffnet")
    assert blocked == []
    context.close()


def test_the_same_widget_in_english_shows_the_source_text(browser, acme):
    context = browser.new_context(locale="en-GB", extra_http_headers={"Accept-Language": "en"})
    page = context.new_page()
    page.goto(acme)
    hours = page.frame_locator("iframe").locator(".acme-hours")
    expect(hours).to_have_text("Open on weekdays", timeout=WAIT * 1000)
    expect(hours).to_have_css("color", "rgb(122, 31, 92)")
    context.close()


def test_the_loader_panel_takes_the_themes_radius_and_shadow(browser, acme):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.goto(f"{acme}/loader")
    page.locator("#webwidget-acme button.l").click()
    panel = page.locator("#webwidget-acme .p")
    expect(panel).to_be_visible(timeout=WAIT * 1000)
    expect(panel).to_have_css("border-radius", "6px")
    expect(panel).to_have_css("box-shadow", "none")
    # Inside, the owner's stylesheet still styles the override.
    hours = page.frame_locator("#webwidget-acme iframe").locator(".acme-hours")
    expect(hours).to_have_css("letter-spacing", "3px", timeout=WAIT * 1000)
    context.close()
