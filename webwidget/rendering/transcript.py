"""A conversation as the visitor may keep it: who said what, and when, as plain text.

Only what the page itself shows the visitor, as words: no message, conversation or
contact id, no token, no file or media URL (a signed URL would outlive the chat), and a
sensitive message's content stays out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from flask_babel import gettext

from ..chatcaptain.models import ContentDto, MessageDto
from .text import fill_placeholders, format_timestamp, parse_timestamp

# The words each conversation event shows in the log (the same strings as its partial).
EVENTS = {
    "operator": "An agent joined the conversation.",
    "agentHandover": "You are being connected to an agent.",
    "voiceTransfer": "The call is being transferred.",
    "voiceHangup": "The call has ended.",
}


@dataclass(frozen=True)
class Entry:
    """One message of the transcript."""

    side: str  # "visitor", "bot" or "event"
    who: str  # the persona's name ("" when upstream gave none)
    created: datetime | None
    created_display: str
    text: str
    note: str | None = None  # "Not delivered", "Sensitive message not included"

    @property
    def created_iso(self) -> str | None:
        """The creation time for ``<time datetime>``."""
        return self.created.isoformat() if self.created else None


def content_lines(content: ContentDto | None) -> list[str]:
    """The words of a message's content, one piece a line, in the log's order."""
    if content is None:
        return []
    lines: list[str] = []
    for kind, words in EVENTS.items():
        if getattr(content, kind, None) is not None:
            lines.append(gettext(words))
    wa = content.metaWhatsappTemplate
    if wa is not None:
        header = wa.header
        if wa.headerText:
            lines.append(fill_placeholders(wa.headerText, header.parameters if header else []))
        if header and header.file:
            lines.append(f"[{header.file.name}]")
        lines.append(fill_placeholders(wa.bodyText, wa.bodyParameters))
        lines += [wa.footerText or ""] + [f"[{b.label}]" for b in wa.buttons or []]
    if content.template is not None:
        t = content.template
        lines += [t.header or "", t.body, t.footer or ""]
    if content.email is not None:
        lines += [content.email.subject, content.email.body]
    if content.file is not None:
        f = content.file
        lines += [f"[{f.name}]", f.caption or ""]
    if content.text:
        lines.append(content.text)
    if content.textToSpeech is not None:
        lines.append(content.textToSpeech.text)
    if content.location is not None:
        loc = content.location
        lines.append(f"{gettext('Location')} {loc.latitude:.5f}, {loc.longitude:.5f}")
    if content.selectedButton is not None:
        lines.append(content.selectedButton.label)
    if content.buttons is not None:
        lines += [f"[{b.label}]" for b in content.buttons.buttons or []]
    return [line for line in lines if line]


def transcript_entries(
    messages: Sequence[MessageDto], *, locale: str = "en", now: datetime | None = None,
    tz: tzinfo = UTC,
) -> list[Entry]:
    """The transcript's entries, oldest first."""
    entries = []
    for msg in messages:
        created = parse_timestamp(msg.created)
        content = msg.content
        events = content is not None and any(getattr(content, k, None) for k in EVENTS)
        text = "\n".join(content_lines(content))
        note = None
        if msg.isSensitive:
            text, note = "", gettext("Sensitive message not included")
        elif msg.error:
            note = gettext("Not delivered")
        side = "visitor" if not msg.outgoing else "bot"
        if side == "bot" and events and not (content and content.text):
            side = "event"
        entries.append(
            Entry(
                side=side,
                who=(msg.persona.name or "") if msg.persona and msg.outgoing else "",
                created=created,
                created_display=format_timestamp(created, locale=locale, now=now, tz=tz),
                text=text,
                note=note,
            )
        )
    return entries
