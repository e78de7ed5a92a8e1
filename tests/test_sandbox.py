"""The ChatCaptain sandbox over real HTTP: contract conformance, auth, bot, faults, state."""

from __future__ import annotations

import copy
import json
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import pytest
import requests
from conftest import advance, faults, heal, reset, stats
from jsonschema import Draft202012Validator

from webwidget.sandbox import SandboxConfig, create_sandbox_app
from webwidget.sandbox.server import BackgroundServer

BOT = "demo-bot"
CHANNEL = "channel_abc123"
CHANNEL_TOKEN = "channel_token_xyz789"
TIMEOUT = 5
KINDS = (
    "text", "file", "buttons", "selectedButton", "template", "location", "voiceHangup",
    "voiceTransfer", "agentHandover", "email", "textToSpeech", "metaWhatsappTemplate",
    "operator",
)


# --- OpenAPI response validation ----------------------------------------------------------


def openapi_nullable(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 ``nullable: true`` into JSON Schema's null alternative."""
    if isinstance(node, list):
        return [openapi_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: openapi_nullable(value) for key, value in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def load_document() -> dict[str, Any]:
    """The bundled OpenAPI document with nullable converted."""
    text = (
        resources.files("webwidget.chatcaptain")
        .joinpath("contract/widget-api.openapi.json")
        .read_text(encoding="utf-8")
    )
    doc = json.loads(text)
    return {"components": openapi_nullable(doc["components"]), "paths": doc["paths"]}


DOCUMENT = load_document()


def response_validator(path: str, method: str, status: str) -> Draft202012Validator:
    """A validator for one operation's documented response body."""
    media = DOCUMENT["paths"][path][method]["responses"][status]["content"]
    ref = media["application/json"]["schema"]["$ref"]
    root = {"$ref": ref, "components": copy.deepcopy(DOCUMENT["components"])}
    return Draft202012Validator(root)


CONTACT_SCHEMA = response_validator("/v1/widget/{chatbotId}/contact", "post", "201")
CONVERSATION_SCHEMA = response_validator("/v1/widget/{chatbotId}/conversations", "post", "201")
MESSAGES_SCHEMA = response_validator(
    "/v1/widget/{chatbotId}/conversations/{conversationId}/messages", "get", "200"
)
MESSAGE_SCHEMA = Draft202012Validator(
    {"$ref": "#/components/schemas/MessageDto", "components": DOCUMENT["components"]}
)


def valid(validator: Draft202012Validator, body: Any) -> Any:
    """Assert that body matches the schema; return it."""
    errors = [e.message for e in validator.iter_errors(body)]
    assert not errors, errors
    return body


# --- a visitor talking to the sandbox -----------------------------------------------------


class Visitor:
    """One website visitor: a contact with a widget token, and its conversations."""

    def __init__(self, url: str, bot: str = BOT, channel: str = CHANNEL,
                 channel_token: str = CHANNEL_TOKEN, headers: dict[str, str] | None = None):
        self.url, self.bot, self.channel, self.headers = url, bot, channel, headers or {}
        r = requests.post(f"{url}/v1/widget/{bot}/contact", json={
            "channelId": channel, "channelToken": channel_token,
            "originUrl": "https://example.com/contact", "language": "EN",
        }, headers=self.headers, timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        body = valid(CONTACT_SCHEMA, r.json())
        self.contact_id, self.token = body["contactId"], body["widgetToken"]

    def start(self) -> dict[str, Any]:
        """Create a conversation; returns the whole (validated) response body."""
        r = self.post_conversation()
        assert r.status_code == 201, r.text
        return valid(CONVERSATION_SCHEMA, r.json())

    def post_conversation(self, token: str | None = None) -> requests.Response:
        """POST .../conversations with this visitor's (or the given) token."""
        return requests.post(f"{self.url}/v1/widget/{self.bot}/conversations", json={
            "widgetToken": token or self.token, "channelId": self.channel, "language": "EN",
        }, headers=self.headers, timeout=TIMEOUT)

    def get(self, conversation_id: str, token: str | None = None) -> requests.Response:
        """GET .../messages."""
        return requests.get(
            f"{self.url}/v1/widget/{self.bot}/conversations/{conversation_id}/messages",
            params={"token": token or self.token}, headers=self.headers, timeout=TIMEOUT,
        )

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """The validated message list."""
        r = self.get(conversation_id)
        assert r.status_code == 200, r.text
        return valid(MESSAGES_SCHEMA, r.json())["messages"]

    def send(self, conversation_id: str, body: Any, token: str | None = None
             ) -> requests.Response:
        """The sandbox extension: POST .../messages."""
        return requests.post(
            f"{self.url}/v1/widget/{self.bot}/conversations/{conversation_id}/messages",
            params={"token": token or self.token}, json=body, headers=self.headers,
            timeout=TIMEOUT,
        )


@pytest.fixture
def own_server():
    """Start a sandbox app with a given config on its own port; stopped at teardown."""
    servers: list[BackgroundServer] = []

    def start(config: SandboxConfig) -> BackgroundServer:
        server = BackgroundServer(create_sandbox_app(config)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --- documented operations ----------------------------------------------------------------


def test_happy_path_bodies_match_the_contract(sandbox):
    visitor = Visitor(sandbox.url)
    assert visitor.token.startswith("wt_") and visitor.contact_id.startswith("ct_")
    started = visitor.start()
    conversation = started["conversation"]
    assert "newWebToken" not in started
    assert conversation["contactId"] == visitor.contact_id
    assert conversation["chatbotId"] == BOT and conversation["channelId"] == CHANNEL
    greeting = visitor.messages(conversation["id"])
    assert len(greeting) == 1
    first = greeting[0]
    assert first["outgoing"] is True and first["sender"] == "bot"
    assert first["persona"]["name"] and first["content"]["buttons"]["buttons"]


def test_all_command_covers_every_content_kind(sandbox):
    visitor = Visitor(sandbox.url)
    conversation_id = visitor.start()["conversation"]["id"]
    r = visitor.send(conversation_id, {"text": "all"})
    assert r.status_code == 201
    valid(MESSAGE_SCHEMA, r.json()["message"])
    advance(sandbox.url, 30)
    messages = visitor.messages(conversation_id)
    for kind in KINDS:
        assert any(kind in m["content"] for m in messages), kind
    created = [m["created"] for m in messages]
    assert created == sorted(created)
    groups = [m["streamGroupId"] for m in messages if "streamGroupId" in m]
    assert len(groups) == 3 and len(set(groups)) == 1
    assert any(m.get("isSensitive") for m in messages)
    assert any(m.get("error") for m in messages)
    assert any(m["sender"] == "agent" for m in messages)
    files = [m["content"]["file"] for m in messages if "file" in m["content"]]
    assert {f["type"] for f in files} >= {"image", "audio", "video", "document"}
    assert any(f.get("transcript") for f in files)
    # video/webm: EBML's magic number; every browser plays the sample video.
    magic = {"image/png": b"\x89PNG", "audio/wav": b"RIFF", "video/webm": b"\x1a\x45\xdf\xa3",
             "application/pdf": b"%PDF"}
    for f in files:
        got = requests.get(f["url"], timeout=TIMEOUT)
        assert got.status_code == 200 and got.headers["Content-Type"].startswith(f["mimeType"])
        assert got.content.startswith(magic[f["mimeType"]]) and len(got.content) == f["size"]
    # A video player seeks with byte ranges.
    video = next(f for f in files if f["mimeType"] == "video/webm")
    part = requests.get(video["url"], headers={"Range": "bytes=0-9"}, timeout=TIMEOUT)
    assert part.status_code == 206 and len(part.content) == 10


def test_buttons_selected_button_and_echo(sandbox):
    visitor = Visitor(sandbox.url)
    conversation_id = visitor.start()["conversation"]["id"]
    r = visitor.send(conversation_id, {"selectedButton": {"label": "Help", "value": "help"}})
    assert r.status_code == 201
    mine = valid(MESSAGE_SCHEMA, r.json()["message"])
    assert mine["outgoing"] is False and mine["sender"] == "user" and mine["status"] == "sent"
    assert mine["content"]["selectedButton"]["value"] == "help"
    visitor.send(conversation_id, {"text": "hello there"})
    advance(sandbox.url, 5)
    texts = [m["content"].get("text", "") for m in visitor.messages(conversation_id)]
    assert any(t.startswith("Commands:") for t in texts)
    assert "You said: hello there" in texts


def test_a_repeated_client_message_id_is_stored_once(sandbox):
    visitor = Visitor(sandbox.url)
    conversation_id = visitor.start()["conversation"]["id"]
    body = {"text": "only once", "clientMessageId": "c0ffee-0001"}
    first = visitor.send(conversation_id, body)
    again = visitor.send(conversation_id, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["message"]["id"] == first.json()["message"]["id"]
    # Another id (or none) is another message; the id is per conversation.
    another = {**body, "clientMessageId": "c0ffee-0002"}
    assert visitor.send(conversation_id, another).status_code == 201
    other = visitor.start()["conversation"]["id"]
    assert visitor.send(other, body).status_code == 201
    advance(sandbox.url, 5)
    texts = [m["content"].get("text", "") for m in visitor.messages(conversation_id)]
    assert texts.count("only once") == 2
    assert texts.count("You said: only once") == 2  # the repeat got no second reply


def test_bot_replies_appear_after_their_delay(sandbox):
    visitor = Visitor(sandbox.url)
    conversation_id = visitor.start()["conversation"]["id"]
    visitor.send(conversation_id, {"text": "delay"})
    # The second part is due 2 s after sending: not yet visible without the clock.
    assert not any("done" in m["content"].get("text", "")
                   for m in visitor.messages(conversation_id))
    advance(sandbox.url, 3)
    assert any("done" in m["content"].get("text", "") for m in visitor.messages(conversation_id))


def test_status_progresses_sent_delivered_read(sandbox):
    visitor = Visitor(sandbox.url)
    conversation_id = visitor.start()["conversation"]["id"]
    sent_id = visitor.send(conversation_id, {"text": "hi"}).json()["message"]["id"]

    def status() -> str:
        return next(m for m in visitor.messages(conversation_id) if m["id"] == sent_id)["status"]

    assert status() == "sent"
    advance(sandbox.url, 1.2)
    assert status() == "delivered"
    advance(sandbox.url, 1.2)
    assert status() == "read"


@pytest.mark.parametrize("body", [
    b"not json",
    b"[]",
    json.dumps({"channelId": CHANNEL, "channelToken": CHANNEL_TOKEN, "language": "EN"}).encode(),
    json.dumps({"channelId": CHANNEL, "channelToken": CHANNEL_TOKEN, "language": 7,
                "originUrl": "https://example.com"}).encode(),
])
def test_create_contact_bad_input_is_400(sandbox, body):
    r = requests.post(f"{sandbox.url}/v1/widget/{BOT}/contact", data=body,
                      headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json() == {"error": "Invalid input data."}


def test_conversation_and_send_bad_input_is_400(sandbox):
    visitor = Visitor(sandbox.url)
    url = f"{sandbox.url}/v1/widget/{BOT}/conversations"
    for body in ({"widgetToken": visitor.token, "channelId": CHANNEL},
                 {"widgetToken": 5, "channelId": CHANNEL, "language": "EN"}):
        r = requests.post(url, json=body, timeout=TIMEOUT)
        assert r.status_code == 400 and r.json()["error"] == "Invalid input data."
    r = requests.post(url, data="{", headers={"Content-Type": "application/json"},
                      timeout=TIMEOUT)
    assert r.status_code == 400
    conversation_id = visitor.start()["conversation"]["id"]
    for body in ({}, {"text": ""}, {"text": 3}, {"text": "a", "selectedButton": {
            "label": "x", "value": "y"}}, {"selectedButton": {"label": "x"}}):
        assert visitor.send(conversation_id, body).status_code == 400, body
    r = requests.get(f"{url}/{conversation_id}/messages", timeout=TIMEOUT)
    assert r.status_code == 400 and "error" in r.json()


def test_channel_and_chatbot_checks(sandbox):
    def contact(bot: str, channel: str, token: str) -> requests.Response:
        return requests.post(f"{sandbox.url}/v1/widget/{bot}/contact", json={
            "channelId": channel, "channelToken": token,
            "originUrl": "https://example.com", "language": "EN"}, timeout=TIMEOUT)

    wrong = contact(BOT, CHANNEL, "channel_token_wrong")
    assert wrong.status_code == 401 and "error" in wrong.json()
    assert contact("no-such-bot", CHANNEL, CHANNEL_TOKEN).status_code == 404
    assert contact(BOT, "channel_nope", CHANNEL_TOKEN).status_code == 404
    # A channel of another chatbot is unknown here.
    assert contact(BOT, "channel_second", "channel_token_second").status_code == 404
    second = Visitor(sandbox.url, "second-bot", "channel_second", "channel_token_second")
    assert second.start()["conversation"]["chatbotId"] == "second-bot"
    # A token of second-bot is refused by demo-bot.
    r = Visitor(sandbox.url).post_conversation(token=second.token)
    assert r.status_code == 403 and "error" in r.json()


def test_tokens_are_checked_per_visitor(sandbox):
    alice, mallory = Visitor(sandbox.url), Visitor(sandbox.url)
    conversation_id = alice.start()["conversation"]["id"]
    r = mallory.get(conversation_id)
    assert r.status_code == 403 and "error" in r.json()
    assert mallory.send(conversation_id, {"text": "hi"}).status_code == 403
    r = alice.get(conversation_id, token="wt_unknown")
    assert r.status_code == 401 and r.json() == {"error": "Invalid widget token."}
    assert alice.post_conversation(token="wt_unknown").status_code == 401
    assert alice.get("cv_unknown").status_code == 404


def test_token_expiry_and_rotation(sandbox):
    visitor = Visitor(sandbox.url)
    old_conversation = visitor.start()["conversation"]["id"]
    advance(sandbox.url, 3601)
    r = visitor.get(old_conversation)
    assert r.status_code == 401 and r.json() == {"error": "Widget token expired."}
    assert visitor.send(old_conversation, {"text": "hi"}).status_code == 401
    r = visitor.post_conversation()
    assert r.status_code == 201
    body = valid(CONVERSATION_SCHEMA, r.json())
    new_token = body["newWebToken"]
    assert new_token != visitor.token and body["conversation"]["contactId"] == visitor.contact_id
    # The new token belongs to the contact: it opens old and new conversations alike.
    assert visitor.get(old_conversation, token=new_token).status_code == 200
    assert visitor.get(body["conversation"]["id"], token=new_token).status_code == 200
    assert visitor.get(old_conversation).status_code == 401


def test_api_key_is_enforced(own_server):
    server = own_server(SandboxConfig(api_key="sekret", token_ttl_seconds=60))
    body = {"channelId": CHANNEL, "channelToken": CHANNEL_TOKEN,
            "originUrl": "https://example.com", "language": "EN"}
    url = f"{server.url}/v1/widget/{BOT}/contact"
    missing = requests.post(url, json=body, timeout=TIMEOUT)
    assert missing.status_code == 401 and "error" in missing.json()
    wrong = requests.post(url, json=body, headers={"x-chatcaptain-key": "nope"}, timeout=TIMEOUT)
    assert wrong.status_code == 401
    visitor = Visitor(server.url, headers={"x-chatcaptain-key": "sekret"})
    conversation_id = visitor.start()["conversation"]["id"]
    assert visitor.messages(conversation_id)
    unkeyed = requests.get(f"{server.url}/v1/widget/{BOT}/conversations/{conversation_id}"
                           "/messages", params={"token": visitor.token}, timeout=TIMEOUT)
    assert unkeyed.status_code == 401


# --- faults and control API ---------------------------------------------------------------


def test_error_status_fault_and_times(sandbox):
    faults(sandbox.url, error_status=503, times=2, operations=["create_contact"])
    url = f"{sandbox.url}/v1/widget/{BOT}/contact"
    body = {"channelId": CHANNEL, "channelToken": CHANNEL_TOKEN,
            "originUrl": "https://example.com", "language": "EN"}
    codes = [requests.post(url, json=body, timeout=TIMEOUT).status_code for _ in range(3)]
    assert codes == [503, 503, 201]
    assert stats(sandbox.url)["create_contact"] == 3


def test_fault_applies_only_to_chosen_operations(sandbox):
    visitor = Visitor(sandbox.url)
    faults(sandbox.url, error_rate=1, operations=["list_messages"])
    conversation_id = visitor.start()["conversation"]["id"]
    r = visitor.get(conversation_id)
    assert r.status_code == 500 and "error" in r.json()
    heal(sandbox)
    assert visitor.get(conversation_id).status_code == 200
    assert stats(sandbox.url) == {"create_contact": 1, "create_conversation": 1,
                                  "list_messages": 2, "send_message": 0}


def test_latency_and_hang_faults(sandbox):
    visitor = Visitor(sandbox.url)
    conversation_id = visitor.start()["conversation"]["id"]
    faults(sandbox.url, latency_ms=300, times=1)
    began = time.monotonic()
    assert visitor.get(conversation_id).status_code == 200
    assert time.monotonic() - began >= 0.3
    faults(sandbox.url, hang_seconds=1.0, times=1)
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{sandbox.url}/v1/widget/{BOT}/conversations/{conversation_id}/messages",
                     params={"token": visitor.token}, timeout=0.3)


def test_reset_fault_drops_the_connection(sandbox):
    visitor = Visitor(sandbox.url)
    faults(sandbox.url, reset_rate=1, times=1)
    with pytest.raises(requests.ConnectionError):
        visitor.post_conversation()
    assert visitor.post_conversation().status_code == 201


def test_malformed_schema_violation_and_error_body_faults(sandbox):
    visitor = Visitor(sandbox.url)
    conversation_id = visitor.start()["conversation"]["id"]

    faults(sandbox.url, malformed_rate=1, times=1)
    r = visitor.get(conversation_id)
    assert r.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        r.json()

    faults(sandbox.url, schema_violation_rate=1, times=3)
    r = visitor.get(conversation_id)
    assert r.status_code == 200 and not MESSAGES_SCHEMA.is_valid(r.json())
    r = visitor.post_conversation()
    assert r.status_code == 201 and not CONVERSATION_SCHEMA.is_valid(r.json())
    r = requests.post(f"{sandbox.url}/v1/widget/{BOT}/contact", json={}, timeout=TIMEOUT)
    assert r.status_code == 201 and not CONTACT_SCHEMA.is_valid(r.json())

    faults(sandbox.url, error_body_rate=1, times=2)
    r = visitor.get(conversation_id)
    assert r.status_code == 200 and valid(MESSAGES_SCHEMA, r.json())["error"]
    r = visitor.post_conversation()
    assert r.status_code == 201 and valid(CONVERSATION_SCHEMA, r.json())["error"]
    assert visitor.get(conversation_id).json().get("error") is None


def test_control_api_validation_and_reset(sandbox):
    bad = requests.put(f"{sandbox.url}/_sandbox/faults", json={"error_rate": 2}, timeout=TIMEOUT)
    assert bad.status_code == 400
    bad = requests.put(f"{sandbox.url}/_sandbox/faults", json={"operations": ["nope"]},
                       timeout=TIMEOUT)
    assert bad.status_code == 400
    assert requests.post(f"{sandbox.url}/_sandbox/clock", json={"advance": "x"},
                         timeout=TIMEOUT).status_code == 400
    visitor = Visitor(sandbox.url)
    conversation_id = visitor.start()["conversation"]["id"]
    faults(sandbox.url, error_rate=1)
    reset(sandbox)
    # Reset clears faults and counters, not conversations.
    assert stats(sandbox.url) == dict.fromkeys(stats(sandbox.url), 0)
    assert visitor.get(conversation_id).status_code == 200
    assert requests.get(f"{sandbox.url}/_sandbox/files/nope.png",
                        timeout=TIMEOUT).status_code == 404


# --- state --------------------------------------------------------------------------------


def test_sqlite_state_is_shared_between_apps(own_server, tmp_path):
    config = SandboxConfig(state_path=str(tmp_path / "sandbox.sqlite3"))
    first, second = own_server(config), own_server(config)
    visitor = Visitor(first.url)
    conversation_id = visitor.start()["conversation"]["id"]
    on_second = Visitor(second.url)
    on_second.token = visitor.token
    assert on_second.send(conversation_id, {"text": "ping"}).status_code == 201
    advance(second.url, 5)
    texts = [m["content"].get("text") for m in visitor.messages(conversation_id)]
    assert "You said: ping" in texts
    # Faults and counters live in the shared store too.
    faults(first.url, error_status=502, times=1)
    assert on_second.get(conversation_id).status_code == 502
    assert stats(first.url)["send_message"] == 1


def test_concurrent_contacts_get_distinct_tokens(sandbox):
    with ThreadPoolExecutor(max_workers=20) as pool:
        visitors = list(pool.map(lambda _: Visitor(sandbox.url), range(20)))
    assert len({v.token for v in visitors}) == 20
    assert len({v.contact_id for v in visitors}) == 20
    assert stats(sandbox.url)["create_contact"] == 20


# --- config, CLI and boundaries -----------------------------------------------------------


def test_config_file_and_cli_parser(tmp_path):
    from webwidget.sandbox.cli import build_parser
    from webwidget.sandbox.config import load_config

    path = tmp_path / "sandbox.toml"
    path.write_text('api_key = "k"\ntoken_ttl_seconds = 5\n[[chatbots]]\nid = "b"\n'
                    'channels = [{ id = "c", token = "t" }]\n', encoding="utf-8")
    config = load_config(path)
    assert config.api_key == "k" and config.chatbot("b").channels[0].token == "t"
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.config, args.state) == ("127.0.0.1", 8081, None, None)


def test_sandbox_imports_only_the_contract_from_webwidget():
    import ast
    from pathlib import Path

    import webwidget.sandbox as package

    for source in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("webwidget"):
                    assert node.module.startswith(("webwidget.chatcaptain.models",
                                                   "webwidget.sandbox")), source


def test_a_held_clock_moves_only_when_advanced(sandbox):
    """A held clock stands still; advance moves it; release runs on from where it stood."""
    control = f"{sandbox.url}/_sandbox/clock"
    held = requests.post(control, json={"hold": True}, timeout=5).json()["now"]
    assert requests.post(control, json={"advance": 0}, timeout=5).json()["now"] == held
    assert requests.post(control, json={"advance": 2}, timeout=5).json()["now"] == held + 2
    released = requests.post(control, json={"hold": False}, timeout=5).json()["now"]
    assert held + 2 <= released < held + 2 + 5
    assert requests.post(control, json={"hold": "yes"}, timeout=5).status_code == 400
    assert requests.post(control, json={}, timeout=5).status_code == 400
