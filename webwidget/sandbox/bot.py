"""The scripted bot: a greeting, keyword commands (one per content kind) and an echo.

Replies are plain data (content, delay, sender, flags); the API turns them into
stored MessageDto bodies with ids and timestamps.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from webwidget.chatcaptain.models import (
    ContentDto,
    MessageAgentHandoverDto,
    MessageContentButtonDto,
    MessageContentButtonReplyDto,
    MessageContentButtonsDto,
    MessageContentEmailDto,
    MessageContentFileDto,
    MessageContentTextToSpeechDto,
    MessageLocationDto,
    MessageMetaWhatsAppTemplate_ButtonDto,
    MessageMetaWhatsAppTemplate_Header_FileDto,
    MessageMetaWhatsAppTemplate_HeaderDto,
    MessageMetaWhatsAppTemplateDto,
    MessagePersonaDto,
    MessageTemplateDto,
    MessageVoiceHangupDto,
    MessageVoiceTransferDto,
    OperatorDto,
)

from .files import SandboxFile

# Content kinds in ContentDto, in display order; the first one set names the message type.
KINDS = (
    "text", "file", "buttons", "selectedButton", "template", "location", "voiceHangup",
    "voiceTransfer", "agentHandover", "email", "textToSpeech", "metaWhatsappTemplate",
    "operator",
)


@dataclass
class Reply:
    """One bot message before it gets an id and timestamps."""

    content: ContentDto
    delay_ms: int = 400
    sender: str = "bot"
    persona: MessagePersonaDto | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BotContext:
    """What the bot needs to know: its persona and where its files are served."""

    persona_name: str
    files_url: str  # absolute URL of /_sandbox/files/, ending in '/'
    files: dict[str, SandboxFile]

    def persona(self) -> MessagePersonaDto:
        """The bot's persona with an avatar served by the sandbox."""
        image = "first-mate.png" if self.persona_name == "First Mate" else "captain.png"
        return MessagePersonaDto(name=self.persona_name, image=self.files_url + image)

    def file(self, name: str, **extra: str) -> MessageContentFileDto:
        """A ContentDto file pointing at a sandbox-served file."""
        served = self.files[name]
        return MessageContentFileDto(
            name=name, url=self.files_url + name, type=served.kind, mimeType=served.mime_type,
            size=len(served.data), attachmentRef=f"att_{name}", **extra,
        )


COMMAND_BUTTONS = ("help", "all", "buttons", "image")


def message_type(content: ContentDto) -> str:
    """The message ``type``: the first rich content kind set, else ``text``."""
    # Text often only captions a richer kind (a file, buttons), so it names the type last.
    return next((k for k in KINDS[1:] if getattr(content, k) is not None), "text")


def greeting(ctx: BotContext) -> list[Reply]:
    """The bot's first message in a new conversation."""
    buttons = [MessageContentButtonDto(label=c.title(), type="postback", value=c)
               for c in COMMAND_BUTTONS]
    text = (f"Ahoy! I am {ctx.persona_name}, the ChatCaptain sandbox bot.\n"
            "Type help to see what I can show you.")
    return [Reply(ContentDto(text=text, buttons=MessageContentButtonsDto(buttons=buttons)),
                  delay_ms=0, persona=ctx.persona())]


def _help(ctx: BotContext) -> list[Reply]:
    names = ", ".join(sorted(COMMANDS))
    return [Reply(ContentDto(text=f"Commands: {names}.\nAnything else is echoed back."),
                  persona=ctx.persona())]


def _text(ctx: BotContext) -> list[Reply]:
    text = ("Plain text with a link: https://example.com/docs and mail: mailto:crew@example.com\n"
            "Second line.\n\nA paragraph after a blank line. <b>Not bold</b> & escaped.")
    return [Reply(ContentDto(text=text), persona=ctx.persona())]


def _markdown(ctx: BotContext) -> list[Reply]:
    text = ("Bots write **Markdown**: *emphasis*, `code` and lists.\n"
            "- a point with [a link](https://example.com/docs)\n- another point\n"
            "1. first step\n2. second step")
    return [Reply(ContentDto(text=text), persona=ctx.persona())]


def _image(ctx: BotContext) -> list[Reply]:
    return [Reply(ContentDto(file=ctx.file("harbour.png", caption="The harbour at dawn")),
                  persona=ctx.persona())]


def _audio(ctx: BotContext) -> list[Reply]:
    f = ctx.file("foghorn.wav", caption="A foghorn", transcript="Tooooot.")
    return [Reply(ContentDto(file=f), persona=ctx.persona())]


def _video(ctx: BotContext) -> list[Reply]:
    f = ctx.file("waves.webm", caption="Waves", transcript="(the sound of waves)")
    return [Reply(ContentDto(file=f), persona=ctx.persona())]


def _document(ctx: BotContext) -> list[Reply]:
    return [Reply(ContentDto(text="Here is the manifest.", file=ctx.file("manifest.pdf")),
                  persona=ctx.persona())]


def _buttons(ctx: BotContext) -> list[Reply]:
    buttons = [
        MessageContentButtonDto(label="Open docs", type="url", value="https://example.com/docs"),
        MessageContentButtonDto(label="Show location", type="postback", value="location",
                                payload="cmd:location"),
        MessageContentButtonDto(label="Talk to a human", type="postback", value="handover"),
    ]
    return [Reply(ContentDto(text="Pick one:", buttons=MessageContentButtonsDto(buttons=buttons)),
                  persona=ctx.persona())]


def _selected(ctx: BotContext) -> list[Reply]:
    choice = MessageContentButtonReplyDto(label="Yes", value="yes", type="postback",
                                          reference="msg_example")
    return [Reply(ContentDto(selectedButton=choice), persona=ctx.persona())]


def _template(ctx: BotContext) -> list[Reply]:
    tpl = MessageTemplateDto(header="Booking confirmed",
                             body="Your berth is reserved for 2 nights.", footer="Harbour office")
    return [Reply(ContentDto(template=tpl), persona=ctx.persona())]


def _location(ctx: BotContext) -> list[Reply]:
    return [Reply(ContentDto(text="We are here:",
                             location=MessageLocationDto(latitude=53.5461, longitude=9.9661)),
                  persona=ctx.persona())]


def _hangup(ctx: BotContext) -> list[Reply]:
    hangup = MessageVoiceHangupDto(reason="Call completed", headers={"X-Reason": "done"})
    return [Reply(ContentDto(voiceHangup=hangup))]


def _transfer(ctx: BotContext) -> list[Reply]:
    transfer = MessageVoiceTransferDto(target="+4940123456", reason="Sales",
                                       headers={"X-Queue": "sales"})
    return [Reply(ContentDto(voiceTransfer=transfer))]


def _handover(ctx: BotContext) -> list[Reply]:
    handover = MessageAgentHandoverDto(reason="Visitor asked for a human", timeoutSeconds=120,
                                       groupId="grp_support", assignmentMethod="round_robin")
    return [Reply(ContentDto(text="Connecting you to a human...", agentHandover=handover),
                  persona=ctx.persona())]


def _email(ctx: BotContext) -> list[Reply]:
    email = MessageContentEmailDto(
        subject="Your booking", body="Dear sailor,\nyour berth is booked.",
        from_="harbour@example.com", to=["visitor@example.com"], cc=[], bcc=[],
        attachmentIds=[], references=[],
    )
    return [Reply(ContentDto(email=email), persona=ctx.persona())]


def _tts(ctx: BotContext) -> list[Reply]:
    tts = MessageContentTextToSpeechDto(text="Welcome aboard!",
                                        speech=ctx.files_url + "foghorn.wav")
    return [Reply(ContentDto(textToSpeech=tts), persona=ctx.persona())]


def _whatsapp(ctx: BotContext) -> list[Reply]:
    def template(header: MessageMetaWhatsAppTemplate_HeaderDto, header_text: str | None):
        return MessageMetaWhatsAppTemplateDto(
            templateName="booking_update", language="en", headerText=header_text, header=header,
            bodyText="Hello {{1}}, your berth {{2}} is ready.", bodyParameters=["Alex", "B7"],
            footerText="Reply STOP to opt out",
            buttons=[
                MessageMetaWhatsAppTemplate_ButtonDto(label="Details", type="url",
                                                      url="https://example.com/booking"),
                MessageMetaWhatsAppTemplate_ButtonDto(label="Thanks", type="quick_reply",
                                                      value="thanks"),
            ],
        )

    served = ctx.file("harbour.png")
    file_header = MessageMetaWhatsAppTemplate_HeaderDto(
        file=MessageMetaWhatsAppTemplate_Header_FileDto(**served.model_dump(
            include={"name", "url", "type", "mimeType", "size", "attachmentRef"})),
        parameters=[],
    )
    text_header = MessageMetaWhatsAppTemplate_HeaderDto(parameters=["Alex"])
    return [
        Reply(ContentDto(metaWhatsappTemplate=template(text_header, "Update for {{1}}")),
              persona=ctx.persona()),
        Reply(ContentDto(metaWhatsappTemplate=template(file_header, None)), persona=ctx.persona()),
    ]


def _operator(ctx: BotContext) -> list[Reply]:
    agent = MessagePersonaDto(name="Olivia (operator)", image=ctx.files_url + "first-mate.png")
    return [Reply(ContentDto(text="Hi, Olivia here from the crew.",
                             operator=OperatorDto(operatorId="op_olivia")),
                  sender="agent", persona=agent)]


def _persona(ctx: BotContext) -> list[Reply]:
    other = MessagePersonaDto(name="Lookout", image=ctx.files_url + "first-mate.png")
    return [Reply(ContentDto(text="Land ho! (a different persona)"), persona=other)]


def _delay(ctx: BotContext) -> list[Reply]:
    return [Reply(ContentDto(text="Thinking...", delay=1500), delay_ms=500, persona=ctx.persona(),
                  extra={"delay": 1500}),
            Reply(ContentDto(text="...done, 1.5 s later."), delay_ms=1500, persona=ctx.persona())]


def _later(ctx: BotContext) -> list[Reply]:
    # Due a minute later on the sandbox clock: only a clock advance brings it, so tests
    # can be sure it arrives after whatever they do in between.
    return [Reply(ContentDto(text="Sorry for the wait: here I am, a minute later."),
                  delay_ms=60_000, persona=ctx.persona())]


def _stream(ctx: BotContext) -> list[Reply]:
    parts = ["Streaming reply, part one; ", "part two; ", "and part three."]
    group = "sg_" + secrets.token_urlsafe(12)
    return [Reply(ContentDto(text=p), delay_ms=200, persona=ctx.persona(),
                  extra={"streamGroupId": group}) for p in parts]


def _sensitive(ctx: BotContext) -> list[Reply]:
    return [Reply(ContentDto(text="Your one-time code is 424242."), persona=ctx.persona(),
                  extra={"isSensitive": True})]


def _error(ctx: BotContext) -> list[Reply]:
    return [Reply(ContentDto(text="This message failed to deliver."), persona=ctx.persona(),
                  extra={"error": "Delivery failed at the provider."})]


COMMANDS: dict[str, Callable[[BotContext], list[Reply]]] = {
    "help": _help, "text": _text, "image": _image, "audio": _audio, "video": _video,
    "document": _document, "buttons": _buttons, "selected": _selected, "template": _template,
    "location": _location, "hangup": _hangup, "transfer": _transfer, "handover": _handover,
    "email": _email, "tts": _tts, "whatsapp": _whatsapp, "operator": _operator,
    "persona": _persona, "delay": _delay, "later": _later, "stream": _stream,
    "sensitive": _sensitive,
    "error": _error,
    "markdown": _markdown,
}
# "all" shows every content kind; the slow and odd extras are left to their own commands.
ALL = ("text", "image", "audio", "video", "document", "buttons", "selected", "template",
       "location", "hangup", "transfer", "handover", "email", "tts", "whatsapp", "operator",
       "stream", "sensitive", "error")


def respond(ctx: BotContext, text: str) -> list[Reply]:
    """The bot's replies to a visitor's text (or a selected button's value)."""
    command = text.strip().lower()
    if command in ("all", "demo"):
        replies = [reply for name in ALL for reply in COMMANDS[name](ctx)]
        for reply in replies:
            reply.delay_ms = 100  # one quick burst rather than a long wait
        return replies
    if command in COMMANDS:
        return COMMANDS[command](ctx)
    return [Reply(ContentDto(text=f"You said: {text}"), persona=ctx.persona())]
