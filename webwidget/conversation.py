"""A visitor's chat with one widget: what the session keeps and the upstream calls on it.

The session record holds the ChatCaptain ids and the widget token; only this module
and the client ever read them, and none of them is rendered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, overload

from flask import current_app, session

from . import renewal
from .chatcaptain.errors import ContractViolation, TokenExpired, UpstreamError, UpstreamRejected
from .chatcaptain.models import (
    CreateWidgetContactRequestDto,
    CreateWidgetConversationRequestDto,
    MessageDto,
)
from .coalesce import Listing, conversation_key, get_coalescer
from .sessions import get_store, visitor_session
from .upstream import get_client
from .widgets import WidgetConfig

SESSION_PREFIX = "chat:"


@dataclass
class Chat:
    """The server-side state of one visitor's conversation with one widget."""

    contact_id: str
    widget_token: str
    conversation_id: str
    language: str
    started: float

    def to_session(self) -> dict[str, object]:
        """The JSON shape kept in the session store."""
        return {
            "contactId": self.contact_id,
            "widgetToken": self.widget_token,
            "conversationId": self.conversation_id,
            "language": self.language,
            "started": self.started,
        }

    @classmethod
    def from_session(cls, value: object) -> Chat | None:
        """Rebuild from the store; a record of the wrong shape counts as no chat."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(
                contact_id=str(value["contactId"]),
                widget_token=str(value["widgetToken"]),
                conversation_id=str(value["conversationId"]),
                language=str(value.get("language", "EN")),
                started=float(value.get("started", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None


def session_key(widget: WidgetConfig) -> str:
    """Each widget keeps its own chat, so one visitor can talk to several."""
    return SESSION_PREFIX + widget.id


def current_chat(widget: WidgetConfig) -> Chat | None:
    """The visitor's chat with `widget`, if one was started."""
    return Chat.from_session(session.get(session_key(widget)))


def start_chat(widget: WidgetConfig, *, origin_url: str, language: str) -> Chat:
    """Create the contact and the conversation upstream and keep them in a fresh session."""
    client = get_client()
    contact = client.create_contact(
        widget.chatbot_id,
        CreateWidgetContactRequestDto(
            channelId=widget.channel_id,
            channelToken=widget.channel_token.get_secret_value(),
            originUrl=origin_url,
            language=language,
        ),
    )
    if not contact.contactId or not contact.widgetToken:
        raise ContractViolation("contact response without contactId or widgetToken")
    created = client.create_conversation(
        widget.chatbot_id,
        CreateWidgetConversationRequestDto(
            widgetToken=contact.widgetToken, channelId=widget.channel_id, language=language
        ),
    )
    if created.conversation is None:
        raise ContractViolation("conversation response without a conversation")
    chat = Chat(
        contact_id=contact.contactId,
        widget_token=created.newWebToken or contact.widgetToken,
        conversation_id=created.conversation.id,
        language=language,
        started=time.time(),
    )
    # A new conversation gets a new handle, so a handle seen before it cannot reach it.
    visitor_session().regenerate()
    session[session_key(widget)] = chat.to_session()
    return chat


def renew_token(widget: WidgetConfig, chat: Chat) -> Chat:
    """Trade an expired widget token for the `newWebToken` the contract offers.

    The token belongs to the contact, so the new one also reads the old conversation;
    the conversation created on the way is a side effect of the only call that rotates.
    One renewal per expired token, whichever tabs, workers and instances meet it
    (renewal.py); each of them keeps the new token in the session.
    """

    def renew() -> str:
        created = get_client().create_conversation(
            widget.chatbot_id,
            CreateWidgetConversationRequestDto(
                widgetToken=chat.widget_token, channelId=widget.channel_id, language=chat.language
            ),
        )
        if not created.newWebToken:
            raise TokenExpired(401, "the upstream offered no new widget token")
        return created.newWebToken

    key = renewal.renewal_key(widget.chatbot_id, chat.contact_id, chat.widget_token)
    chat.widget_token = renewal.get_renewals().renew_once(key, renew)
    session[session_key(widget)] = chat.to_session()
    return chat


# Refusals that may mean "this chat is gone" but are documented nowhere: the vendor lists
# no error codes, and a key rotation or an auth blip answers the same. They never end a
# chat (docs/reliability.md); the visitor sees that it cannot be reached and may choose
# to start a new one.
UNREACHABLE_STATUSES = frozenset({401, 403, 404, 410})


def chat_unreachable(error: UpstreamError) -> bool:
    """Whether the upstream refused this chat (as opposed to failing or being slow)."""
    return isinstance(error, UpstreamRejected) and error.status in UNREACHABLE_STATUSES


def with_fresh_token(widget: WidgetConfig, chat: Chat, call):
    """Run `call(chat)`; on an expired token renew it once and run it again.

    Every other refusal, the renewal's own included, is raised as it came: the chat stays
    in the session, and the next poll or send tries again.
    """
    try:
        return call(chat)
    except TokenExpired:
        renewed = renew_token(widget, chat)
    return call(renewed)


def messages_shown() -> int:
    """How many of a conversation's newest messages are read, kept and shown."""
    return current_app.config["WEBWIDGET_SETTINGS"].WIDGET_MESSAGES_SHOWN


def fetch_messages(
    widget: WidgetConfig, chat: Chat, *, before: str | None = None
) -> list[MessageDto]:
    """The conversation's newest messages (before the id `before`) straight from
    upstream, oldest first."""
    last = messages_shown()
    response = with_fresh_token(
        widget,
        chat,
        lambda c: get_client().list_messages(
            widget.chatbot_id, c.conversation_id, c.widget_token, last=last, before=before
        ),
    )
    return response.messages


def listing_key(widget: WidgetConfig, chat: Chat) -> str:
    """The coalescing key of this chat's message list (a digest, never a token)."""
    return conversation_key(widget.chatbot_id, chat.conversation_id)


@overload
def message_listing(
    widget: WidgetConfig,
    chat: Chat,
    *,
    max_age: float = 0.0,
    background: bool = False,
    cold_ok: Literal[False] = False,
) -> Listing: ...


@overload
def message_listing(
    widget: WidgetConfig, chat: Chat, *, max_age: float = 0.0, background: bool = False,
    cold_ok: bool,
) -> Listing | None: ...


def message_listing(
    widget: WidgetConfig,
    chat: Chat,
    *,
    max_age: float = 0.0,
    background: bool = False,
    cold_ok: bool = False,
) -> Listing | None:
    """The messages and their version, sharing one upstream call with concurrent polls.

    `max_age` accepts a list another tab or instance fetched that many seconds ago.
    With `background` (polls) an older cached list answers at once and is refreshed
    in the background, by a call that needs no request (so it cannot renew the token:
    a failed refresh makes the next poll fetch in the foreground, which can); with
    `cold_ok` too, None when nothing is cached yet (a refresh was asked for).
    """
    refresh = None
    if background:
        client, token = get_client(), chat.widget_token
        bot, conversation = widget.chatbot_id, chat.conversation_id
        last = messages_shown()
        refresh = lambda: client.list_messages(  # noqa: E731
            bot, conversation, token, last=last
        ).messages
    return get_coalescer().get(
        listing_key(widget, chat),
        lambda: fetch_messages(widget, chat),
        max_age=max_age,
        refresh=refresh,
        cold_ok=cold_ok,
    )


def send_text(
    widget: WidgetConfig, chat: Chat, text: str, client_id: str | None = None
) -> MessageDto:
    """Post the visitor's text; the same `client_id` again never stores it twice."""
    try:
        return with_fresh_token(
            widget,
            chat,
            lambda c: get_client().send_message(
                widget.chatbot_id,
                c.conversation_id,
                c.widget_token,
                text=text,
                client_message_id=client_id,
            ),
        )
    finally:
        # The sender must see their own message at once, not a cached list without it.
        get_coalescer().invalidate(listing_key(widget, chat))


def send_button(
    widget: WidgetConfig, chat: Chat, label: str, value: str, client_id: str | None = None
) -> MessageDto:
    """Post the visitor's button choice."""
    try:
        return with_fresh_token(
            widget,
            chat,
            lambda c: get_client().send_message(
                widget.chatbot_id,
                c.conversation_id,
                c.widget_token,
                button_label=label,
                button_value=value,
                client_message_id=client_id,
            ),
        )
    finally:
        get_coalescer().invalidate(listing_key(widget, chat))


def end_chat(widget: WidgetConfig) -> None:
    """Forget the chat; the whole session goes when no other widget's chat remains."""
    session.pop(session_key(widget), None)
    if not any(key.startswith(SESSION_PREFIX) for key in session):
        visitor_session().destroy()


def leave_chat(widget: WidgetConfig) -> None:
    """The visitor chose a new chat over one that cannot be reached: forget the old one
    here (the new one replaces it in the same session, under a new handle)."""
    session.pop(session_key(widget), None)


def lost_reason() -> str | None:
    """Why the handle the browser sent led to no session, if it sent one (see
    ServerSession.lost): "ended", "expired" or "unknown"."""
    return getattr(session, "lost", None)


def check_store_writable() -> None:
    """Raise SessionStoreUnavailable unless the session store takes a write now, before
    a start creates a contact and a conversation upstream that only a session could keep."""
    get_store(current_app).probe_write()
