"""The ChatCaptain widget API as the sandbox serves it, plus the send-message extension.

Documented operations: create contact, create conversation, list messages. The
sandbox-only extension ``POST .../conversations/<id>/messages`` lets a visitor post.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request, url_for
from pydantic import BaseModel, ValidationError

from webwidget.chatcaptain.models import (
    ContentDto,
    ConversationDto,
    ConversationStatus,
    CreateWidgetContactRequestDto,
    CreateWidgetConversationRequestDto,
    MessageContentButtonReplyDto,
    MessageDto,
    SandboxSendMessageRequest,
)

from . import bot, faults
from .clock import iso
from .config import ChatbotConfig
from .state import SandboxState, get_state

bp = Blueprint("sandbox_api", __name__, url_prefix="/v1/widget")

M = TypeVar("M", bound=BaseModel)
INVALID_INPUT = "Invalid input data."
# Seconds after a visitor message is sent at which it counts as delivered, then read.
DELIVERED_AFTER = 1.0
READ_AFTER = 2.0


class ApiError(Exception):
    """An error answer: status code and the vendor-style ``{"error": ...}`` message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@bp.errorhandler(ApiError)
def handle_api_error(err: ApiError) -> tuple[Response, int]:
    """Answer an ApiError with its status and an error body."""
    return jsonify({"error": err.message}), err.status


def new_id(prefix: str) -> str:
    """A random, unguessable id with a recognisable prefix."""
    return prefix + secrets.token_urlsafe(18)


# --- fault injection and auth around each operation ---------------------------------------

# Bodies that are valid JSON but break the response schema, per operation.
SCHEMA_VIOLATIONS: dict[str, Any] = {
    "create_contact": {"contactId": 12345, "widgetToken": ["not", "a", "string"]},
    "create_conversation": {"conversation": {"id": 7, "archived": "no"}},
    "list_messages": {"messages": [{"id": 1, "content": "text"}]},
    "send_message": {"message": {"id": None}},
}
# Schema-valid 2xx bodies that carry an error, as the vendor may send.
ERROR_BODIES: dict[str, Any] = {
    "create_contact": {"error": "Injected error."},
    "create_conversation": {"conversation": None, "error": "Injected error."},
    "list_messages": {"messages": [], "error": "Injected error."},
    "send_message": {"error": "Injected error."},
}
SUCCESS = {"create_contact": 201, "create_conversation": 201, "list_messages": 200,
           "send_message": 201}


def drop_connection() -> Response:
    """Close the TCP connection without answering (werkzeug's server only)."""
    sock = request.environ.get("werkzeug.socket")
    if sock is None:
        # Other servers give no socket access; a 500 is the nearest stand-in.
        raise RuntimeError("connection reset requested but no socket available")
    sock.shutdown(socket.SHUT_RDWR)
    # Writing this response fails; werkzeug treats that as a dropped connection.
    return Response(b"", status=200)


def operation(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a view: count it, inject faults, check the API key."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            state = get_state()
            state.store.count(name)
            plan = faults.draw(state.store, name)
            if plan.latency_s:
                time.sleep(plan.latency_s)
            if plan.hang_s:
                time.sleep(plan.hang_s)
            if plan.action == "reset":
                return drop_connection()
            if plan.action == "error":
                return jsonify({"error": "Injected fault."}), plan.status
            if plan.action == "malformed":
                body = '{"error": "truncated", "messages": [{"id": '
                return Response(body, status=SUCCESS[name], mimetype="application/json")
            if plan.action == "schema_violation":
                return jsonify(SCHEMA_VIOLATIONS[name]), SUCCESS[name]
            if plan.action == "error_body":
                return jsonify(ERROR_BODIES[name]), SUCCESS[name]
            check_api_key(state)
            return view(state, *args, **kwargs)

        return wrapper

    return decorate


def check_api_key(state: SandboxState) -> None:
    """Enforce x-chatcaptain-key when the sandbox is configured with one."""
    expected = state.config.api_key
    if expected is None:
        return
    given = request.headers.get("x-chatcaptain-key", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "Invalid or missing API key.")


# --- request helpers --------------------------------------------------------------------


def parse_body(model: type[M]) -> M:
    """The JSON body validated against ``model``; 400 on anything else."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, INVALID_INPUT)
    try:
        return model.model_validate(data, strict=True)
    except ValidationError:
        raise ApiError(400, INVALID_INPUT) from None


def find_chatbot(state: SandboxState, chatbot_id: str, channel_id: str | None) -> ChatbotConfig:
    """The configured chatbot (and check its channel); 404 when unknown."""
    chatbot = state.config.chatbot(chatbot_id)
    if chatbot is None:
        raise ApiError(404, "Unknown chatbot.")
    if channel_id is not None and not any(c.id == channel_id for c in chatbot.channels):
        raise ApiError(404, "Unknown channel.")
    return chatbot


def find_token(state: SandboxState, token: str, chatbot_id: str) -> tuple[Any, Any]:
    """The token row and its contact; 401 if unknown, 403 if for another chatbot."""
    row = state.store.token(token) if token else None
    contact = state.store.contact(row["contact_id"]) if row else None
    if row is None or contact is None:
        raise ApiError(401, "Invalid widget token.")
    if contact["chatbot_id"] != chatbot_id:
        raise ApiError(403, "Widget token does not belong to this chatbot.")
    return row, contact


def owned_conversation(state: SandboxState, chatbot_id: str, conversation_id: str) -> Any:
    """The conversation, checked against the query token; the gate for reads and sends."""
    find_chatbot(state, chatbot_id, None)
    token = request.args.get("token", "")
    if not token:
        raise ApiError(400, INVALID_INPUT)
    row, _contact = find_token(state, token, chatbot_id)
    conversation = state.store.conversation(conversation_id)
    if conversation is None or conversation["chatbot_id"] != chatbot_id:
        raise ApiError(404, "Unknown conversation.")
    if conversation["contact_id"] != row["contact_id"]:
        # One visitor can never read or write another visitor's conversation.
        raise ApiError(403, "Widget token does not grant access to this conversation.")
    if row["expires_at"] <= state.now():
        raise ApiError(401, "Widget token expired.")
    return conversation


def bot_context(state: SandboxState, chatbot: ChatbotConfig) -> bot.BotContext:
    """The scripted bot's context for this request (files under this server's URL)."""
    files_url = url_for("sandbox_control.serve_file", name="x", _external=True)[:-1]
    return bot.BotContext(persona_name=chatbot.persona_name, files_url=files_url,
                          files=state.files)


def store_replies(
    state: SandboxState, conversation_id: str, replies: list[bot.Reply], start: float
) -> None:
    """Store bot replies; each becomes visible after its (cumulative) delay."""
    at = start
    stored = []
    for reply in replies:
        at += reply.delay_ms / 1000
        message = MessageDto(
            id=new_id("msg_"), sender=reply.sender, type=bot.message_type(reply.content),
            persona=reply.persona, status="delivered", created=iso(at), sent=iso(at),
            outgoing=True, content=reply.content, tags=[], **reply.extra,
        )
        stored.append((at, dump(message)))
    state.store.add_messages(conversation_id, stored)


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as vendor JSON: aliases, no unset optionals."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def with_status(message: dict[str, Any], now: float) -> dict[str, Any]:
    """A visitor message with its delivery status as of ``now`` (sent/delivered/read)."""
    if message["outgoing"]:
        return message
    sent = datetime.fromisoformat(message["created"]).timestamp()
    message = dict(message)
    if now - sent >= READ_AFTER:
        message.update(status="read", received=iso(sent + DELIVERED_AFTER),
                       read=iso(sent + READ_AFTER))
    elif now - sent >= DELIVERED_AFTER:
        message.update(status="delivered", received=iso(sent + DELIVERED_AFTER))
    return message


# --- the documented operations ----------------------------------------------------------


@bp.post("/<chatbot_id>/contact")
@operation("create_contact")
def create_contact(state: SandboxState, chatbot_id: str) -> tuple[Response, int]:
    """Create a contact for a channel and issue its widget token."""
    body = parse_body(CreateWidgetContactRequestDto)
    chatbot = find_chatbot(state, chatbot_id, body.channelId)
    channel = next(c for c in chatbot.channels if c.id == body.channelId)
    if not hmac.compare_digest(body.channelToken.encode(), channel.token.encode()):
        raise ApiError(401, "Invalid channel token.")
    now = state.now()
    contact_id, token = new_id("ct_"), new_id("wt_")
    state.store.add_contact(contact_id, chatbot_id, channel.id, body.language,
                            body.originUrl, now)
    state.store.add_token(token, contact_id, now + state.config.token_ttl_seconds)
    return jsonify({"contactId": contact_id, "widgetToken": token}), 201


@bp.post("/<chatbot_id>/conversations")
@operation("create_conversation")
def create_conversation(state: SandboxState, chatbot_id: str) -> tuple[Response, int]:
    """Start a conversation for the token's contact; rotate an expired token."""
    body = parse_body(CreateWidgetConversationRequestDto)
    chatbot = find_chatbot(state, chatbot_id, body.channelId)
    row, contact = find_token(state, body.widgetToken, chatbot_id)
    if contact["channel_id"] != body.channelId:
        raise ApiError(403, "Widget token does not belong to this channel.")
    now = state.now()
    result: dict[str, Any] = {}
    if row["expires_at"] <= now:
        # Tokens belong to the contact: the new one keeps every conversation reachable.
        new_token = new_id("wt_")
        state.store.add_token(new_token, contact["id"], now + state.config.token_ttl_seconds)
        result["newWebToken"] = new_token
    replies = bot.greeting(bot_context(state, chatbot))
    stamp = iso(now)
    conversation = ConversationDto(
        id=new_id("cv_"), contactId=contact["id"], archived=False, channelId=body.channelId,
        channelType="web", chatbotId=chatbot_id, idToken=new_id("it_"), language=body.language,
        operatorId="", photoUrl="", sessionCount=1, tags=[], unread=True, variables={},
        created=stamp, updated=stamp, name="Website visitor", lastMessage=replies[0].content,
        snoozed="", lastUserAction=stamp, mentions=[], mentionsRead={}, lastSender="bot",
        environment=state.config.environment, metadata={"originUrl": contact["origin_url"]},
        state=ConversationStatus.BOT,
    )
    state.store.add_conversation(conversation.id, chatbot_id, contact["id"], dump(conversation))
    store_replies(state, conversation.id, replies, now)
    result["conversation"] = dump(conversation)
    return jsonify(result), 201


@bp.get("/<chatbot_id>/conversations/<conversation_id>/messages")
@operation("list_messages")
def list_messages(state: SandboxState, chatbot_id: str, conversation_id: str) -> Response:
    """The conversation's messages visible now, oldest first."""
    owned_conversation(state, chatbot_id, conversation_id)
    now = state.now()
    messages = [with_status(m, now) for m in state.store.messages(conversation_id, now)]
    return jsonify({"messages": messages})


@bp.post("/<chatbot_id>/conversations/<conversation_id>/messages")
@operation("send_message")
def send_message(
    state: SandboxState, chatbot_id: str, conversation_id: str
) -> tuple[Response, int]:
    """Sandbox extension: the visitor posts text or a selected button; the bot replies."""
    owned_conversation(state, chatbot_id, conversation_id)
    body = parse_body(SandboxSendMessageRequest)
    if (body.text is None) == (body.selectedButton is None) or body.text == "":
        raise ApiError(400, INVALID_INPUT)
    if body.selectedButton is not None:
        choice = body.selectedButton
        content = ContentDto(selectedButton=MessageContentButtonReplyDto(
            label=choice.label, value=choice.value, payload=choice.payload, type="postback",
            # The extension does not say which message offered the button, so the
            # reference is an opaque id of its own (never the conversation's id).
            reference=new_id("ref_")))
        said = choice.value
    else:
        content = ContentDto(text=body.text)
        said = body.text or ""
    now = state.now()
    message = MessageDto(
        id=new_id("msg_"), sender="user", type=bot.message_type(content), status="sent",
        created=iso(now), sent=iso(now), outgoing=False, content=content, tags=[],
    )
    body_json = dump(message)
    stored = state.store.add_visitor_message(conversation_id, now, body_json,
                                             body.clientMessageId)
    if stored != body_json:
        # A repeat of a message already stored (its sender retried): no second copy.
        return jsonify({"message": with_status(stored, now)}), 200
    chatbot = find_chatbot(state, chatbot_id, None)
    store_replies(state, conversation_id, bot.respond(bot_context(state, chatbot), said), now)
    return jsonify({"message": body_json}), 201
