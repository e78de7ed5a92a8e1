"""Message rendering: upstream MessageDto lists become small view models for Jinja partials.

Nothing here talks HTTP or touches sessions. Every string that reaches HTML stays plain
text (Jinja autoescape escapes it) except the Markup built by ``linkify``, which
escapes every piece of upstream text itself (filled WhatsApp placeholders included).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from markupsafe import Markup, escape

from webwidget.domids import dom_id

if TYPE_CHECKING:
    from flask import Flask

    from webwidget.chatcaptain.models import (
        ContentDto,
        MessageContentButtonsDto,
        MessageContentFileDto,
        MessageDto,
        MessageLocationDto,
        MessageMetaWhatsAppTemplate_ButtonDto,
        MessageMetaWhatsAppTemplate_Header_FileDto,
        MessageMetaWhatsAppTemplateDto,
    )

# One mapping from content kind to partial, in display order, so a theme can override
# a single kind (by shadowing the file in its template folder or via ``templates=``).
CONTENT_TEMPLATES: Mapping[str, str] = MappingProxyType(
    {
        "operator": "widget/_content_operator.html",
        "agentHandover": "widget/_content_agentHandover.html",
        "voiceTransfer": "widget/_content_voiceTransfer.html",
        "voiceHangup": "widget/_content_voiceHangup.html",
        "metaWhatsappTemplate": "widget/_content_metaWhatsappTemplate.html",
        "template": "widget/_content_template.html",
        "email": "widget/_content_email.html",
        "file": "widget/_content_file.html",
        "text": "widget/_content_text.html",
        "textToSpeech": "widget/_content_textToSpeech.html",
        "location": "widget/_content_location.html",
        "selectedButton": "widget/_content_selectedButton.html",
        "buttons": "widget/_content_buttons.html",
    }
)
UNKNOWN_TEMPLATE = "widget/_content_unknown.html"

# Kinds that are events about the conversation rather than something someone said.
SYSTEM_KINDS = frozenset({"operator", "agentHandover", "voiceTransfer", "voiceHangup"})
KNOWN_STATUSES = frozenset({"sent", "delivered", "read"})

_SAFE_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_WEB_SCHEMES = frozenset({"http", "https"})
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
# Browsers drop tab/CR/LF anywhere in a URL and C0 controls/space at its ends, so
# "java\tscript:" is javascript: to them; we normalise the same way before judging.
_URL_DROPPED = re.compile(r"[\t\n\r]")
_C0_OR_SPACE = "".join(chr(c) for c in range(0x21))
# Bidi controls and whitespace end a URL: an override inside link text could spoof it.
_BIDI = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
_LINK_RE = re.compile(
    rf"(?:\b(?:https?://|mailto:)|\bwww\.)[^\s<>\"'`{_BIDI}\x00-\x1f\x7f]+",
    re.IGNORECASE,
)
_TRAILING_PUNCT = ".,;:!?'\")]}"
_PLACEHOLDER_RE = re.compile(r"\{\{\s*(\d+)\s*\}\}")


class Part(NamedTuple):
    """One rendered piece of a message: the partial to include and the data it shows."""

    template: str
    data: Any


@dataclass(frozen=True)
class FileView:
    """A file ready for display; ``url`` is None when upstream's URL is not safe."""

    name: str
    url: str | None
    kind: str  # "image", "audio", "video" or "file"
    mime_type: str
    size: float | None
    caption: str | None = None
    transcript: str | None = None


@dataclass(frozen=True)
class ButtonView:
    """A button: a link (``href`` set), a choice to send, or an inert label."""

    label: str
    value: str
    href: str | None = None
    sendable: bool = False

    @property
    def kind(self) -> str:
        """'link', 'choice' (a send form) or 'inert'."""
        if self.href:
            return "link"
        return "choice" if self.sendable else "inert"


@dataclass(frozen=True)
class SpeechView:
    """Text to speech: the text, and the pre-generated audio when it is a web URL."""

    text: str
    audio_url: str | None


@dataclass(frozen=True)
class LocationView:
    """Coordinates with an OpenStreetMap link (None when the coordinates are invalid)."""

    latitude: float
    longitude: float
    display: str
    href: str | None


@dataclass(frozen=True)
class WhatsAppTemplateView:
    """A WhatsApp template with its placeholders already filled and escaped."""

    header_text: Markup | None
    header_file: FileView | None
    body: Markup
    footer: str | None
    buttons: list[ButtonView] = field(default_factory=list)


@dataclass
class MessageView:
    """Everything ``widget/_message.html`` needs to render one message."""

    id: str
    side: str  # "visitor" (outgoing false) or "bot" (outgoing true)
    sender: str
    persona_name: str | None
    avatar_url: str | None
    created: datetime | None
    created_display: str
    status: str | None  # lower-cased upstream status, only for visitor messages
    is_sensitive: bool
    error: str | None
    stream_group_id: str | None
    parts: list[Part]
    can_send: bool = False
    group_start: bool = True  # first of its stream group (or not grouped)
    group_continues: bool = False  # joined to the previous message's bubble
    group_end: bool = True  # last of its stream group (or not grouped)
    kinds: list[str] = field(default_factory=list)  # content kinds of ``parts``, same order

    @property
    def created_iso(self) -> str | None:
        """The creation time for ``<time datetime>``."""
        return self.created.isoformat() if self.created else None

    @property
    def status_key(self) -> str | None:
        """A fixed CSS-safe token for the status: sent, delivered, read or other."""
        if not self.status:
            return None
        return self.status if self.status in KNOWN_STATUSES else "other"

    @property
    def is_system(self) -> bool:
        """True when every part is a conversation event (handover, operator, call)."""
        return bool(self.kinds) and set(self.kinds) <= SYSTEM_KINDS


# --- safety helpers ----------------------------------------------------------------------


def safe_url(url: object, *, schemes: Iterable[str] = _SAFE_SCHEMES) -> str | None:
    """Return the URL (normalised) if its scheme is http, https, mailto or tel, else None."""
    if not isinstance(url, str):
        return None
    cleaned = _URL_DROPPED.sub("", url).strip(_C0_OR_SPACE + "\x7f")
    match = _SCHEME_RE.match(cleaned)
    if not match:
        return None  # relative or scheme-less: its meaning depends on the page, so refuse
    scheme = match.group(1).lower()
    if scheme not in set(schemes):
        return None
    if scheme in _WEB_SCHEMES:
        try:
            if not urlsplit(cleaned).netloc:
                return None
        except ValueError:
            return None
    return cleaned


def _web_url(url: object) -> str | None:
    """Like safe_url, but only http/https (for images, media and avatars)."""
    return safe_url(url, schemes=_WEB_SCHEMES)


def _link(url_text: str) -> str:
    """An escaped anchor for a URL found in text, or the escaped text if it is unsafe."""
    href = safe_url("https://" + url_text if url_text.lower().startswith("www.") else url_text)
    if href is None:
        return str(escape(url_text))
    return (
        f'<a href="{escape(href)}" rel="noopener noreferrer" target="_blank" dir="ltr">'
        f"{escape(url_text)}</a>"
    )


def linkify(text: object) -> Markup:
    """Escape text, then link http(s)/mailto/www. URLs and turn newlines into <br>."""
    if text is None:
        return Markup("")
    text = str(text)
    out: list[str] = []
    pos = 0
    for match in _LINK_RE.finditer(text):
        url = match.group(0)
        # Sentence punctuation after a URL belongs to the sentence, not the link.
        stripped = url.rstrip(_TRAILING_PUNCT)
        # ...except a ")" that closes a "(" inside the URL, as in Wikipedia links.
        while (
            len(stripped) < len(url)
            and url[len(stripped)] == ")"
            and stripped.count("(") > stripped.count(")")
        ):
            stripped = url[: len(stripped) + 1]
        out.append(str(escape(text[pos : match.start()])))
        if stripped.lower() in ("www.", "mailto:") or stripped.endswith("://"):
            out.append(str(escape(stripped)))
        else:
            out.append(_link(stripped))
        pos = match.start() + len(stripped)
    out.append(str(escape(text[pos:])))
    html = "".join(out)
    html = html.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>\n")
    return Markup(html)


def fill_placeholders(text: object, params: Iterable[object] | None) -> str:
    """Replace 1-based ``{{n}}`` with params[n-1] in one pass; missing ones stay visible."""
    values = [str(p) if p is not None else "" for p in (params or [])]

    def repl(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        return values[index] if 0 <= index < len(values) else match.group(0)

    # One pass means a parameter that itself contains "{{2}}" is never expanded again;
    # the result is plain text and must still go through escaping (see linkify).
    return _PLACEHOLDER_RE.sub(repl, "" if text is None else str(text))


def filesize(n: object) -> str:
    """A human-readable size in decimal units, e.g. 1200000 -> '1.2 MB'; '' if unknown."""
    try:
        size = float(n)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(size) or size < 0:
        return ""
    if size < 1000:
        return f"{int(size)} B"
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 1000 or unit == "TB":
            return f"{size:.1f} {unit}"
    return ""  # unreachable; keeps type checkers calm


# --- dates -------------------------------------------------------------------------------

# Short time/date patterns per language; enough for a chat timestamp without Babel.
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DATE_FORMATS = {
    "en": "{mon} {d}",
    "de": "{dd}.{mm}.",
    "fr": "{dd}/{mm}",
    "es": "{dd}/{mm}",
    "it": "{dd}/{mm}",
    "nl": "{d}-{m}",
    "ar": "{dd}/{mm}",
}


def parse_timestamp(value: object) -> datetime | None:
    """Parse an ISO-8601 string (or epoch seconds/milliseconds) to an aware datetime."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
            seconds = float(value)
            if abs(seconds) > 1e11:  # milliseconds, as JavaScript clients send them
                seconds /= 1000
            parsed = datetime.fromtimestamp(seconds, tz=UTC)
        elif isinstance(value, str):
            text = value.strip()
            if text[-1:] in "zZ":
                text = text[:-1] + "+00:00"
            parsed = datetime.fromisoformat(text)
        else:
            return None
    except (ValueError, OverflowError, OSError, IndexError):
        return None
    # A naive timestamp from upstream is taken as UTC, the API's own zone.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _language(locale: str | None) -> str:
    lang = re.split(r"[-_]", (locale or "en").strip().lower(), maxsplit=1)[0]
    return lang if lang in _DATE_FORMATS else "en"


def format_timestamp(
    when: datetime | None, *, locale: str = "en", now: datetime | None = None, tz: tzinfo = UTC
) -> str:
    """A short display string: the time today, the date and time on other days."""
    if when is None:
        return ""
    lang = _language(locale)
    local = when.astimezone(tz)
    if lang == "en":
        clock = f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    else:
        clock = f"{local.hour:02d}:{local.minute:02d}"
    today = (now or datetime.now(UTC)).astimezone(tz).date()
    if local.date() == today:
        return clock
    date = _DATE_FORMATS[lang].format(
        mon=_MONTHS_EN[local.month - 1],
        d=local.day,
        dd=f"{local.day:02d}",
        m=local.month,
        mm=f"{local.month:02d}",
    )
    if local.year != today.year:
        sep = {"en": ", ", "de": ""}.get(lang, "/" if lang != "nl" else "-")
        date = f"{date}{sep}{local.year}"
    return f"{date}, {clock}" if lang == "en" else f"{date} {clock}"


# --- content -> parts ----------------------------------------------------------------------


def _file_kind(kind: str | None, mime: str | None) -> str:
    for token in ((mime or "").split("/", 1)[0].lower(), (kind or "").lower()):
        if token in ("image", "audio", "video"):
            return token
    return "file"


def _file_view(f: MessageContentFileDto | MessageMetaWhatsAppTemplate_Header_FileDto) -> FileView:
    kind = _file_kind(f.type, f.mimeType)
    # Media elements load their source at once, so only web URLs; a download link may be
    # any safe scheme, but a mailto: "file" makes no sense either: keep http(s) only.
    return FileView(
        name=f.name or "",
        url=_web_url(f.url),
        kind=kind,
        mime_type=f.mimeType or "",
        size=f.size,
        caption=getattr(f, "caption", None),
        transcript=getattr(f, "transcript", None),
    )


def _buttons(buttons: MessageContentButtonsDto, can_send: bool) -> list[ButtonView]:
    views = []
    for b in buttons.buttons or []:
        is_url = (b.type or "").lower() == "url" or _web_url(b.value) is not None
        if is_url:
            # An unsafe URL button becomes an inert label, never a send choice.
            views.append(ButtonView(label=b.label, value=b.value, href=safe_url(b.value)))
        else:
            views.append(ButtonView(label=b.label, value=b.value, sendable=can_send))
    return views


def _wa_buttons(
    buttons: list[MessageMetaWhatsAppTemplate_ButtonDto] | None, can_send: bool
) -> list[ButtonView]:
    views = []
    for b in buttons or []:
        if b.url or (b.type or "").lower() == "url":
            views.append(ButtonView(label=b.label, value=b.url or "", href=safe_url(b.url)))
        else:
            views.append(ButtonView(label=b.label, value=b.value or b.label, sendable=can_send))
    return views


def _location(loc: MessageLocationDto) -> LocationView:
    lat, lon = loc.latitude, loc.longitude
    valid = math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180
    if not valid:
        return LocationView(lat, lon, display="", href=None)
    la, lo = f"{lat:.5f}", f"{lon:.5f}"
    # A plain link: no third-party tiles or images are loaded into the widget.
    href = f"https://www.openstreetmap.org/?mlat={la}&mlon={lo}#map=16/{la}/{lo}"
    return LocationView(lat, lon, display=f"{la}, {lo}", href=href)


def _whatsapp(t: MessageMetaWhatsAppTemplateDto, can_send: bool) -> WhatsAppTemplateView:
    header = t.header
    header_params = header.parameters if header else []
    header_text = linkify(fill_placeholders(t.headerText, header_params)) if t.headerText else None
    return WhatsAppTemplateView(
        header_text=header_text,
        header_file=_file_view(header.file) if header and header.file else None,
        body=linkify(fill_placeholders(t.bodyText, t.bodyParameters)),
        footer=t.footerText,
        buttons=_wa_buttons(t.buttons, can_send),
    )


def _kinded_parts(
    content: ContentDto | None, can_send: bool, templates: Mapping[str, str]
) -> list[tuple[str, Part]]:
    parts: list[tuple[str, Part]] = []
    if content is not None:
        for kind in CONTENT_TEMPLATES:
            value = getattr(content, kind, None)
            if value is None or (kind == "text" and value == ""):
                continue
            data: Any
            if kind == "file":
                data = _file_view(value)
            elif kind == "buttons":
                data = _buttons(value, can_send)
                if not data:
                    continue
            elif kind == "textToSpeech":
                data = SpeechView(text=value.text, audio_url=_web_url(value.speech))
            elif kind == "location":
                data = _location(value)
            elif kind == "metaWhatsappTemplate":
                data = _whatsapp(value, can_send)
            elif kind == "operator":
                data = None  # the operator id is internal: the partial gets nothing of it
            else:
                data = value
            parts.append((kind, Part(templates.get(kind, CONTENT_TEMPLATES[kind]), data)))
    return parts or [("unknown", Part(templates.get("unknown", UNKNOWN_TEMPLATE), None))]


def stream_flags(messages: Sequence[MessageDto]) -> list[tuple[bool, bool, bool]]:
    """(group_start, group_continues, group_end) of each message.

    Consecutive messages of one stream group on one side render as one joined bubble.
    """
    flags = [[True, False, True] for _ in messages]
    for i in range(1, len(messages)):
        prev, cur = messages[i - 1], messages[i]
        group = cur.streamGroupId or None
        if group and group == (prev.streamGroupId or None) and cur.outgoing == prev.outgoing:
            flags[i][0], flags[i][1] = False, True
            flags[i - 1][2] = False
    return [(start, continues, end) for start, continues, end in flags]


def visitor_status(msg: MessageDto) -> str | None:
    """The delivery status shown on the visitor's own messages (None on the bot's)."""
    if msg.outgoing:
        return None
    return (msg.status or "").strip().lower() or None


def build_message_views(
    messages: Sequence[MessageDto],
    *,
    locale: str = "en",
    can_send: bool = False,
    now: datetime | None = None,
    tz: tzinfo = UTC,
    templates: Mapping[str, str] | None = None,
    only: Iterable[int] | None = None,
) -> list[MessageView]:
    """Turn upstream messages into view models, in the given (chronological) order.

    With `only`, just the messages at those positions (a poll's delta), still grouped
    with their neighbours as in the whole list.
    """
    messages = list(messages)
    chosen = {**CONTENT_TEMPLATES, **(templates or {})}
    flags = stream_flags(messages)
    views: list[MessageView] = []
    for index in range(len(messages)) if only is None else only:
        msg = messages[index]
        side = "bot" if msg.outgoing else "visitor"
        persona = msg.persona
        created = parse_timestamp(msg.created)
        kinded = _kinded_parts(msg.content, can_send, chosen)
        group_start, group_continues, group_end = flags[index]
        views.append(
            MessageView(
                id=str(msg.id),
                side=side,
                sender=msg.sender or "",
                persona_name=(persona.name or None) if persona else None,
                avatar_url=_web_url(persona.image) if persona else None,
                created=created,
                created_display=format_timestamp(created, locale=locale, now=now, tz=tz),
                status=visitor_status(msg),
                is_sensitive=bool(msg.isSensitive),
                error=msg.error or None,
                stream_group_id=msg.streamGroupId or None,
                parts=[part for _, part in kinded],
                can_send=can_send,
                kinds=[kind for kind, _ in kinded],
                group_start=group_start,
                group_continues=group_continues,
                group_end=group_end,
            )
        )
    return views


# --- Jinja wiring ----------------------------------------------------------------------------


def content_template(kind: str) -> str:
    """The partial for a content kind (the unknown placeholder for anything else)."""
    return CONTENT_TEMPLATES.get(kind, UNKNOWN_TEMPLATE)


def register_template_helpers(app: Flask) -> None:
    """Add the filters safe_url, linkify, filesize and the global content_template."""
    app.jinja_env.filters["safe_url"] = safe_url
    app.jinja_env.filters["linkify"] = linkify
    app.jinja_env.filters["filesize"] = filesize
    # Each message's element id, which delta updates replace out of band.
    app.jinja_env.filters["dom_id"] = dom_id
    app.jinja_env.globals["content_template"] = content_template
