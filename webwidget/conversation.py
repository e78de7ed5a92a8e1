"""The chat core: a visitor's chats with the widgets, and the upstream calls on them.

`ChatCore` is built once by create_app and handed what it needs: the upstream client,
the list coalescer, the token renewals, the held polls' wake-ups, a clock and the
session store's write check. A view gives it the visitor's session (`for_visitor`); the
core imports nothing of Flask, so it runs as well under a test with a dict for a session.

The session record holds the ChatCaptain ids and the widget token; only this module
and the client ever read them, and none of them is rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, overload

from .chatcaptain.errors import ContractViolation, TokenExpired, UpstreamError, UpstreamRejected
from .chatcaptain.models import (
    CreateWidgetContactRequestDto,
    CreateWidgetContactResponseDto,
    CreateWidgetConversationRequestDto,
    CreateWidgetConversationResponseDto,
    ListWidgetConversationMessagesResponseDto,
    MessageDto,
)
from .coalesce import Coalescer, conversation_key
from .listing import Listing
from .renewal import Renewals, renewal_key
from .wake import Wakeups
from .widgets import WidgetConfig

SESSION_PREFIX = "chat:"

T = TypeVar("T")


class Upstream(Protocol):
    """The ChatCaptain calls the core makes (upstream.GuardedClient in the app)."""

    @property
    def supports_sending(self) -> bool: ...

    def create_contact(
        self, chatbot_id: str, request: CreateWidgetContactRequestDto
    ) -> CreateWidgetContactResponseDto: ...

    def create_conversation(
        self, chatbot_id: str, request: CreateWidgetConversationRequestDto
    ) -> CreateWidgetConversationResponseDto: ...

    def list_messages(
        self,
        chatbot_id: str,
        conversation_id: str,
        token: str,
        *,
        last: int | None = None,
        before: str | None = None,
    ) -> ListWidgetConversationMessagesResponseDto: ...

    def send_message(
        self,
        chatbot_id: str,
        conversation_id: str,
        token: str,
        *,
        text: str | None = None,
        button_label: str | None = None,
        button_value: str | None = None,
        client_message_id: str | None = None,
    ) -> MessageDto: ...


class VisitorSession(Protocol):
    """What the core needs of a visitor's session (sessions.ServerSession in the app)."""

    def get(self, key: str, default: Any = None, /) -> Any: ...

    def __setitem__(self, key: str, value: Any, /) -> None: ...

    def pop(self, key: str, default: Any, /) -> Any: ...

    def __iter__(self) -> Iterator[str]: ...

    def regenerate(self) -> None: ...

    def destroy(self) -> None: ...


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


def listing_key(widget: WidgetConfig, chat: Chat) -> str:
    """The coalescing key of this chat's message list (a digest, never a token)."""
    return conversation_key(widget.chatbot_id, chat.conversation_id)


# Refusals that may mean "this chat is gone" but are documented nowhere: the vendor lists
# no error codes, and a key rotation or an auth blip answers the same. They never end a
# chat (docs/reliability.md); the visitor sees that it cannot be reached and may choose
# to start a new one.
UNREACHABLE_STATUSES = frozenset({401, 403, 404, 410})


def chat_unreachable(error: UpstreamError) -> bool:
    """Whether the upstream refused this chat (as opposed to failing or being slow)."""
    return isinstance(error, UpstreamRejected) and error.status in UNREACHABLE_STATUSES


class ChatCore:
    """What every visitor's chats share: built once per app, given its collaborators."""

    def __init__(
        self,
        *,
        client: Upstream,
        coalescer: Coalescer,
        renewals: Renewals,
        wakeups: Wakeups,
        clock: Callable[[], float],
        messages_shown: int,
        check_store: Callable[[], None] = lambda: None,
    ) -> None:
        self.client = client
        self.coalescer = coalescer
        self.renewals = renewals
        self.wakeups = wakeups
        self.clock = clock
        # How many of a conversation's newest messages are read, kept and shown.
        self.messages_shown = messages_shown
        self._check_store = check_store

    def for_visitor(self, session: VisitorSession) -> VisitorChats:
        """The chats kept in `session` (one request's visitor)."""
        return VisitorChats(self, session)

    def check_store_writable(self) -> None:
        """Raise SessionStoreUnavailable unless the session store takes a write now, before
        a start creates a contact and a conversation upstream that only a session could
        keep."""
        self._check_store()

    def remember(self, widget: WidgetConfig, chat: Chat, listing: Listing) -> None:
        """Keep what `listing`'s version shows, so the page's next changed poll can get a
        delta."""
        self.coalescer.remember_states(listing_key(widget, chat), listing.version, listing.states)

    def recall(self, widget: WidgetConfig, chat: Chat, version: str) -> list[list[str]] | None:
        """What `version` of the chat's list showed, if it is still remembered."""
        return self.coalescer.recall_states(listing_key(widget, chat), version)


class VisitorChats:
    """One visitor's chats (those kept in their session), for the length of a request."""

    def __init__(self, core: ChatCore, session: VisitorSession) -> None:
        self.core = core
        self.session = session

    def current(self, widget: WidgetConfig) -> Chat | None:
        """The visitor's chat with `widget`, if one was started."""
        return Chat.from_session(self.session.get(session_key(widget)))

    def lost_reason(self) -> str | None:
        """Why the handle the browser sent led to no session, if it sent one (see
        ServerSession.lost): "ended", "expired" or "unknown"."""
        lost: str | None = getattr(self.session, "lost", None)
        return lost

    def start(self, widget: WidgetConfig, *, origin_url: str, language: str) -> Chat:
        """Create the contact and the conversation upstream and keep them in a fresh
        session."""
        client = self.core.client
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
            started=self.core.clock(),
        )
        # A new conversation gets a new handle, so a handle seen before it cannot reach it.
        self.session.regenerate()
        self.session[session_key(widget)] = chat.to_session()
        return chat

    def renew_token(self, widget: WidgetConfig, chat: Chat) -> Chat:
        """Trade an expired widget token for the `newWebToken` the contract offers.

        The token belongs to the contact, so the new one also reads the old conversation;
        the conversation created on the way is a side effect of the only call that
        rotates. One renewal per expired token, whichever tabs, workers and instances meet
        it (renewal.py); each of them keeps the new token in the session.
        """

        def renew() -> str:
            created = self.core.client.create_conversation(
                widget.chatbot_id,
                CreateWidgetConversationRequestDto(
                    widgetToken=chat.widget_token,
                    channelId=widget.channel_id,
                    language=chat.language,
                ),
            )
            if not created.newWebToken:
                raise TokenExpired(401, "the upstream offered no new widget token")
            return created.newWebToken

        key = renewal_key(widget.chatbot_id, chat.contact_id, chat.widget_token)
        chat.widget_token = self.core.renewals.renew_once(key, renew)
        self.session[session_key(widget)] = chat.to_session()
        return chat

    def with_fresh_token(self, widget: WidgetConfig, chat: Chat, call: Callable[[Chat], T]) -> T:
        """Run `call(chat)`; on an expired token renew it once and run it again.

        Every other refusal, the renewal's own included, is raised as it came: the chat
        stays in the session, and the next poll or send tries again.
        """
        try:
            return call(chat)
        except TokenExpired:
            renewed = self.renew_token(widget, chat)
        return call(renewed)

    def fetch_messages(
        self, widget: WidgetConfig, chat: Chat, *, before: str | None = None
    ) -> list[MessageDto]:
        """The conversation's newest messages (before the id `before`) straight from
        upstream, oldest first."""
        client, last = self.core.client, self.core.messages_shown
        response = self.with_fresh_token(
            widget,
            chat,
            lambda c: client.list_messages(
                widget.chatbot_id, c.conversation_id, c.widget_token, last=last, before=before
            ),
        )
        return response.messages

    @overload
    def message_listing(
        self,
        widget: WidgetConfig,
        chat: Chat,
        *,
        max_age: float = 0.0,
        background: bool = False,
        cold_ok: Literal[False] = False,
    ) -> Listing: ...

    @overload
    def message_listing(
        self, widget: WidgetConfig, chat: Chat, *, max_age: float = 0.0,
        background: bool = False, cold_ok: bool,
    ) -> Listing | None: ...

    def message_listing(
        self,
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
            client, token = self.core.client, chat.widget_token
            bot, conversation = widget.chatbot_id, chat.conversation_id
            last = self.core.messages_shown
            refresh = lambda: client.list_messages(  # noqa: E731
                bot, conversation, token, last=last
            ).messages
        return self.core.coalescer.get(
            listing_key(widget, chat),
            lambda: self.fetch_messages(widget, chat),
            max_age=max_age,
            refresh=refresh,
            cold_ok=cold_ok,
        )

    def send_text(
        self, widget: WidgetConfig, chat: Chat, text: str, client_id: str | None = None
    ) -> MessageDto:
        """Post the visitor's text; the same `client_id` again never stores it twice."""
        client = self.core.client
        return self._sending(
            widget,
            chat,
            lambda c: client.send_message(
                widget.chatbot_id,
                c.conversation_id,
                c.widget_token,
                text=text,
                client_message_id=client_id,
            ),
        )

    def send_button(
        self,
        widget: WidgetConfig,
        chat: Chat,
        label: str,
        value: str,
        client_id: str | None = None,
    ) -> MessageDto:
        """Post the visitor's button choice."""
        client = self.core.client
        return self._sending(
            widget,
            chat,
            lambda c: client.send_message(
                widget.chatbot_id,
                c.conversation_id,
                c.widget_token,
                button_label=label,
                button_value=value,
                client_message_id=client_id,
            ),
        )

    def _sending(
        self, widget: WidgetConfig, chat: Chat, call: Callable[[Chat], MessageDto]
    ) -> MessageDto:
        try:
            return self.with_fresh_token(widget, chat, call)
        finally:
            # The sender must see their own message at once, not a cached list without it.
            self.core.coalescer.invalidate(listing_key(widget, chat))

    def end(self, widget: WidgetConfig) -> None:
        """Forget the chat; the whole session goes when no other widget's chat remains."""
        self.session.pop(session_key(widget), None)
        if not any(key.startswith(SESSION_PREFIX) for key in self.session):
            self.session.destroy()

    def leave(self, widget: WidgetConfig) -> None:
        """The visitor chose a new chat over one that cannot be reached: forget the old
        one here (the new one replaces it in the same session, under a new handle)."""
        self.session.pop(session_key(widget), None)
