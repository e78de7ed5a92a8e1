"""Widget themes: colours, shape and words, and the CSS custom properties they become.

A theme becomes a small stylesheet (`Theme.css()`), served per widget by
`web/theming.py` (the CSP allows only stylesheets from our origin, so no inline style)
and linked after `static/css/widget.css`. An owner's own stylesheet (the theme's
`stylesheet`, a file) and avatar file are read once at start-up here (only from inside
the widget's folder: see owner_files.py), and the stylesheet checked for what the CSP
would block.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

from .owner_files import OwnerFileError, read_owner_file, widget_folder

log = logging.getLogger(__name__)

HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
# A font-family list: names, quotes, commas, spaces; nothing that could end the declaration.
FONT_STACK = re.compile(r"^[A-Za-z0-9 ,\"'\-]{1,200}$")
MODES = ("auto", "light", "dark")
POSITIONS = ("right", "left")
AA_TEXT = 4.5

# The built-in palettes of static/css/widget.css; a theme changes the primary colour.
LIGHT = {"bg": "#ffffff", "surface": "#f1f3f6", "text": "#1b1f24", "muted": "#57606a"}
DARK = {"bg": "#16181d", "surface": "#262a31", "text": "#e8eaed", "muted": "#a8b0ba"}
DEFAULT_PRIMARY = "#1f5fbf"
DEFAULT_PRIMARY_DARK = "#8ab4f8"
# The loader's panel around the iframe: corner radius and one of three shadows.
DEFAULT_PANEL_RADIUS = 16
SHADOWS = {
    "none": "none",
    "soft": "0 8px 30px rgba(0, 0, 0, 0.3)",
    "strong": "0 16px 48px rgba(0, 0, 0, 0.55), 0 2px 8px rgba(0, 0, 0, 0.35)",
}
# An owner's stylesheet and avatar are theirs to choose, but they are kept in memory.
MAX_STYLESHEET_BYTES = 256 * 1024
MAX_IMAGE_BYTES = 512 * 1024
# Raster images only: an SVG opened from our origin could run script.
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


class ThemeError(ValueError):
    """A theme value is malformed; the message names the field."""


Localized = str | Mapping[str, str]


@dataclass(frozen=True)
class OwnerStylesheet:
    """A site owner's CSS file, read once at start-up (a restart reloads it)."""

    path: str
    text: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """The cache key in its URL: changes whenever the file's content does."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]


def read_stylesheet(value: object, base_dir: Path | None) -> OwnerStylesheet:
    """Read the theme's `stylesheet`: a .css file inside the widget's folder; ThemeError if not."""
    if not isinstance(value, str) or not value.strip():
        raise ThemeError("stylesheet: use the path of a .css file, e.g. 'acme.css'")
    try:
        path, raw = read_owner_file(
            widget_folder(base_dir), value, suffixes=(".css",), limit=MAX_STYLESHEET_BYTES
        )
    except OwnerFileError as exc:
        raise ThemeError(f"stylesheet: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ThemeError(
            f"stylesheet: {str(path)!r} is not UTF-8 text (byte {exc.start})"
        ) from None
    return OwnerStylesheet(str(path), text)


@dataclass(frozen=True)
class OwnerImage:
    """A site owner's image file (the avatar), read once at start-up."""

    path: str
    data: bytes = field(repr=False)
    mimetype: str

    @property
    def fingerprint(self) -> str:
        """The cache key in its URL: changes whenever the file's content does."""
        return hashlib.sha256(self.data).hexdigest()[:12]


def read_avatar_file(value: str, base_dir: Path | None) -> OwnerImage:
    """Read an avatar image inside the widget's folder; raster formats only (no SVG scripts)."""
    mimetype = IMAGE_TYPES.get(Path(value).suffix.lower())
    if mimetype is None:
        raise ThemeError(
            f"avatar: {value!r} must be a PNG, JPEG, GIF or WebP image, an https:// URL "
            "or a path like /static/..."
        )
    try:
        path, data = read_owner_file(
            widget_folder(base_dir), value, suffixes=tuple(IMAGE_TYPES), limit=MAX_IMAGE_BYTES
        )
    except OwnerFileError as exc:
        raise ThemeError(f"avatar: {exc}") from None
    return OwnerImage(str(path), data, mimetype)


def localized(value: Localized | None, lang: str, fallback: str = "") -> str:
    """A text that may be one string or a table by language code (`en`, `de`, ...)."""
    if value is None:
        return fallback
    if isinstance(value, str):
        return value
    lang = lang.lower()
    for key in (lang, lang.split("-")[0], "en"):
        if value.get(key):
            return value[key]
    return next(iter(value.values()), fallback)


def _rgb(color: str) -> tuple[int, int, int]:
    hex_digits = color.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(c * 2 for c in hex_digits)
    red, green, blue = (int(hex_digits[i : i + 2], 16) for i in (0, 2, 4))
    return red, green, blue


def relative_luminance(color: str) -> float:
    """WCAG 2 relative luminance of a #rgb or #rrggbb colour."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2 contrast ratio between two colours, from 1 to 21."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def best_text_on(color: str) -> str:
    """Black or white, whichever reads better on `color`."""
    return (
        "#ffffff"
        if contrast_ratio("#ffffff", color) >= contrast_ratio("#000000", color)
        else "#000000"
    )


def _color(value: object, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not HEX_COLOR.match(value.strip()):
        raise ThemeError(f"{name}: {value!r} is not a colour like #1f5fbf")
    return value.strip().lower()


def _text(value: object, name: str, limit: int = 200) -> Localized | None:
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) > limit:
            raise ThemeError(f"{name}: at most {limit} characters")
        return value
    if (
        isinstance(value, Mapping)
        and value
        and all(
            isinstance(k, str) and isinstance(v, str) and len(v) <= limit for k, v in value.items()
        )
    ):
        return {k.lower(): v for k, v in value.items()}
    raise ThemeError(f"{name}: use a string or a table of strings by language code")


@dataclass(frozen=True)
class Theme:
    """How one widget looks and greets; every field is optional."""

    primary_color: str = DEFAULT_PRIMARY
    # Text on the primary colour; black or white by contrast unless set.
    on_primary_color: str | None = None
    # The primary colour on the dark palette; the light one is kept for dark if unset
    # only when the owner chose one (the default blue is too dark on dark grey).
    primary_color_dark: str | None = None
    position: str = "right"
    title: Localized | None = None
    subtitle: Localized | None = None
    avatar: str | None = None
    greeting: Localized | None = None
    font: str | None = None
    radius: int = 14
    mode: str = "auto"
    # The loader's panel: corner radius in px and a shadow from SHADOWS.
    panel_radius: int = DEFAULT_PANEL_RADIUS
    shadow: str = "soft"
    # The owner's own CSS, linked after every built-in stylesheet.
    stylesheet: OwnerStylesheet | None = None
    # An avatar image next to the widgets file (instead of a URL in `avatar`).
    avatar_file: OwnerImage | None = None

    @property
    def on_primary(self) -> str:
        """Text colour on the primary colour in the light palette."""
        return self.on_primary_color or best_text_on(self.primary_color)

    @property
    def dark_primary(self) -> str:
        """The primary colour on the dark palette."""
        if self.primary_color_dark:
            return self.primary_color_dark
        return DEFAULT_PRIMARY_DARK if self.primary_color == DEFAULT_PRIMARY else self.primary_color

    @property
    def dark_on_primary(self) -> str:
        """Text colour on the primary colour in the dark palette."""
        if (
            self.primary_color_dark is None
            and self.on_primary_color
            and self.dark_primary == self.primary_color
        ):
            return self.on_primary_color
        return best_text_on(self.dark_primary)

    def css(self) -> str:
        """The theme as CSS custom properties overriding static/css/widget.css."""
        font = f"  --ww-font: {self.font};\n" if self.font else ""
        light = (
            f"  --ww-primary: {self.primary_color};\n  --ww-on-primary: {self.on_primary};\n"
            f"  --ww-focus: {self.primary_color};\n"
        )
        dark_palette = "".join(f"  --ww-{k}: {v};\n" for k, v in DARK.items())
        dark = (
            f"  --ww-primary: {self.dark_primary};\n  --ww-on-primary: {self.dark_on_primary};\n"
            f"  --ww-focus: {self.dark_primary};\n"
        )
        panel = (
            f"  --ww-panel-radius: {self.panel_radius}px;\n"
            f"  --ww-panel-shadow: {SHADOWS[self.shadow]};\n"
        )
        return (
            "/* Generated from the widget's theme (webwidget/themes.py). */\n"
            f":root {{\n{light}  --ww-radius: {self.radius}px;\n{panel}{font}}}\n"
            "@media (prefers-color-scheme: dark) {\n"
            f'  :root:not([data-theme="light"]) {{\n{dark}  }}\n}}\n'
            f':root[data-theme="dark"] {{\n{dark_palette}  --ww-border: #3c424b;\n{dark}}}\n'
        )

    @property
    def fingerprint(self) -> str:
        """Changes whenever the stylesheet does: the cache key in its URL."""
        return hashlib.sha256(self.css().encode()).hexdigest()[:12]

    def contrast_problems(self) -> list[str]:
        """Each pair of colours below WCAG AA (4.5:1 for text), described for the owner."""
        pairs = []
        if self.mode in ("auto", "light"):
            pairs += [
                (
                    "text on the primary colour (header, send button)",
                    self.on_primary,
                    self.primary_color,
                    "primary_color/on_primary_color",
                ),
                (
                    "the primary colour as text on the background (buttons, links)",
                    self.primary_color,
                    LIGHT["bg"],
                    "primary_color",
                ),
            ]
        if self.mode in ("auto", "dark"):
            pairs += [
                (
                    "text on the primary colour in dark mode",
                    self.dark_on_primary,
                    self.dark_primary,
                    "primary_color_dark",
                ),
                (
                    "the primary colour as text on the dark background",
                    self.dark_primary,
                    DARK["bg"],
                    "primary_color_dark",
                ),
            ]
        problems = []
        for what, fg, bg, fix in pairs:
            ratio = contrast_ratio(fg, bg)
            if ratio < AA_TEXT:
                problems.append(
                    f"{what}: {fg} on {bg} has contrast {ratio:.2f}:1, below WCAG AA {AA_TEXT}:1"
                    f" (change {fix})"
                )
        return problems


THEME_FIELDS = {
    "primary_color",
    "on_primary_color",
    "primary_color_dark",
    "position",
    "title",
    "subtitle",
    "avatar",
    "greeting",
    "font",
    "radius",
    "mode",
    "panel_radius",
    "shadow",
    "stylesheet",
}


def _pixels(values: Mapping[str, object], name: str, default: int) -> int:
    value = values.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 32:
        raise ThemeError(f"{name}: use a whole number of pixels from 0 to 32, not {value!r}")
    return value


def theme_from_mapping(values: Mapping[str, object], *, base_dir: Path | None = None) -> Theme:
    """Validate a theme table (widgets file or settings); a ThemeError names the field.

    `stylesheet` and a file `avatar` are inside `base_dir` (the widgets file's folder; the
    working directory when None).
    """
    unknown = sorted(set(values) - THEME_FIELDS)
    if unknown:
        raise ThemeError(
            f"{unknown[0]}: unknown theme field (known: {', '.join(sorted(THEME_FIELDS))})"
        )
    # Each value checked above; Theme's fields differ in type.
    kwargs: dict[str, Any] = {}
    for name in ("primary_color", "on_primary_color", "primary_color_dark"):
        color = _color(values.get(name), name)
        if color:
            kwargs[name] = color
    position = values.get("position", "right")
    if position not in POSITIONS:
        raise ThemeError(f"position: use 'right' or 'left', not {position!r}")
    kwargs["position"] = position
    mode = values.get("mode", "auto")
    if mode not in MODES:
        raise ThemeError(f"mode: use 'auto', 'light' or 'dark', not {mode!r}")
    kwargs["mode"] = mode
    for name in ("title", "subtitle", "greeting"):
        kwargs[name] = _text(values.get(name), name, 500 if name == "greeting" else 120)
    avatar = values.get("avatar")
    if avatar:
        parts = urlsplit(str(avatar))
        # https or a path on this server: the page's CSP allows images from nowhere else.
        if (parts.scheme == "https" and parts.hostname) or (
            not parts.scheme and str(avatar).startswith("/") and not str(avatar).startswith("//")
        ):
            kwargs["avatar"] = str(avatar)
        elif not parts.scheme and not parts.netloc:
            # A file of the owner's, relative to the widgets file: served from /themes/.
            kwargs["avatar_file"] = read_avatar_file(str(avatar), base_dir)
        else:
            raise ThemeError(
                f"avatar: {avatar!r} must be an https:// URL, a path like /static/... "
                "or an image file next to the widgets file"
            )
    font = values.get("font")
    if font:
        if not isinstance(font, str) or not FONT_STACK.match(font):
            raise ThemeError("font: use a CSS font-family list such as 'Georgia, serif'")
        kwargs["font"] = font
    kwargs["radius"] = _pixels(values, "radius", 14)
    kwargs["panel_radius"] = _pixels(values, "panel_radius", DEFAULT_PANEL_RADIUS)
    shadow = values.get("shadow", "soft")
    if shadow not in SHADOWS:
        raise ThemeError(f"shadow: use 'none', 'soft' or 'strong', not {shadow!r}")
    kwargs["shadow"] = shadow
    if values.get("stylesheet") is not None:
        kwargs["stylesheet"] = read_stylesheet(values["stylesheet"], base_dir)
    return Theme(**kwargs)


def warn_low_contrast(themes: Mapping[str, Theme]) -> None:
    """Log a warning at start-up for every widget whose colours fall below WCAG AA."""
    for widget_id, theme in themes.items():
        for problem in theme.contrast_problems():
            log.warning("widget %r theme: %s", widget_id, problem)


_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')\s]*)""")


def stylesheet_problems(text: str) -> list[str]:
    """What in an owner's CSS the page's CSP or our URL layout would silently break."""
    # Blank out comments but keep their newlines, so line numbers stay true.
    text = _CSS_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        if re.search(r"@import\s+(?:url\()?\s*[\"']?(?:https?:)?//", line):
            problems.append(f"line {number}: @import from another origin is blocked by the CSP")
        if "@font-face" in line:
            problems.append(
                f"line {number}: @font-face: the CSP loads no web fonts; use the theme's "
                "`font` with installed fonts"
            )
        for target in _CSS_URL.findall(line):
            if target and not target.startswith(("/", "https:", "http:", "data:", "#")):
                problems.append(
                    f"line {number}: url({target}) resolves under /themes/, where nothing "
                    "is served; use /static/... or https://"
                )
    return problems


def warn_about_stylesheets(themes: Mapping[str, Theme]) -> None:
    """Log one warning per problem in each owner stylesheet, naming the file and the widget."""
    for widget_id, theme in themes.items():
        owned = theme.stylesheet
        if owned is not None:
            for problem in stylesheet_problems(owned.text):
                log.warning("%s: widget %r: %s", owned.path, widget_id, problem)


def init_app(app: Flask) -> None:
    """Warn once about every owner stylesheet and every theme's low contrast."""
    themes = {widget_id: widget.theme for widget_id, widget in app.extensions[
        "webwidget.widgets"].items()}
    warn_about_stylesheets(themes)
    warn_low_contrast(themes)
