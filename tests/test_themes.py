"""Themes: CSS custom properties per widget, the WCAG contrast check, template overrides."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from conftest import CHANNEL_TOKEN, Visitor, https_client, make_app

from webwidget.settings import SettingsError
from webwidget.themes import Theme, ThemeError, contrast_ratio, theme_from_mapping

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "theme-harbour"


def test_contrast_ratio_matches_wcag_reference_values():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#fff", "#ffffff") == pytest.approx(1.0)
    # #767676 is the lightest grey that passes AA on white; #777777 just fails.
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert contrast_ratio("#777777", "#ffffff") < 4.5


def test_the_built_in_theme_passes_aa_in_both_palettes():
    assert Theme().contrast_problems() == []
    theme = theme_from_mapping({"primary_color": "#0b4f6c", "primary_color_dark": "#7cc6e8"})
    assert theme.on_primary == "#ffffff" and theme.dark_on_primary == "#000000"
    assert theme.contrast_problems() == []


def test_low_contrast_colours_are_warned_about_at_start_up(sandbox, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="webwidget.themes"):
        make_app(
            sandbox, tmp_path, WIDGET_PRIMARY_COLOR="#ffcc00", WIDGET_ON_PRIMARY_COLOR="#ffffff"
        )
    warnings = [r.getMessage() for r in caplog.records if r.name == "webwidget.themes"]
    assert any(
        "widget 'default'" in w and "#ffffff on #ffcc00" in w and "below WCAG AA 4.5:1" in w
        for w in warnings
    ), warnings
    # Yellow as button text on white fails too, and dark mode keeps the same yellow.
    assert any("#ffcc00 on #ffffff" in w and "change primary_color" in w for w in warnings)


def test_good_colours_start_quietly(sandbox, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="webwidget.themes"):
        make_app(
            sandbox, tmp_path, WIDGET_PRIMARY_COLOR="#0b4f6c", WIDGET_PRIMARY_COLOR_DARK="#7cc6e8"
        )
    assert [r for r in caplog.records if r.name == "webwidget.themes"] == []


def test_a_light_only_theme_is_not_checked_against_the_dark_palette():
    assert (
        theme_from_mapping({"primary_color": "#0b4f6c", "mode": "light"}).contrast_problems() == []
    )
    assert (
        theme_from_mapping({"primary_color": "#0b4f6c", "mode": "auto"}).contrast_problems() != []
    )


def test_theme_settings_reach_the_page_as_attributes_and_a_cacheable_stylesheet(sandbox, tmp_path):
    app = make_app(
        sandbox,
        tmp_path,
        WIDGET_PRIMARY_COLOR="#0B4F6C",
        WIDGET_POSITION="left",
        WIDGET_THEME_MODE="dark",
        WIDGET_SUBTITLE="Replies in minutes",
        WIDGET_AVATAR="https://cdn.example/a.png",
        WIDGET_GREETING="Ahoy there",
        WIDGET_FONT="Georgia, serif",
        WIDGET_RADIUS=4,
        WIDGET_TITLE="Harbour",
    )
    client = https_client(app)
    html = client.get("/w/default").get_data(as_text=True)
    assert re.search(r'<html [^>]*data-theme="dark"[^>]*data-position="left"', html)
    assert "Replies in minutes" in html and "Ahoy there" in html and "Harbour" in html
    assert 'src="https://cdn.example/a.png"' in html
    # The CSP forbids inline styles: the theme arrives as a stylesheet from our origin.
    assert "style=" not in html and "<style" not in html
    href = re.search(
        r'<link rel="stylesheet" href="(/themes/default\.css\?v=[0-9a-f]{12})">', html
    ).group(1)
    css = client.get(href)
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert "immutable" in css.headers["Cache-Control"] and "set-cookie" not in css.headers
    body = css.get_data(as_text=True)
    for declaration in (
        "--ww-primary: #0b4f6c",
        "--ww-on-primary: #ffffff",
        "--ww-radius: 4px",
        "--ww-font: Georgia, serif",
        ':root[data-theme="dark"]',
    ):
        assert declaration in body
    stale = client.get("/themes/default.css?v=old")
    assert stale.status_code == 200 and "immutable" not in stale.headers["Cache-Control"]
    assert client.get("/themes/nope.css").status_code == 404


def test_a_bad_theme_setting_stops_start_up_naming_the_setting(sandbox, tmp_path):
    with pytest.raises(SettingsError, match="WIDGET_PRIMARY_COLOR: 'teal' is not a colour"):
        make_app(sandbox, tmp_path, WIDGET_PRIMARY_COLOR="teal")
    with pytest.raises(SettingsError, match="WIDGET_POSITION"):
        make_app(sandbox, tmp_path, WIDGET_POSITION="top")
    with pytest.raises(ThemeError, match="mode"):
        theme_from_mapping({"mode": "sepia"})


@pytest.fixture
def harbour_app(sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("HARBOUR_CHANNEL_TOKEN", CHANNEL_TOKEN)
    monkeypatch.setenv("BAKERY_CHANNEL_TOKEN", CHANNEL_TOKEN)
    return make_app(sandbox, tmp_path, WIDGETS_FILE=str(EXAMPLE / "widgets.toml"))


def test_the_harbour_example_overrides_its_header_and_text_messages_only(harbour_app):
    visitor = Visitor(https_client(harbour_app))
    welcome = visitor.get("/w/harbour").get_data(as_text=True)
    assert 'class="ww-brand harbour-brand"' in welcome and "Harbour Office" in welcome
    assert "Ahoy! Ask us about berths" in welcome
    assert visitor.start("harbour").status_code == 303
    chat = visitor.get("/w/harbour").get_data(as_text=True)
    assert 'class="ww-text harbour-text"' in chat
    # Partials it does not override still come from the built-in templates.
    assert 'role="log"' in chat and "End chat" in chat
    # Other widgets of the same deployment are untouched by harbour's folder.
    assert visitor.start("default").status_code == 303
    default = visitor.get("/w/default").get_data(as_text=True)
    assert "harbour-" not in default and 'class="ww-text"' in default
    assert "harbour-" not in visitor.get("/w/bakery").get_data(as_text=True)


def test_the_harbour_titles_follow_the_visitor_language(harbour_app):
    client = https_client(harbour_app)
    german = client.get("/w/harbour", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Hafenbüro" in german and "Ahoi!" in german
    # The override's own text comes from the example's own catalog (templates/translations).
    assert '<p class="harbour-hours">Bürozeiten: Mo–Fr 9–17 Uhr</p>' in german
    assert "مكتب الميناء" in client.get("/w/harbour?lang=ar").get_data(as_text=True)


def test_widget_template_dir_overrides_every_widget(sandbox, tmp_path):
    folder = tmp_path / "owner"
    (folder / "widget").mkdir(parents=True)
    (folder / "widget" / "_header.html").write_text(
        '<div id="ww-brand">Owner header {{ title }}</div>'
    )
    app = make_app(sandbox, tmp_path, WIDGET_TEMPLATE_DIR=str(folder), WIDGET_TITLE="Shop")
    assert "Owner header Shop" in https_client(app).get("/w/default").get_data(as_text=True)
    with pytest.raises(SettingsError, match="WIDGET_TEMPLATE_DIR"):
        make_app(sandbox, tmp_path, WIDGET_TEMPLATE_DIR=str(tmp_path / "missing"))
