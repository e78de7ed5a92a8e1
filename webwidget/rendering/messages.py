"""Message rendering: upstream MessageDto lists become small view models for Jinja partials.

Each content kind is one entry of ``KINDS`` (its partial and its view of the value);
the text that reaches HTML is made safe in ``text``. Nothing here talks HTTP
or touches sessions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from flask import current_app, has_request_context, request
from markupsafe import Markup

from .domids import dom_id
from .markdown import markdown
from .text import (
    filesize,
    fill_placeholders,
    format_timestamp,
    linkify,
    parse_timestamp,
    safe_url,
    web_url,
)

if TYPE_CHECKING:
    from flask import Flask

    from ..chatcaptain.models import (
        ContentDto,
        MessageContentButtonsDto,
        MessageContentFileDto,
        MessageDto,
        MessageLocationDto,
        MessageMetaWhatsAppTemplate_ButtonDto,
        MessageMetaWhatsAppTemplate_Header_FileDto,
        MessageMetaWhatsAppTemplateDto,
    )

UNKNOWN_TEMPLATE = "widget/_content_unknown.html"

# Kinds that are events about the conversation rather than something someone said.
SYSTEM_KINDS = frozenset({"operator", "agentHandover", "voiceTransfer", "voiceHangup"})
KNOWN_STATUSES = frozenset({"sent", "delivered", "read"})

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
    run_start: bool = True  # first of its sender's run: shows who speaks
    run_end: bool = True  # last of its sender's run: shows the time
    kinds: list[str] = field(default_factory=list)  # content kinds of ``parts``, same order
    delay_ms: int | None = None  # the bot says more follows after this long (typing indicator)

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
        url=web_url(f.url),
        kind=kind,
        mime_type=f.mimeType or "",
        size=f.size,
        caption=getattr(f, "caption", None),
        transcript=getattr(f, "transcript", None),
    )


def _buttons(buttons: MessageContentButtonsDto, can_send: bool) -> list[ButtonView]:
    views = []
    for b in buttons.buttons or []:
        is_url = (b.type or "").lower() == "url" or web_url(b.value) is not None
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


_SKIP = object()  # a kind's view says: nothing of this kind to show


def _as_is(value: Any, can_send: bool) -> Any:
    return value


@dataclass(frozen=True)
class Kind:
    """How one content kind renders: its partial, and its view of the upstream value
    (`_SKIP` when there is nothing to show)."""

    template: str
    view: Callable[[Any, bool], Any] = _as_is


# Every content kind, in display order. A theme overrides a kind's partial by shadowing
# the file in its template folder or through ``templates=``.
KINDS: Mapping[str, Kind] = MappingProxyType(
    {
        # The operator id is internal: the partial gets nothing of it.
        "operator": Kind("widget/_content_operator.html", lambda value, can_send: None),
        "agentHandover": Kind("widget/_content_agentHandover.html"),
        "voiceTransfer": Kind("widget/_content_voiceTransfer.html"),
        "voiceHangup": Kind("widget/_content_voiceHangup.html"),
        "metaWhatsappTemplate": Kind("widget/_content_metaWhatsappTemplate.html", _whatsapp),
        "template": Kind("widget/_content_template.html"),
        "email": Kind("widget/_content_email.html"),
        "file": Kind("widget/_content_file.html", lambda value, can_send: _file_view(value)),
        "text": Kind("widget/_content_text.html", lambda value, can_send: value or _SKIP),
        "textToSpeech": Kind(
            "widget/_content_textToSpeech.html",
            lambda value, can_send: SpeechView(text=value.text, audio_url=web_url(value.speech)),
        ),
        "location": Kind("widget/_content_location.html", lambda value, can_send: _location(value)),
        "selectedButton": Kind("widget/_content_selectedButton.html"),
        "buttons": Kind("widget/_content_buttons.html",
                        lambda value, can_send: _buttons(value, can_send) or _SKIP),
    }
)
CONTENT_TEMPLATES: Mapping[str, str] = MappingProxyType(
    {name: kind.template for name, kind in KINDS.items()}
)


def _kinded_parts(
    content: ContentDto | None, can_send: bool, templates: Mapping[str, str]
) -> list[tuple[str, Part]]:
    parts: list[tuple[str, Part]] = []
    if content is not None:
        for name, kind in KINDS.items():
            value = getattr(content, name, None)
            data = _SKIP if value is None else kind.view(value, can_send)
            if data is not _SKIP:
                parts.append((name, Part(templates.get(name, kind.template), data)))
    return parts or [("unknown", Part(templates.get("unknown", UNKNOWN_TEMPLATE), None))]


class Grouping(NamedTuple):
    """How a message joins its neighbours.

    A stream group (parts sharing a `streamGroupId`) is one bubble: `start`, `continues`,
    `end`. A run is consecutive messages of one sender (side, sender and persona) within
    RUN_GAP of each other, as in every chat: who spoke shows on the run's first message
    (`run_start`), the time on its last (`run_end`).
    """

    start: bool
    continues: bool
    end: bool
    run_start: bool
    run_end: bool


# Messages further apart than this start a new run: their time is worth seeing.
RUN_GAP = timedelta(minutes=5)


def _speaker(msg: MessageDto) -> tuple[object, ...] | None:
    """Who a message is from, for runs; None for a conversation event (never in a run)."""
    content = msg.content
    kinds = {name for name in KINDS if content is not None and getattr(content, name, None)}
    if kinds and kinds <= SYSTEM_KINDS:
        return None
    persona = msg.persona
    return (
        bool(msg.outgoing),
        msg.sender or "",
        (persona.name or "") if persona else "",
        (persona.image or "") if persona else "",
    )


def _same_run(prev: MessageDto, cur: MessageDto) -> bool:
    speaker = _speaker(cur)
    if speaker is None or speaker != _speaker(prev):
        return False
    before, after = parse_timestamp(prev.created), parse_timestamp(cur.created)
    if before is None or after is None:
        return False
    return abs(after - before) <= RUN_GAP and before.date() == after.date()


def message_groups(messages: Sequence[MessageDto]) -> list[Grouping]:
    """The Grouping of each message with its neighbours (see `Grouping`)."""
    flags = [[True, False, True, True, True] for _ in messages]
    for i in range(1, len(messages)):
        prev, cur = messages[i - 1], messages[i]
        group = cur.streamGroupId or None
        streamed = group and group == (prev.streamGroupId or None)
        if streamed and cur.outgoing == prev.outgoing:
            flags[i][0], flags[i][1] = False, True
            flags[i - 1][2] = False
        if (streamed and cur.outgoing == prev.outgoing) or _same_run(prev, cur):
            flags[i][3] = False
            flags[i - 1][4] = False
    return [Grouping(*f) for f in flags]


def stream_flags(messages: Sequence[MessageDto]) -> list[tuple[bool, bool, bool]]:
    """(group_start, group_continues, group_end) of each message (see `message_groups`)."""
    return [(g.start, g.continues, g.end) for g in message_groups(messages)]


def announced_delay(msg: MessageDto) -> int | None:
    """Milliseconds the bot announces before its next message (`delay`), if any."""
    value = msg.delay if msg.delay is not None else (msg.content.delay if msg.content else None)
    if value is None or not 0 < value <= 600_000:
        return None
    return int(value)


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
    flags = message_groups(messages)
    views: list[MessageView] = []
    for index in range(len(messages)) if only is None else only:
        msg = messages[index]
        side = "bot" if msg.outgoing else "visitor"
        persona = msg.persona
        created = parse_timestamp(msg.created)
        kinded = _kinded_parts(msg.content, can_send, chosen)
        grouping = flags[index]
        views.append(
            MessageView(
                id=str(msg.id),
                side=side,
                sender=msg.sender or "",
                persona_name=(persona.name or None) if persona else None,
                avatar_url=web_url(persona.image) if persona else None,
                created=created,
                created_display=format_timestamp(created, locale=locale, now=now, tz=tz),
                status=visitor_status(msg),
                is_sensitive=bool(msg.isSensitive),
                error=msg.error or None,
                stream_group_id=msg.streamGroupId or None,
                parts=[part for _, part in kinded],
                can_send=can_send,
                kinds=[kind for kind, _ in kinded],
                group_start=grouping.start,
                group_continues=grouping.continues,
                group_end=grouping.end,
                run_start=grouping.run_start,
                run_end=grouping.run_end,
                delay_ms=announced_delay(msg),
            )
        )
    return views


# --- Jinja wiring ----------------------------------------------------------------------------


def content_template(kind: str) -> str:
    """The partial for a content kind (the unknown placeholder for anything else)."""
    return CONTENT_TEMPLATES.get(kind, UNKNOWN_TEMPLATE)


def saves_here(url: str) -> bool:
    """Whether a link to `url` saves the file: browsers honour `download` on the page's own
    origin only; a file elsewhere opens in a new tab (unless its server says attachment)."""
    if not has_request_context():
        return False
    settings = current_app.config.get("WEBWIDGET_SETTINGS")
    origin = (getattr(settings, "PUBLIC_URL", "") or request.host_url).rstrip("/").lower()
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() == origin


def register_template_helpers(app: Flask) -> None:
    """Add the filters safe_url, linkify, markdown, filesize and the globals
    content_template and saves_here."""
    app.jinja_env.filters["safe_url"] = safe_url
    app.jinja_env.filters["linkify"] = linkify
    app.jinja_env.filters["markdown"] = markdown
    app.jinja_env.filters["filesize"] = filesize
    # Each message's element id, which delta updates replace out of band.
    app.jinja_env.filters["dom_id"] = dom_id
    app.jinja_env.globals["content_template"] = content_template
    app.jinja_env.globals["saves_here"] = saves_here
