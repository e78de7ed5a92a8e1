"""The chat core on its own (issue 25): no Flask app, no sandbox server, no Redis. It is
handed an upstream that keeps conversations in a dict, shared state in memory, a clock
that moves only when told to, and a dict for the visitor's session; what a visitor does
(start, send, read, renew, leave, end) is checked through it alone."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import Any

import pytest
from conftest import StoppedClock, conversation_payload, message_payload
from flask import has_app_context
from pydantic import SecretStr

from webwidget import polling
from webwidget.chatcaptain.errors import TokenExpired, UpstreamRejected
from webwidget.chatcaptain.models import (
    CreateWidgetContactResponseDto,
    CreateWidgetConversationResponseDto,
    ListWidgetConversationMessagesResponseDto,
    MessageDto,
)
from webwidget.coalesce import Coalescer
from webwidget.conversation import ChatCore, VisitorChats, chat_unreachable
from webwidget.renewal import Renewals
from webwidget.shared.memory import MemoryState
from webwidget.wake import Wakeups
from webwidget.widgets import WidgetConfig

WIDGET = WidgetConfig(
    id="default",
    chatbot_id="bot-1",
    channel_id="channel-1",
    channel_token=SecretStr("channel-secret"),
    allowed_origins=("https://shop.example",),
)


class DictUpstream:
    """ChatCaptain's three widget calls and a send, on dicts; counts every call."""

    supports_sending = True

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.tokens: dict[str, str] = {}  # valid widget token -> contact id
        self.expired: set[str] = set()
        self.conversations: dict[str, list[MessageDto]] = {}
        self.calls: list[str] = []

    def _check(self, token: str) -> None:
        if token in self.expired:
            raise TokenExpired(401, "token expired")
        if token not in self.tokens:
            raise UpstreamRejected(404, "unknown token")

    def create_contact(self, chatbot_id: str, request: Any) -> CreateWidgetContactResponseDto:
        self.calls.append("create_contact")
        contact, token = f"contact-{next(self.ids)}", f"token-{next(self.ids)}"
        self.tokens[token] = contact
        return CreateWidgetContactResponseDto(contactId=contact, widgetToken=token)

    def create_conversation(
        self, chatbot_id: str, request: Any
    ) -> CreateWidgetConversationResponseDto:
        self.calls.append("create_conversation")
        token = request.widgetToken
        new_token = None
        if token in self.expired:
            new_token = f"token-{next(self.ids)}"
            self.tokens[new_token] = self.tokens[token]
        else:
            self._check(token)
        conversation = f"conversation-{next(self.ids)}"
        self.conversations[conversation] = [self._message("Hello! How can I help?", True)]
        payload = conversation_payload(
            conversation, contactId=self.tokens[token], channelId=request.channelId,
            chatbotId=chatbot_id,
        )
        return CreateWidgetConversationResponseDto.model_validate(
            {"conversation": payload, "newWebToken": new_token}
        )

    def list_messages(
        self, chatbot_id: str, conversation_id: str, token: str, *,
        last: int | None = None, before: str | None = None,
    ) -> ListWidgetConversationMessagesResponseDto:
        self.calls.append("list_messages")
        self._check(token)
        messages = self.conversations[conversation_id]
        return ListWidgetConversationMessagesResponseDto(messages=messages[-(last or 50):])

    def send_message(
        self, chatbot_id: str, conversation_id: str, token: str, *,
        text: str | None = None, button_label: str | None = None,
        button_value: str | None = None, client_message_id: str | None = None,
    ) -> MessageDto:
        self.calls.append("send_message")
        self._check(token)
        message = self._message(text or button_label or "", False)
        self.conversations[conversation_id].append(message)
        return message

    def _message(self, text: str, outgoing: bool) -> MessageDto:
        return MessageDto.model_validate(
            message_payload(f"m{next(self.ids)}", {"text": text}, outgoing=outgoing)
        )


class DictSession(dict):
    """A visitor's session: a dict that can take a new handle or go."""

    def __init__(self) -> None:
        super().__init__()
        self.handles = 1
        self.destroyed = False
        self.lost: str | None = None

    def regenerate(self) -> None:
        self.handles += 1

    def destroy(self) -> None:
        self.clear()
        self.destroyed = True


@pytest.fixture
def upstream() -> DictUpstream:
    return DictUpstream()


@pytest.fixture
def core(upstream: DictUpstream) -> ChatCore:
    clock = StoppedClock()  # moves only when a test says
    state = MemoryState(clock)
    return ChatCore(
        client=upstream,
        coalescer=Coalescer(None, clock=clock),
        renewals=Renewals(state, pause=lambda seconds: clock.advance(seconds)),
        wakeups=Wakeups(),
        clock=clock,
        messages_shown=50,
    )


def visitor(core: ChatCore) -> VisitorChats:
    return core.for_visitor(DictSession())


def texts(messages: list[MessageDto]) -> list[str]:
    return [message.content.text or "" for message in messages]


def test_a_chat_is_started_kept_and_read_without_an_app(core, upstream):
    assert not has_app_context()
    chats = visitor(core)
    assert chats.current(WIDGET) is None
    chat = chats.start(WIDGET, origin_url="https://shop.example/", language="EN")
    assert upstream.calls == ["create_contact", "create_conversation"]
    # The session holds the chat, under a new handle; it reads back the same.
    assert chats.session.handles == 2
    assert chats.current(WIDGET) == chat
    listing = chats.message_listing(WIDGET, chat)
    assert texts(listing.messages) == ["Hello! How can I help?"]


def test_a_send_is_seen_at_once_by_the_sender_not_from_a_cached_list(core, upstream):
    chats = visitor(core)
    chat = chats.start(WIDGET, origin_url="https://shop.example/", language="EN")
    before = chats.message_listing(WIDGET, chat)
    chats.send_text(WIDGET, chat, "where is my parcel", "c1")
    after = chats.message_listing(WIDGET, chat, max_age=60)
    assert texts(after.messages)[-1] == "where is my parcel"
    assert after.version != before.version
    assert upstream.calls.count("list_messages") == 2


def test_an_expired_token_is_renewed_once_for_every_tab_and_kept_in_each_session(
    core, upstream
):
    first = visitor(core)
    chat = first.start(WIDGET, origin_url="https://shop.example/", language="EN")
    # A second tab: another request with the same session contents.
    second = core.for_visitor(DictSession())
    second.session.update(first.session)
    upstream.expired.add(chat.widget_token)
    renewals_before = upstream.calls.count("create_conversation")

    assert texts(first.fetch_messages(WIDGET, chat))
    other_chat = second.current(WIDGET)
    assert other_chat is not None
    assert texts(second.fetch_messages(WIDGET, other_chat))

    assert upstream.calls.count("create_conversation") == renewals_before + 1
    renewed = first.current(WIDGET)
    assert renewed is not None and renewed.widget_token not in upstream.expired
    assert second.current(WIDGET) == renewed
    assert renewed.conversation_id == chat.conversation_id  # the same chat goes on


def test_a_refusal_keeps_the_chat_and_is_told_apart_from_an_outage(core, upstream):
    chats = visitor(core)
    chat = chats.start(WIDGET, origin_url="https://shop.example/", language="EN")
    del upstream.tokens[chat.widget_token]
    with pytest.raises(UpstreamRejected) as refused:
        chats.send_text(WIDGET, chat, "hello?", "c2")
    assert chat_unreachable(refused.value)
    assert chats.current(WIDGET) == chat  # nothing destructive on an undocumented status


def test_leaving_keeps_the_session_and_ending_the_last_chat_ends_it(core):
    chats = visitor(core)
    other = WidgetConfig(id="bakery", chatbot_id="bot-2", channel_id="channel-2",
                         channel_token=WIDGET.channel_token, allowed_origins=())
    chats.start(WIDGET, origin_url="https://shop.example/", language="EN")
    chats.start(other, origin_url="https://shop.example/", language="EN")
    chats.leave(WIDGET)
    assert chats.current(WIDGET) is None and not chats.session.destroyed
    chats.end(other)
    assert chats.session.destroyed


def test_a_poll_through_the_core_gets_only_what_changed(core, upstream):
    chats = visitor(core)
    chat = chats.start(WIDGET, origin_url="https://shop.example/", language="EN")
    now = core.clock()
    shown = chats.message_listing(WIDGET, chat)
    core.remember(WIDGET, chat, shown)
    state = polling.read_state({"v": shown.version, "i": "1.5", "t": str(int(now))}, now, 3.0)
    answer = polling.poll(chats, WIDGET, chat, state, now=now, base=3.0)
    assert isinstance(answer, polling.Unchanged)

    upstream.conversations[chat.conversation_id].append(upstream._message("Your parcel", True))
    core.clock.advance(2.0)  # the cached list is now older than the poll interval allows
    changed = polling.poll(chats, WIDGET, chat, state, now=core.clock(), base=3.0)
    assert isinstance(changed, polling.Changes) and changed.delta is not None
    assert [texts(list(changed.messages))[i] for i in changed.delta.append] == ["Your parcel"]


CORE_MODULES = (
    "conversation.py", "polling.py", "coalesce.py", "list_cache.py", "listing.py", "renewal.py",
    "wake.py",
)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_the_core_modules_import_nothing_of_flask(module):
    tree = ast.parse((Path(__file__).parent.parent / "webwidget" / module).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] in ("flask", "flask_babel")}
