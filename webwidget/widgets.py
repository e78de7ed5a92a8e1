"""The widgets one deployment serves: their ChatCaptain ids, secrets, origins and themes.

Widgets come from a TOML file (the WIDGETS_FILE setting) and/or the single-widget
environment settings (the widget `default`). The file may be committed: a widget names
the environment variable that holds its channel token (`channel_token_env`) instead of
holding the token. A bad file stops start-up with a message naming widget and field.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from flask import Flask
from pydantic import SecretStr
from werkzeug.security import safe_join

from .owner_files import OwnerFileError, folder_inside, widget_folder
from .settings import LANGUAGE_CODE, Settings, SettingsError, parse_origin, split_list
from .themes import Theme, ThemeError, theme_from_mapping

log = logging.getLogger(__name__)

DEFAULT_WIDGET = "default"
WIDGET_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
WIDGET_FIELDS = {
    "chatbot_id",
    "channel_id",
    "channel_token",
    "channel_token_env",
    "allowed_origins",
    "language",
    "title",
    "template_dir",
    "theme",
}


class WidgetsFileError(SettingsError):
    """The widgets file is unreadable or a widget in it is malformed."""


@dataclass(frozen=True)
class WidgetConfig:
    """One embeddable widget; `channel_token` never leaves the server."""

    id: str
    chatbot_id: str
    channel_id: str
    channel_token: SecretStr = field(repr=False)
    allowed_origins: tuple[str, ...]
    language: str = "EN"
    title: str = "Chat with us"
    theme: Theme = field(default_factory=Theme)
    # A folder whose templates override the built-in ones for this widget only.
    template_dir: str | None = None
    # The widgets file it came from; None for the `default` widget of the environment.
    source: str | None = None

    def problem(self, name: str, why: str) -> str:
        """One line naming where `name` (a field like `theme.avatar`) is set, and what is wrong."""
        if self.source:
            return f"{self.source}: widget {self.id!r}: {name}: {why}"
        return f"{setting_name(name)} (widget {self.id!r}): {why}"

    def allows_origin(self, origin: str | None) -> bool:
        """Whether `origin` (scheme://host[:port]) may embed this widget."""
        return origin is not None and origin in self.allowed_origins


def setting_name(name: str) -> str:
    """The environment setting behind a `default` widget's field (`theme.mode` -> ...)."""
    name = name.removeprefix("theme.")
    special = {"mode": "WIDGET_THEME_MODE", "shadow": "WIDGET_PANEL_SHADOW"}
    return special.get(name, f"WIDGET_{name.upper()}")


def theme_from_settings(settings: Settings) -> Theme:
    """The `default` widget's theme from the WIDGET_* settings."""
    values: dict[str, object] = {
        "primary_color": settings.WIDGET_PRIMARY_COLOR,
        "on_primary_color": settings.WIDGET_ON_PRIMARY_COLOR,
        "primary_color_dark": settings.WIDGET_PRIMARY_COLOR_DARK,
        "position": settings.WIDGET_POSITION,
        "subtitle": settings.WIDGET_SUBTITLE,
        "avatar": settings.WIDGET_AVATAR,
        "greeting": settings.WIDGET_GREETING,
        "font": settings.WIDGET_FONT,
        "radius": settings.WIDGET_RADIUS,
        "mode": settings.WIDGET_THEME_MODE,
        "panel_radius": settings.WIDGET_PANEL_RADIUS,
        "shadow": settings.WIDGET_PANEL_SHADOW,
        "stylesheet": settings.WIDGET_STYLESHEET,
    }
    try:
        return theme_from_mapping({k: v for k, v in values.items() if v is not None})
    except ThemeError as exc:
        name, _, why = str(exc).partition(": ")
        setting = setting_name(name)
        raise SettingsError(f"{setting}: {why}") from None


class DemoBot(Protocol):
    """The bundled sandbox's bot (web/demo.py's DemoUpstream): the ids a demo widget
    without its own runs on."""

    @property
    def chatbot_id(self) -> str: ...

    @property
    def channel_id(self) -> str: ...

    @property
    def channel_token(self) -> str: ...


def widgets_from_settings(
    settings: Settings, *, demo: DemoBot | None = None
) -> dict[str, WidgetConfig]:
    """Every widget: the `default` one from the environment (or the demo), then the file's."""
    widgets: dict[str, WidgetConfig] = {}
    if demo is not None:
        widgets[DEFAULT_WIDGET] = WidgetConfig(
            id=DEFAULT_WIDGET,
            chatbot_id=demo.chatbot_id,
            channel_id=demo.channel_id,
            channel_token=SecretStr(demo.channel_token),
            allowed_origins=tuple(settings.WIDGET_ALLOWED_ORIGINS),
            language=settings.WIDGET_LANGUAGE,
            title=settings.WIDGET_TITLE,
            theme=theme_from_settings(settings),
        )
    elif settings.CHATCAPTAIN_CHATBOT_ID:
        widgets[DEFAULT_WIDGET] = WidgetConfig(
            id=DEFAULT_WIDGET,
            chatbot_id=settings.CHATCAPTAIN_CHATBOT_ID,
            channel_id=settings.CHATCAPTAIN_CHANNEL_ID or "",
            channel_token=settings.CHATCAPTAIN_CHANNEL_TOKEN or SecretStr(""),
            allowed_origins=tuple(settings.WIDGET_ALLOWED_ORIGINS),
            language=settings.WIDGET_LANGUAGE,
            title=settings.WIDGET_TITLE,
            theme=theme_from_settings(settings),
        )
    if settings.WIDGETS_FILE:
        # The file's `default`, if any, replaces the environment's.
        widgets.update(load_widgets_file(settings.WIDGETS_FILE, demo=demo, environ=os.environ))
    if not widgets:
        raise SettingsError(
            "no widget configured; set CHATCAPTAIN_CHATBOT_ID, "
            "CHATCAPTAIN_CHANNEL_ID, CHATCAPTAIN_CHANNEL_TOKEN or list widgets in WIDGETS_FILE"
        )
    return widgets


def load_widgets_file(
    path: str | os.PathLike[str],
    *,
    demo: DemoBot | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, WidgetConfig]:
    """Read and validate a widgets TOML file; relative template dirs are relative to it."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WidgetsFileError(
            f"WIDGETS_FILE {str(path)!r} cannot be read: {exc.strerror}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise WidgetsFileError(f"WIDGETS_FILE {str(path)!r} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"widgets"})
    if unknown:
        raise WidgetsFileError(
            f"{path}: unknown top-level key {unknown[0]!r}; put widgets under [widgets.<id>]"
        )
    tables = data.get("widgets")
    if not isinstance(tables, dict) or not tables:
        raise WidgetsFileError(f"{path}: no widgets; add a table like [widgets.default]")
    environ = os.environ if environ is None else environ
    widgets = {}
    for widget_id, table in tables.items():
        try:
            widgets[widget_id] = _widget(widget_id, table, path, demo, environ)
        except (ValueError, TypeError) as exc:
            raise WidgetsFileError(f"{path}: widget {widget_id!r}: {exc}") from None
    return widgets


def _str(table: Mapping[str, object], name: str, required: bool) -> str | None:
    value = table.get(name)
    if value is None:
        if required:
            raise ValueError(f"{name}: missing")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: must be a non-empty string")
    return value.strip()


def _widget(
    widget_id: str, table: object, source: Path, demo: DemoBot | None,
    environ: Mapping[str, str],
) -> WidgetConfig:
    base = source.parent
    if not WIDGET_ID.match(widget_id):
        raise ValueError("the id may hold only a-z, 0-9, '-' and '_' (it is part of the URL)")
    if not isinstance(table, dict):
        raise ValueError("must be a table")
    unknown = sorted(set(table) - WIDGET_FIELDS)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field (known: {', '.join(sorted(WIDGET_FIELDS))})")
    # In demo mode a widget may leave out its ids and runs on the bundled sandbox's bot.
    required = demo is None
    chatbot_id = _str(table, "chatbot_id", required) or (demo.chatbot_id if demo else "")
    channel_id = _str(table, "channel_id", required) or (demo.channel_id if demo else "")
    token = _channel_token(table, environ, required) or (demo.channel_token if demo else "")
    origins = table.get("allowed_origins", [])
    if not isinstance(origins, list | str):
        raise ValueError('allowed_origins: use a list of origins like ["https://www.example.com"]')
    allowed = []
    for item in split_list(origins):
        try:
            allowed.append(parse_origin(item))
        except ValueError as exc:
            raise ValueError(f"allowed_origins: {exc}") from None
    if not allowed and demo is None:
        raise ValueError("allowed_origins: list at least one origin that may embed the widget")
    language = _str(table, "language", False) or "EN"
    if not LANGUAGE_CODE.match(language):
        raise ValueError(
            f"language: use a two-letter language code such as EN or DE, not {language!r}"
        )
    theme_table = table.get("theme", {})
    if not isinstance(theme_table, dict):
        raise ValueError("theme: must be a table [widgets.<id>.theme]")
    try:
        theme = theme_from_mapping(theme_table, base_dir=base)
    except ThemeError as exc:
        raise ValueError(f"theme.{exc}") from None
    template_dir = _str(table, "template_dir", False)
    if template_dir:
        try:
            template_dir = str(folder_inside(widget_folder(base), template_dir))
        except OwnerFileError as exc:
            raise ValueError(f"template_dir: {exc}") from None
    title = _str(table, "title", False)
    return WidgetConfig(
        id=widget_id,
        chatbot_id=chatbot_id,
        channel_id=channel_id,
        channel_token=SecretStr(token),
        allowed_origins=tuple(allowed),
        language=language.upper(),
        title=title or (theme.title if isinstance(theme.title, str) else None) or "Chat with us",
        theme=theme,
        template_dir=template_dir,
        source=str(source),
    )


def _channel_token(table: Mapping[str, object], environ: Mapping[str, str], required: bool) -> str:
    if "channel_token" in table and "channel_token_env" in table:
        raise ValueError("set channel_token or channel_token_env, not both")
    if "channel_token_env" in table:
        name = _str(table, "channel_token_env", True)
        value = environ.get(name or "", "").strip()
        if not value:
            raise ValueError(f"channel_token_env: the environment variable {name} is not set")
        return value
    token = _str(table, "channel_token", False)
    if token is None and required:
        raise ValueError(
            "channel_token_env: missing (name the environment variable holding the token)"
        )
    return token or ""


def check_local_avatars(app: Flask, widgets: Mapping[str, WidgetConfig]) -> None:
    """A local avatar under /static/ must exist (SettingsError); elsewhere, warn once."""
    prefix = f"{app.static_url_path}/"
    for widget in widgets.values():
        avatar = widget.theme.avatar
        if not avatar or not avatar.startswith("/"):
            continue
        path = urlsplit(avatar).path
        if path.startswith(prefix):
            found = safe_join(app.static_folder or "static", path[len(prefix) :])
            if found is None or not Path(found).is_file():
                raise SettingsError(
                    widget.problem(
                        "theme.avatar",
                        f"{avatar} does not exist (no file {path[len(prefix):]!r} in "
                        f"{app.static_folder})",
                    )
                )
        else:
            log.warning(
                "%s",
                widget.problem(
                    "theme.avatar",
                    f"{avatar} is not under {prefix} and webwidget does not serve it; "
                    "make sure your proxy does, or the header shows a broken image",
                ),
            )
