"""Several widgets from one TOML file, secrets from the environment, clear start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CHANNEL_TOKEN, SECRET_KEY, Visitor, https_client, widget_settings

from webwidget.app import create_app
from webwidget.settings import Settings, SettingsError
from webwidget.widgets import load_widgets_file

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "theme-harbour" / "widgets.toml"
ENV = {"HARBOUR_CHANNEL_TOKEN": CHANNEL_TOKEN, "BAKERY_CHANNEL_TOKEN": CHANNEL_TOKEN}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "widgets.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def file_app(sandbox, tmp_path, monkeypatch):
    """The example widgets file on the sandbox, without the environment's `default` widget."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    settings = Settings(
        _env_file=None,
        SECRET_KEY=SECRET_KEY,
        CHATCAPTAIN_BASE_URL=sandbox.url,
        CHATCAPTAIN_SENDING_ENABLED=True,
        SESSION_STORE_URL=f"sqlite:///{tmp_path / 's.sqlite3'}",
        WIDGETS_FILE=str(EXAMPLE),
    )
    app = create_app(settings=settings, instance_path=str(tmp_path))
    app.config["TESTING"] = True
    return app


def test_example_file_serves_each_widget_and_keeps_the_token_out_of_every_byte(file_app):
    widgets = file_app.extensions["webwidget.widgets"]
    assert set(widgets) == {"harbour", "bakery"}
    assert widgets["harbour"].channel_token.get_secret_value() == CHANNEL_TOKEN
    assert widgets["harbour"].allowed_origins == (
        "https://www.harbour.example",
        "https://harbour.example",
    )
    assert widgets["bakery"].language == "DE"
    visitor = Visitor(https_client(file_app))
    assert visitor.get("/w/default").status_code == 404
    for widget in ("harbour", "bakery"):
        page = visitor.get(f"/w/{widget}")
        assert page.status_code == 200
        started = visitor.start(widget)
        assert started.status_code == 303
        chat = visitor.get(f"/w/{widget}")
        assert b"data-message-id=" in chat.data
        for response in (page, started, chat):
            raw = response.get_data() + str(response.headers).encode()
            assert CHANNEL_TOKEN.encode() not in raw
    # Each widget is framed only by its own origins.
    csp = visitor.get("/w/bakery").headers["Content-Security-Policy"]
    assert "https://bakery.example" in csp and "harbour" not in csp


def test_environment_widget_keeps_working_and_a_file_adds_more(sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("HARBOUR_CHANNEL_TOKEN", CHANNEL_TOKEN)
    monkeypatch.setenv("BAKERY_CHANNEL_TOKEN", CHANNEL_TOKEN)
    store = f"sqlite:///{tmp_path / 's.sqlite3'}"
    only_env = create_app(settings=widget_settings(sandbox.url, store), instance_path=str(tmp_path))
    assert set(only_env.extensions["webwidget.widgets"]) == {"default"}
    both = create_app(
        settings=widget_settings(sandbox.url, store, WIDGETS_FILE=str(EXAMPLE)),
        instance_path=str(tmp_path),
    )
    assert set(both.extensions["webwidget.widgets"]) == {"default", "harbour", "bakery"}
    visitor = Visitor(https_client(both))
    assert visitor.start("default").status_code == 303
    assert b"data-message-id=" in visitor.get("/w/default").data


def test_demo_mode_keeps_the_demo_widget_and_runs_file_widgets_without_ids_on_the_sandbox(tmp_path):
    path = write(tmp_path, '[widgets.shop]\n[widgets.shop.theme]\nprimary_color = "#0b4f6c"\n')
    app = create_app(
        settings=Settings(_env_file=None, WIDGETS_FILE=str(path)), instance_path=str(tmp_path)
    )
    app.config["TESTING"] = True
    widgets = app.extensions["webwidget.widgets"]
    assert set(widgets) == {"default", "shop"}
    assert widgets["shop"].chatbot_id == widgets["default"].chatbot_id
    visitor = Visitor(https_client(app))
    for widget in ("default", "shop"):
        assert visitor.start(widget).status_code == 303
        assert b"data-message-id=" in visitor.get(f"/w/{widget}").data


GOOD = """
[widgets.shop]
chatbot_id = "bot"
channel_id = "channel"
channel_token_env = "SHOP_TOKEN"
allowed_origins = ["https://shop.example"]
"""


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (
            GOOD,
            {},
            "widget 'shop': channel_token_env: the environment variable SHOP_TOKEN is not set",
        ),
        (
            GOOD.replace('channel_id = "channel"\n', ""),
            {"SHOP_TOKEN": "t"},
            "widget 'shop': channel_id: missing",
        ),
        (
            GOOD.replace("https://shop.example", "shop.example"),
            {"SHOP_TOKEN": "t"},
            "widget 'shop': allowed_origins: 'shop.example' is not an origin",
        ),
        (GOOD + 'colour = "red"\n', {"SHOP_TOKEN": "t"}, "widget 'shop': colour: unknown field"),
        (
            GOOD + 'channel_token = "x"\n',
            {"SHOP_TOKEN": "t"},
            "widget 'shop': set channel_token or channel_token_env, not both",
        ),
        (
            GOOD + '[widgets.shop.theme]\nprimary_color = "blue"\n',
            {"SHOP_TOKEN": "t"},
            "widget 'shop': theme.primary_color: 'blue' is not a colour",
        ),
        (
            GOOD + "[widgets.shop.theme]\nradius = 99\n",
            {"SHOP_TOKEN": "t"},
            "widget 'shop': theme.radius",
        ),
        (
            GOOD + '[widgets.shop.theme]\navatar = "javascript:alert(1)"\n',
            {"SHOP_TOKEN": "t"},
            "widget 'shop': theme.avatar",
        ),
        (
            GOOD + '[widgets.shop.theme]\nfont = "x; } body { color: red"\n',
            {"SHOP_TOKEN": "t"},
            "widget 'shop': theme.font",
        ),
        (GOOD + 'template_dir = "nowhere"\n', {"SHOP_TOKEN": "t"}, "widget 'shop': template_dir:"),
        (
            GOOD.replace("[widgets.shop]", "[widgets.Shop]"),
            {"SHOP_TOKEN": "t"},
            "widget 'Shop': the id may hold only",
        ),
        (GOOD.replace('"bot"', "bot"), {}, "is not valid TOML"),
        ("", {}, "no widgets"),
    ],
)
def test_a_bad_file_names_the_widget_and_the_field(tmp_path, text, env, expected):
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_widgets_file(path, environ=env)
    assert expected in str(info.value)


def test_a_bad_file_stops_start_up_with_that_message(sandbox, tmp_path):
    path = write(tmp_path, GOOD)
    settings = widget_settings(sandbox.url, f"sqlite:///{tmp_path / 's'}", WIDGETS_FILE=str(path))
    with pytest.raises(SettingsError, match="widget 'shop': channel_token_env"):
        create_app(settings=settings, instance_path=str(tmp_path))
    with pytest.raises(SettingsError, match="cannot be read"):
        load_widgets_file(tmp_path / "missing.toml")


def test_a_file_alone_is_enough_in_production(tmp_path):
    settings = Settings(
        _env_file=None,
        SECRET_KEY=SECRET_KEY,
        CHATCAPTAIN_BASE_URL="https://api.example",
        WIDGETS_FILE="w.toml",
    )
    assert settings.CHATCAPTAIN_CHATBOT_ID is None
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        from webwidget.settings import load_settings

        load_settings(
            _env_file=None, CHATCAPTAIN_BASE_URL="https://api.example", WIDGETS_FILE="w.toml"
        )
