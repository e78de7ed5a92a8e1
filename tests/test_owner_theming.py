"""A site owner's theme: their own stylesheet, catalogs and overrides, and the start-up checks.

Each check stops start-up (errors) or logs (warnings) with one line naming the file and
the widget; tests/browser/test_theming.py proves the whole journey in Chromium.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from conftest import Visitor, https_client, make_app, parse_html

from webwidget.settings import SettingsError
from webwidget.themes import SHADOWS, ThemeError, theme_from_mapping

ROOT = Path(__file__).resolve().parent.parent

HEADER = """<div id="ww-brand" class="ww-brand">
  <h1 class="ww-title">{{ title }}</h1>
  <p class="acme-hours">{{ _("Open weekdays") }}</p>
</div>
"""
GERMAN = """msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"

msgid "Open weekdays"
msgstr "Werktags geöffnet"

msgid "Start chat"
msgstr "Los geht's"
"""


def owner_site(tmp_path: Path, theme: str = 'stylesheet = "acme.css"', extra: str = "") -> Path:
    """A widgets file with one widget `acme`, its template folder, catalog and stylesheet."""
    site = tmp_path / "site"
    (site / "acme-templates" / "widget").mkdir(parents=True)
    (site / "acme-templates" / "widget" / "_header.html").write_text(HEADER, encoding="utf-8")
    catalog = site / "acme-templates" / "translations" / "de" / "LC_MESSAGES"
    catalog.mkdir(parents=True)
    (catalog / "messages.po").write_text(GERMAN, encoding="utf-8")
    (site / "acme.css").write_text(".acme-hours { color: #123456; }\n", encoding="utf-8")
    (site / "widgets.toml").write_text(
        "[widgets.acme]\n"
        'chatbot_id = "demo-bot"\nchannel_id = "channel_abc123"\n'
        'channel_token = "channel_token_xyz789"\n'
        'allowed_origins = ["https://acme.example"]\n'
        'template_dir = "acme-templates"\n'
        f"{extra}\n"
        f"[widgets.acme.theme]\n{theme}\n",
        encoding="utf-8",
    )
    return site


def site_app(sandbox, tmp_path, site: Path, **overrides):
    return make_app(sandbox, tmp_path, WIDGETS_FILE=str(site / "widgets.toml"), **overrides)


# --- 1. the owner's stylesheet ------------------------------------------------------------


def test_the_owner_stylesheet_is_linked_after_ours_and_served_under_its_fingerprint(
    sandbox, tmp_path
):
    site = owner_site(tmp_path)
    client = https_client(site_app(sandbox, tmp_path, site))
    html = client.get("/w/acme").get_data(as_text=True)
    links = re.findall(r'<link rel="stylesheet" href="([^"]+)">', html)
    assert [link.split("?")[0] for link in links] == [
        "/static/css/widget.css",
        "/static/messages.css",
        "/themes/acme.css",
        "/themes/acme/stylesheet.css",
    ]
    # Nothing inline: the CSP's style-src 'self' allows the file, and nothing else is needed.
    assert "<style" not in html and " style=" not in html
    csp = client.get("/w/acme").headers["Content-Security-Policy"]
    assert "style-src 'self';" in csp
    served = client.get(links[-1])
    assert served.status_code == 200 and served.mimetype == "text/css"
    assert served.get_data(as_text=True) == ".acme-hours { color: #123456; }\n"
    assert "immutable" in served.headers["Cache-Control"]
    stale = client.get("/themes/acme/stylesheet.css?v=0000")
    assert "immutable" not in stale.headers["Cache-Control"]
    # Read at start-up: an edit reaches visitors with the next start, under a new URL.
    (site / "acme.css").write_text(".acme-hours { color: #654321; }\n", encoding="utf-8")
    assert client.get(links[-1]).get_data(as_text=True).endswith("#123456; }\n")
    restarted = https_client(site_app(sandbox, tmp_path, site))
    new_html = restarted.get("/w/acme").get_data(as_text=True)
    new_link = re.findall(r'href="(/themes/acme/stylesheet\.css[^"]+)"', new_html)[0]
    assert new_link != links[-1] and "#654321" in restarted.get(new_link).get_data(as_text=True)


def test_a_widget_without_its_own_stylesheet_links_none(sandbox, tmp_path):
    client = https_client(make_app(sandbox, tmp_path))
    assert "stylesheet.css" not in client.get("/w/default").get_data(as_text=True)
    assert client.get("/themes/default/stylesheet.css").status_code == 404
    assert client.get("/themes/nobody/stylesheet.css").status_code == 404


def test_the_default_widget_takes_its_stylesheet_from_the_environment(
    sandbox, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # the environment's widget's folder: the working directory
    css = tmp_path / "shop.css"
    css.write_text(".shop { color: red }", encoding="utf-8")
    client = https_client(make_app(sandbox, tmp_path, WIDGET_STYLESHEET=str(css)))
    href = re.search(
        r'href="(/themes/default/stylesheet\.css\?v=[0-9a-f]{12})"',
        client.get("/w/default").get_data(as_text=True),
    ).group(1)
    assert client.get(href).get_data(as_text=True) == ".shop { color: red }"


# --- 2. the owner's catalogs ----------------------------------------------------------------


def test_override_text_is_translated_from_the_widgets_own_catalog(sandbox, tmp_path):
    client = https_client(site_app(sandbox, tmp_path, owner_site(tmp_path)))
    german = client.get("/w/acme", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<p class="acme-hours">Werktags geöffnet</p>' in german
    # The owner may reword a built-in string; the rest stays the project's German.
    assert "Los geht&#39;s" in german or "Los geht's" in german
    english = client.get("/w/acme", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Open weekdays" in english and "Start chat" in english
    # French has no owner catalog: the override's text falls back to its source.
    french = client.get("/w/acme?lang=fr").get_data(as_text=True)
    assert "Open weekdays" in french and "Démarrer le chat" in french


def test_an_owner_catalog_applies_to_its_own_widget_only(sandbox, tmp_path):
    app = site_app(sandbox, tmp_path, owner_site(tmp_path))
    client = https_client(app)
    client.get("/w/acme", headers={"Accept-Language": "de"})
    other = client.get("/w/default", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Chat starten" in other and "Los geht" not in other


def test_an_owner_catalog_may_add_a_language_we_do_not_ship(sandbox, tmp_path):
    site = owner_site(tmp_path)
    polish = site / "acme-templates" / "translations" / "pl" / "LC_MESSAGES"
    polish.mkdir(parents=True)
    (polish / "messages.po").write_text(
        'msgid "Open weekdays"\nmsgstr "Otwarte w dni robocze"\n', encoding="utf-8"
    )
    client = https_client(site_app(sandbox, tmp_path, site))
    html = client.get("/w/acme", headers={"Accept-Language": "pl"}).get_data(as_text=True)
    assert 'lang="pl"' in html and "Otwarte w dni robocze" in html
    # Built-in strings without a Polish translation stay English.
    assert "Start chat" in html
    default = client.get("/w/default", headers={"Accept-Language": "pl"}).get_data(as_text=True)
    assert 'lang="en"' in default


def test_the_loaders_words_come_from_the_widgets_catalog_too(sandbox, tmp_path):
    site = owner_site(tmp_path)
    po = site / "acme-templates" / "translations" / "de" / "LC_MESSAGES" / "messages.po"
    po.write_text(GERMAN + '\nmsgid "Open chat"\nmsgstr "Acme fragen"\n', encoding="utf-8")
    client = https_client(site_app(sandbox, tmp_path, site))
    assert client.get("/embed/acme.json?lang=de").get_json()["strings"]["open"] == "Acme fragen"
    other = client.get("/embed/default.json?lang=de").get_json()["strings"]["open"]
    assert other != "Acme fragen" and other != "Open chat"


def test_the_shared_template_dir_may_bring_catalogs_for_every_widget(sandbox, tmp_path):
    shared = tmp_path / "shared"
    (shared / "widget").mkdir(parents=True)
    (shared / "widget" / "_header.html").write_text(HEADER, encoding="utf-8")
    (shared / "translations" / "de" / "LC_MESSAGES").mkdir(parents=True)
    (shared / "translations" / "de" / "LC_MESSAGES" / "messages.po").write_text(
        GERMAN, encoding="utf-8"
    )
    client = https_client(make_app(sandbox, tmp_path, WIDGET_TEMPLATE_DIR=str(shared)))
    html = client.get("/w/default", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Werktags geöffnet" in html


@pytest.mark.parametrize(
    "body, why",
    [
        ('msgid "Open weekdays"\nmsgstr "Werktags\n', "line 2: not a PO entry"),
        ('msgid "Open weekdays"\nmsgstr "Werktags"\ngarbage here\n', "line 3: not a PO entry"),
        ('msgid "Open weekdays"\n', "missing msgstr"),
        ('msgid "Hi %(name)s"\nmsgstr "Hallo %(nom)s"\n', "placeholder"),
        (b'msgid "Open weekdays"\nmsgstr "\xff"\n', "not UTF-8"),
        # The red team's catalog: gettext's result is markup in a template.
        (
            'msgid "Open weekdays"\nmsgstr "<b>Werktags</b> <img src=x>"\n',
            "msgid 'Open weekdays': the translation holds markup ('<b'...)",
        ),
        (
            'msgid "Open weekdays"\nmsgstr "Werktags<!-- x -->"\n',
            "msgid 'Open weekdays': the translation holds markup",
        ),
    ],
)
def test_a_malformed_catalog_stops_start_up_with_one_line_naming_the_file(
    sandbox, tmp_path, body, why
):
    site = owner_site(tmp_path)
    po = site / "acme-templates" / "translations" / "de" / "LC_MESSAGES" / "messages.po"
    if isinstance(body, bytes):
        po.write_bytes(body)
    else:
        po.write_text(body, encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        site_app(sandbox, tmp_path, site)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{po}: widget 'acme': ") and why in message, message


def test_owner_translations_are_text_in_the_page_even_in_an_attribute(sandbox, tmp_path):
    # What is not markup passes the catalog check, and is still escaped where it lands:
    # a quote in an attribute value, a "<" that starts no tag, an entity spelled out.
    site = owner_site(tmp_path)
    po = site / "acme-templates" / "translations" / "de" / "LC_MESSAGES" / "messages.po"
    po.write_text(
        GERMAN.replace("Los geht's", "Wir <3 euch &amp; Co")
        + '\nmsgid "Conversation"\nmsgstr "Chat\\" data-x=\\"1"\n',
        encoding="utf-8",
    )
    (site / "acme-templates" / "widget" / "_header.html").unlink()
    client = https_client(site_app(sandbox, tmp_path, site))
    welcome = client.get("/w/acme", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Wir &lt;3 euch &amp;amp; Co" in welcome
    assert "<3" not in welcome
    Visitor(client).start("acme", lang="de")
    html = client.get("/w/acme", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert 'aria-label="Chat&#34; data-x=&#34;1"' in html
    assert not any("data-x" in attrs for _, attrs in parse_html(html).tags)


@pytest.mark.parametrize("name", ["german", "xx", "DE"])
def test_a_catalog_folder_that_is_no_language_stops_start_up(sandbox, tmp_path, name):
    site = owner_site(tmp_path)
    folder = site / "acme-templates" / "translations" / name / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text(GERMAN, encoding="utf-8")
    with pytest.raises(SettingsError, match=f"'{name}' is not a two-letter language code"):
        site_app(sandbox, tmp_path, site)


# --- 3. start-up checks -------------------------------------------------------------------------


def test_a_missing_stylesheet_stops_start_up_naming_file_and_widget(
    sandbox, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    site = owner_site(tmp_path, theme='stylesheet = "acme-typo.css"')
    with pytest.raises(SettingsError) as caught:
        site_app(sandbox, tmp_path, site)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{site / 'widgets.toml'}: widget 'acme': theme.stylesheet: ")
    assert f"{site / 'acme-typo.css'}' does not exist" in message
    with pytest.raises(SettingsError, match="WIDGET_STYLESHEET: .*nope.css' does not exist"):
        make_app(sandbox, tmp_path, WIDGET_STYLESHEET=str(tmp_path / "nope.css"))


def _refused(sandbox, tmp_path, site: Path, field: str) -> str:
    """The one-line start-up error for `field` of widget acme in the site's widgets file."""
    with pytest.raises(SettingsError) as caught:
        site_app(sandbox, tmp_path, site)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{site / 'widgets.toml'}: widget 'acme': {field}: "), message
    return message


@pytest.mark.parametrize(
    "value, why",
    [
        # The red team's finding: served the owner's secrets with public caching.
        ("app.env", "app.env' is not a .css file"),
        ("acme.css.bak", "is not a .css file"),
        ("../outside.css", "outside.css' is not inside"),
        ("{tmp}/outside.css", "outside.css' is not inside"),
        ("shared/../../outside.css", "outside.css' is not inside"),
    ],
)
def test_a_stylesheet_that_is_no_css_file_inside_the_widgets_folder_stops_start_up(
    sandbox, tmp_path, value, why
):
    site = owner_site(tmp_path, theme=f'stylesheet = "{value.format(tmp=tmp_path)}"')
    (site / "app.env").write_text("CHATCAPTAIN_CHANNEL_TOKEN=secret-token\n", encoding="utf-8")
    (site / "acme.css.bak").write_text(".x {}\n", encoding="utf-8")
    (site / "shared").mkdir()
    (tmp_path / "outside.css").write_text(".outside {}\n", encoding="utf-8")
    message = _refused(sandbox, tmp_path, site, "theme.stylesheet")
    assert why in message, message
    assert "secret-token" not in message


@pytest.mark.parametrize("through", ["file", "folder"])
def test_a_stylesheet_reached_through_a_symbolic_link_stops_start_up(sandbox, tmp_path, through):
    site = owner_site(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "secret.css"
    target.write_text("/* SECRET */\n", encoding="utf-8")
    if through == "file":
        (site / "linked.css").symlink_to(target)
        value, link = "linked.css", site / "linked.css"
    else:
        (site / "styles").symlink_to(tmp_path / "elsewhere")
        value, link = "styles/secret.css", site / "styles"
    (site / "widgets.toml").write_text(
        (site / "widgets.toml").read_text().replace('"acme.css"', f'"{value}"'), encoding="utf-8"
    )
    message = _refused(sandbox, tmp_path, site, "theme.stylesheet")
    assert f"{str(link)!r} is a symbolic link" in message


@pytest.mark.parametrize(
    "value, why",
    [
        ("../logo.png", "logo.png' is not inside"),
        ("linked.png", "linked.png' is a symbolic link"),
    ],
)
def test_an_avatar_outside_the_widgets_folder_or_linked_stops_start_up(
    sandbox, tmp_path, value, why
):
    from webwidget.sandbox.files import png

    site = owner_site(tmp_path, theme=f'avatar = "{value}"')
    (tmp_path / "logo.png").write_bytes(png(rgb=(1, 2, 3)))
    (site / "linked.png").symlink_to(tmp_path / "logo.png")
    assert why in _refused(sandbox, tmp_path, site, "theme.avatar")


@pytest.mark.parametrize("linked", ["widget/_welcome.html", "translations/de/LC_MESSAGES/x.po"])
def test_a_template_folder_holding_a_symbolic_link_stops_start_up(sandbox, tmp_path, linked):
    # Override templates are rendered to visitors and catalogs read at start-up: a link to
    # app.env would show its lines on a page or in the start-up error.
    site = owner_site(tmp_path)
    secret = tmp_path / "app.env"
    secret.write_text("CHATCAPTAIN_CHANNEL_TOKEN=secret-token\n", encoding="utf-8")
    link = site / "acme-templates" / linked
    link.symlink_to(secret)
    message = _refused(sandbox, tmp_path, site, "template_dir")
    assert f"{str(link)!r} is a symbolic link" in message
    assert "secret-token" not in message


def test_a_template_folder_outside_the_widgets_folder_stops_start_up(sandbox, tmp_path):
    site = owner_site(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    toml = site / "widgets.toml"
    toml.write_text(toml.read_text().replace('"acme-templates"', '"../elsewhere"'), "utf-8")
    assert "elsewhere' is not inside" in _refused(sandbox, tmp_path, site, "template_dir")


def test_the_shared_template_folder_may_hold_no_symbolic_link(sandbox, tmp_path):
    shared = tmp_path / "shared"
    (shared / "widget").mkdir(parents=True)
    (shared / "widget" / "_header.html").symlink_to(tmp_path / "sessions.sqlite3")
    with pytest.raises(SettingsError, match="WIDGET_TEMPLATE_DIR: .*_header.html' is a symbolic"):
        make_app(sandbox, tmp_path, WIDGET_TEMPLATE_DIR=str(shared))


def test_the_environments_stylesheet_must_be_inside_the_working_directory(
    sandbox, tmp_path, monkeypatch
):
    (tmp_path / "site").mkdir()
    monkeypatch.chdir(tmp_path / "site")
    (tmp_path / "outside.css").write_text(".x {}\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="WIDGET_STYLESHEET: .*outside.css' is not inside"):
        make_app(sandbox, tmp_path, WIDGET_STYLESHEET=str(tmp_path / "outside.css"))
    with pytest.raises(SettingsError, match="WIDGET_STYLESHEET: .*outside.css' is not inside"):
        make_app(sandbox, tmp_path, WIDGET_STYLESHEET="../outside.css")


def test_a_missing_local_avatar_stops_start_up_naming_file_and_widget(sandbox, tmp_path):
    site = owner_site(tmp_path, theme='avatar = "/static/acme.png"')
    with pytest.raises(SettingsError) as caught:
        site_app(sandbox, tmp_path, site)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{site / 'widgets.toml'}: widget 'acme': theme.avatar: ")
    assert "/static/acme.png does not exist" in message
    with pytest.raises(SettingsError, match=r"^WIDGET_AVATAR \(widget 'default'\): /static/x.png"):
        make_app(sandbox, tmp_path, WIDGET_AVATAR="/static/x.png")


def test_an_avatar_image_next_to_the_widgets_file_is_served_under_its_fingerprint(
    sandbox, tmp_path
):
    from webwidget.sandbox.files import png

    site = owner_site(tmp_path, theme='avatar = "brand/acme.png"')
    (site / "brand").mkdir()
    (site / "brand" / "acme.png").write_bytes(png(rgb=(200, 30, 90)))
    # The built-in header shows the avatar (this site's header override does not).
    (site / "acme-templates" / "widget" / "_header.html").unlink()
    client = https_client(site_app(sandbox, tmp_path, site))
    src = re.search(
        r'<img class="ww-brand__avatar" src="(/themes/acme/avatar\?v=[0-9a-f]{12})"',
        client.get("/w/acme").get_data(as_text=True),
    ).group(1)
    served = client.get(src)
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.data == (site / "brand" / "acme.png").read_bytes()
    assert "immutable" in served.headers["Cache-Control"]
    assert client.get("/themes/default/avatar").status_code == 404


@pytest.mark.parametrize(
    "value, why",
    [
        ("brand/missing.png", "brand/missing.png' does not exist"),
        ("brand/logo.svg", "must be a PNG, JPEG, GIF or WebP image"),
        ("ftp://cdn.example/a.png", "must be an https:// URL"),
        ("//cdn.example/a.png", "must be an https:// URL"),
    ],
)
def test_an_unusable_avatar_file_stops_start_up_naming_file_and_widget(
    sandbox, tmp_path, value, why
):
    site = owner_site(tmp_path, theme=f'avatar = "{value}"')
    (site / "brand").mkdir()
    (site / "brand" / "logo.svg").write_text("<svg/>", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        site_app(sandbox, tmp_path, site)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{site / 'widgets.toml'}: widget 'acme': theme.avatar: ")
    assert why in message, message


def test_an_existing_local_avatar_and_a_remote_one_start(sandbox, tmp_path, caplog):
    static = Path(__file__).resolve().parent.parent / "static"
    real = next(p for p in static.rglob("*") if p.is_file())
    path = "/static/" + real.relative_to(static).as_posix()
    with caplog.at_level(logging.WARNING):
        make_app(sandbox, tmp_path, WIDGET_AVATAR=path)
        make_app(sandbox, tmp_path, WIDGET_AVATAR="https://cdn.example/a.png")
    assert not [r for r in caplog.records if "avatar" in r.getMessage()]
    with caplog.at_level(logging.WARNING):
        make_app(sandbox, tmp_path, WIDGET_AVATAR="/brand/logo.png")
    assert any(
        "WIDGET_AVATAR (widget 'default'): /brand/logo.png is not under /static/" in r.getMessage()
        for r in caplog.records
    )


def test_what_the_csp_would_block_in_the_owner_stylesheet_is_warned_about(
    sandbox, tmp_path, caplog
):
    site = owner_site(tmp_path)
    (site / "acme.css").write_text(
        "/* @import in a comment is fine */\n"
        '@import url("https://fonts.example/css");\n'
        "@font-face { font-family: Acme; src: url(/static/acme.woff2); }\n"
        ".a { background: url(waves.png); }\n"
        ".b { background: url('/static/ok.png'), url(data:image/png;base64,AA==); }\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="webwidget.themes"):
        site_app(sandbox, tmp_path, site)
    lines = [r.getMessage() for r in caplog.records if r.name == "webwidget.themes"]
    prefix = f"{site / 'acme.css'}: widget 'acme': "
    assert lines == [
        f"{prefix}line 2: @import from another origin is blocked by the CSP",
        f"{prefix}line 3: @font-face: the CSP loads no web fonts; use the theme's `font` with "
        "installed fonts",
        f"{prefix}line 4: url(waves.png) resolves under /themes/, where nothing is served; use "
        "/static/... or https://",
    ]


def test_an_override_file_nothing_uses_is_warned_about_with_the_closest_name(
    sandbox, tmp_path, caplog
):
    site = owner_site(tmp_path)
    folder = site / "acme-templates" / "widget"
    (folder / "_welcom.html").write_text("<section id='ww-welcome'></section>", encoding="utf-8")
    # The owner's own partial, included by an override, is used: no warning for it.
    (folder / "_acme_hours.html").write_text("<p>hours</p>", encoding="utf-8")
    (folder / "_header.html").write_text(
        HEADER.replace("</div>", '{% include "widget/_acme_hours.html" %}</div>'),
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="webwidget.web.overrides"):
        site_app(sandbox, tmp_path, site)
    lines = [r.getMessage() for r in caplog.records if r.name == "webwidget.web.overrides"]
    assert lines == [
        f"{folder / '_welcom.html'}: widget 'acme': webwidget has no template "
        "'widget/_welcom.html', so nothing uses it (the closest template is widget/_welcome.html)"
    ]


def test_an_override_that_drops_the_hooks_the_page_relies_on_is_warned_about(
    sandbox, tmp_path, caplog
):
    site = owner_site(tmp_path)
    folder = site / "acme-templates" / "widget"
    (folder / "_header.html").write_text('<div class="mine">{{ title }}</div>', encoding="utf-8")
    (folder / "_conversation.html").write_text(
        '<section id="ww-conversation"><div id="ww-status"></div>'
        '<div id="ww-log">{% include "widget/_messages.html" %}</div></section>',
        encoding="utf-8",
    )
    (folder / "_message.html").write_text(
        '<article id="{{ m.id|dom_id }}">{{ m.id }}</article>', encoding="utf-8"
    )
    with caplog.at_level(logging.WARNING, logger="webwidget.web.overrides"):
        site_app(sandbox, tmp_path, site)
    lines = sorted(r.getMessage() for r in caplog.records if r.name == "webwidget.web.overrides")
    assert len(lines) == 3, lines
    conversation, header, message = lines
    assert conversation.startswith(f"{folder / '_conversation.html'}: widget 'acme': ")
    assert "the override drops" in conversation and 'role="log"' in conversation
    assert header.startswith(f"{folder / '_header.html'}: widget 'acme': ")
    assert 'drops id="ww-brand"' in header
    assert "drops data-message-id" in message


def test_an_override_that_drops_a_partial_the_page_needs_is_warned_about_once(
    sandbox, tmp_path, caplog
):
    # A welcome view written from the context table, without the header actions: "End
    # chat" would stay in the header after the chat ended. One line says so at start-up.
    site = owner_site(tmp_path)
    folder = site / "acme-templates" / "widget"
    (folder / "_welcome.html").write_text(
        '<section id="ww-welcome" class="ww-welcome">'
        '<div id="ww-status" role="status">{% include "widget/_notice.html" %}</div>'
        '<p class="acme-greeting">{{ greeting }}</p>'
        '<form method="post" action="{{ url_for(\'widget.start\', widget=widget) }}">'
        '{% if draft %}<textarea id="ww-draft" name="text">{{ draft }}</textarea>{% endif %}'
        '<button type="submit">{{ _("Start chat") }}</button></form></section>',
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="webwidget.web.overrides"):
        site_app(sandbox, tmp_path, site)
    lines = [r.getMessage() for r in caplog.records if r.name == "webwidget.web.overrides"]
    assert lines == [
        f"{folder / '_welcome.html'}: widget 'acme': the override drops the include of "
        '"widget/_header_actions.html" from widget/_welcome.html (htmx, widget.js and the '
        "loader rely on them; see docs/theming.md)"
    ]
    # Keeping the include, or the hook it carries, is enough.
    for kept in ('{% include "widget/_header_actions.html" %}', '<div id="ww-actions"></div>'):
        (folder / "_welcome.html").write_text(
            '<section id="ww-welcome"><div id="ww-status"></div><p id="ww-draft"></p>'
            + kept + "</section>",
            encoding="utf-8",
        )
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="webwidget.web.overrides"):
            site_app(sandbox, tmp_path, site)
        assert [r for r in caplog.records if r.name == "webwidget.web.overrides"] == []


def test_the_docs_name_every_template_and_every_include():
    docs = (ROOT / "docs" / "theming.md").read_text(encoding="utf-8")
    templates = ROOT / "templates"
    # The demo's pages are no widget's: nothing overrides them.
    for path in sorted(p for p in templates.rglob("*.html") if p.parent.name != "demo"):
        name = path.relative_to(templates).as_posix()
        assert f"`{name}`" in docs or f"`{path.name}`" in docs, f"{name} is not in the table"
        includes = sorted(set(re.findall(r"""\{%-?\s*include\s+["']([^"']+)["']""",
                                         path.read_text(encoding="utf-8"))))
        if includes:
            line = next((ln for ln in docs.splitlines() if ln.startswith(f"- `{name}` includes")),
                        None)
            assert line is not None, f"docs/theming.md lists no includes of {name}"
            for included in includes:
                assert f"`{included}`" in line, f"{name} includes {included}"


def test_a_clean_override_folder_starts_quietly(sandbox, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        site_app(sandbox, tmp_path, owner_site(tmp_path))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- 4. the panel's radius and shadow -----------------------------------------------------------


def test_panel_radius_and_shadow_reach_the_theme_stylesheet(sandbox, tmp_path):
    site = owner_site(tmp_path, theme='panel_radius = 0\nshadow = "strong"')
    client = https_client(site_app(sandbox, tmp_path, site))
    href = re.search(
        r'href="(/themes/acme\.css\?v=[0-9a-f]+)"', client.get("/w/acme").get_data(as_text=True)
    ).group(1)
    css = client.get(href).get_data(as_text=True)
    assert "--ww-panel-radius: 0px;" in css
    assert f"--ww-panel-shadow: {SHADOWS['strong']};" in css
    default = theme_from_mapping({})
    assert default.panel_radius == 16 and default.shadow == "soft"


def test_the_loader_config_carries_the_panel_radius_and_shadow(sandbox, tmp_path):
    site = owner_site(tmp_path, theme='panel_radius = 4\nshadow = "none"')
    client = https_client(site_app(sandbox, tmp_path, site))
    panel = client.get("/embed/acme.json").get_json()["panel"]
    assert panel == {"radius": 4, "shadow": "none"}
    default = client.get("/embed/default.json").get_json()["panel"]
    assert default == {"radius": 16, "shadow": SHADOWS["soft"]}


def test_bad_panel_values_stop_start_up_naming_the_key(sandbox, tmp_path):
    with pytest.raises(ThemeError, match="shadow: use 'none', 'soft' or 'strong'"):
        theme_from_mapping({"shadow": "huge"})
    with pytest.raises(ThemeError, match="panel_radius: use a whole number of pixels"):
        theme_from_mapping({"panel_radius": 40})
    site = owner_site(tmp_path, theme='shadow = "dramatic"')
    with pytest.raises(SettingsError, match="widget 'acme': theme.shadow: use"):
        site_app(sandbox, tmp_path, site)
    with pytest.raises(SettingsError, match="WIDGET_PANEL_SHADOW: use"):
        make_app(sandbox, tmp_path, WIDGET_PANEL_SHADOW="dramatic")
