"""ChatCaptainClient against the real sandbox server, plus a raw socket server for edge cases."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from conftest import advance, faults, heal, message_payload, stats

from webwidget.chatcaptain.client import ChatCaptainClient
from webwidget.chatcaptain.errors import (
    ContractViolation,
    SendingUnsupported,
    TokenExpired,
    TokenInvalid,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from webwidget.chatcaptain.models import (
    CreateWidgetContactRequestDto,
    CreateWidgetConversationRequestDto,
    ListWidgetConversationMessagesResponseDto,
)

BOT = "demo-bot"
CHANNEL = "channel_abc123"
CHANNEL_TOKEN = "channel_token_xyz789"
# Small numbers keep the file fast; the fault tests rely on their ratios, not their size.
CONNECT, READ, DEADLINE = 0.5, 0.6, 1.2
MARGIN = 0.35


def contact_request(channel_token: str = CHANNEL_TOKEN) -> CreateWidgetContactRequestDto:
    return CreateWidgetContactRequestDto(
        channelId=CHANNEL, channelToken=channel_token,
        originUrl="https://example.com/contact", language="EN",
    )


def conversation_request(token: str) -> CreateWidgetConversationRequestDto:
    return CreateWidgetConversationRequestDto(widgetToken=token, channelId=CHANNEL, language="EN")


def make_client(url: str, **overrides) -> ChatCaptainClient:
    options = dict(connect_timeout=CONNECT, read_timeout=READ, deadline=DEADLINE, backoff=0.02,
                   sending_enabled=True)
    options.update(overrides)
    return ChatCaptainClient(url, **options)


@pytest.fixture
def client(sandbox) -> Iterator[ChatCaptainClient]:
    c = make_client(sandbox.url)
    yield c
    c.close()


class Visitor:
    """A contact with one conversation on `client`'s upstream, as the widget would hold it
    in its session.

    Made with a client of its own with generous timeouts (`options`: e.g. the API key):
    the set-up is not under test, and the tight ones of the client under test would let a
    loaded machine fail it.
    """

    def __init__(self, client: ChatCaptainClient, **options) -> None:
        with make_client(
            client.base_url, connect_timeout=5, read_timeout=10, deadline=20, **options
        ) as setup:
            contact = setup.create_contact(BOT, contact_request())
            self.contact_id, self.token = contact.contactId, contact.widgetToken
            created = setup.create_conversation(BOT, conversation_request(self.token))
        self.conversation_id = created.conversation.id


@contextlib.contextmanager
def raw_server(handle: Callable[[socket.socket, bytes], None]) -> Iterator[str]:
    """A one-request-per-connection TCP server; `handle(conn, request_bytes)` answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                handle(conn, data)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=serve, args=(conn,), daemon=True)
            worker.start()
            workers.append(worker)

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        acceptor.join(timeout=2)
        listener.close()
        for worker in workers:
            worker.join(timeout=5)


def http_response(status: str, body: bytes, extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n")
    return head.encode() + body


# --- happy paths ------------------------------------------------------------------------


def test_create_contact_conversation_list_and_send(client, sandbox):
    contact = client.create_contact(BOT, contact_request())
    assert contact.contactId and contact.widgetToken and contact.error is None

    created = client.create_conversation(BOT, conversation_request(contact.widgetToken))
    assert created.conversation is not None and created.newWebToken is None
    assert created.conversation.contactId == contact.contactId

    listed = client.list_messages(BOT, created.conversation.id, contact.widgetToken)
    assert isinstance(listed, ListWidgetConversationMessagesResponseDto)
    assert listed.messages and listed.messages[0].outgoing is True  # the bot's greeting

    assert client.supports_sending
    sent = client.send_message(BOT, created.conversation.id, contact.widgetToken, text="hello")
    assert sent.outgoing is False and sent.content.text == "hello"
    chosen = client.send_message(BOT, created.conversation.id, contact.widgetToken,
                                 button_label="Yes", button_value="yes")
    assert chosen.content.selectedButton.value == "yes"

    ids = [m.id for m in client.list_messages(BOT, created.conversation.id,
                                              contact.widgetToken).messages]
    assert sent.id in ids and chosen.id in ids
    assert stats(sandbox) == {"create_contact": 1, "create_conversation": 1,
                               "list_messages": 2, "send_message": 2}


def test_threads_share_one_client(client, sandbox):
    visitor = Visitor(client)
    results: list[int] = []

    def poll() -> None:
        for _ in range(5):
            listed = client.list_messages(BOT, visitor.conversation_id, visitor.token)
            results.append(len(listed.messages))

    threads = [threading.Thread(target=poll) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 30 and stats(sandbox)["list_messages"] == 30
    client.close()  # closes the sessions of the finished threads as well


def test_sending_is_unsupported_unless_enabled(sandbox):
    with make_client(sandbox.url, sending_enabled=False) as plain:
        assert plain.supports_sending is False
        with pytest.raises(SendingUnsupported) as info:
            plain.send_message(BOT, "cv_x", "wt_x", text="hi")
    assert info.value.kind == "unsupported"
    assert stats(sandbox)["send_message"] == 0


def test_send_message_needs_exactly_one_kind_of_content(client):
    with pytest.raises(ValueError):
        client.send_message(BOT, "cv", "wt")
    with pytest.raises(ValueError):
        client.send_message(BOT, "cv", "wt", text="a", button_label="b", button_value="c")
    with pytest.raises(ValueError):
        client.send_message(BOT, "cv", "wt", button_label="only a label")


def test_api_key_header_is_sent():
    from webwidget.sandbox import SandboxConfig, create_sandbox_app
    from webwidget.sandbox.server import BackgroundServer

    server = BackgroundServer(create_sandbox_app(SandboxConfig(api_key="key-s3cret"))).start()
    try:
        with make_client(server.url, api_key="key-s3cret") as keyed:
            assert keyed.create_contact(BOT, contact_request()).widgetToken
        with make_client(server.url) as keyless, pytest.raises(UpstreamRejected) as info:
            keyless.create_contact(BOT, contact_request())
        # A refused key is not a widget-token problem.
        assert type(info.value) is UpstreamRejected and info.value.status == 401
    finally:
        server.stop()


def test_path_segments_are_quoted(client):
    paths: list[bytes] = []

    def record(conn: socket.socket, request: bytes) -> None:
        paths.append(request.split(b" ")[1])
        conn.sendall(http_response("200 OK", b'{"messages": []}'))

    with raw_server(record) as url, make_client(url) as c:
        c.list_messages("bot/..", "a/b?c#d", "wt")
    assert paths[0].startswith(b"/v1/widget/bot%2F../conversations/a%2Fb%3Fc%23d/messages?")
    with pytest.raises(UpstreamRejected) as info:
        client.create_contact("demo-bot/../demo-bot", contact_request())
    assert info.value.status == 404
    with pytest.raises(ValueError):
        client.list_messages(BOT, "", "wt")


def test_constructor_validates_settings():
    with pytest.raises(ValueError):
        ChatCaptainClient("ftp://example.com")
    with pytest.raises(ValueError):
        ChatCaptainClient("http://example.com", deadline=0)


# --- faults -> typed errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"error_status": 500}, UpstreamUnavailable),
        ({"error_status": 503}, UpstreamUnavailable),
        ({"reset_rate": 1}, UpstreamUnavailable),
        ({"malformed_rate": 1}, ContractViolation),
        ({"schema_violation_rate": 1}, ContractViolation),
        ({"error_body_rate": 1}, UpstreamRejected),
        ({"error_status": 400}, UpstreamRejected),
    ],
)
@pytest.mark.parametrize("operation", ["create_contact", "create_conversation",
                                       "list_messages", "send_message"])
def test_fault_becomes_typed_error(client, sandbox, operation, fault, expected):
    visitor = Visitor(client)
    calls = {
        "create_contact": lambda: client.create_contact(BOT, contact_request()),
        "create_conversation": lambda: client.create_conversation(
            BOT, conversation_request(visitor.token)),
        "list_messages": lambda: client.list_messages(BOT, visitor.conversation_id,
                                                      visitor.token),
        "send_message": lambda: client.send_message(BOT, visitor.conversation_id,
                                                    visitor.token, text="hi"),
    }
    faults(sandbox, operations=[operation], **fault)
    with pytest.raises(expected) as info:
        calls[operation]()
    assert type(info.value) is expected  # not a subclass such as UpstreamTimeout
    assert info.value.operation == operation
    if expected is UpstreamRejected and "error_body_rate" in fault:
        assert info.value.status in (200, 201) and info.value.error == "Injected error."
    if expected is ContractViolation:
        # A short reason, never the payload's values.
        assert "12345" not in str(info.value) and "truncated" not in str(info.value)


@pytest.mark.parametrize("operation", ["create_contact", "list_messages"])
def test_latency_beyond_deadline_times_out_within_deadline(client, sandbox, operation):
    visitor = Visitor(client)
    faults(sandbox, latency_ms=3000, operations=[operation])
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as info:
        if operation == "list_messages":
            client.list_messages(BOT, visitor.conversation_id, visitor.token)
        else:
            client.create_contact(BOT, contact_request())
    elapsed = time.monotonic() - started
    assert elapsed <= DEADLINE + MARGIN
    assert info.value.kind == "timeout" and isinstance(info.value, UpstreamUnavailable)


def test_unreachable_upstream_is_unavailable_not_timeout():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more: connections are refused at once.
    with make_client(f"http://127.0.0.1:{port}") as c, pytest.raises(UpstreamError) as info:
        c.list_messages(BOT, "cv", "wt")
    assert type(info.value) is UpstreamUnavailable


def test_a_probe_is_one_attempt_whose_answer_is_its_status(client, sandbox):
    before = stats(sandbox).get("list_messages", 0)
    # Any answer is a status, a refusal included (no token: the sandbox refuses).
    assert 400 <= client.probe(BOT) < 500
    faults(sandbox, error_status=503, operations=["list_messages"])
    assert client.probe(BOT) == 503  # not retried as a visitor's list would be
    assert stats(sandbox).get("list_messages", 0) - before <= 2
    faults(sandbox, latency_ms=3000, operations=["list_messages"])
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        client.probe(BOT, deadline=0.3)
    assert time.monotonic() - started <= 0.3 + MARGIN


# --- retry policy -----------------------------------------------------------------------


def test_get_is_retried_through_transient_503s(client, sandbox):
    visitor = Visitor(client)
    faults(sandbox, error_status=503, times=2, operations=["list_messages"])
    assert client.list_messages(BOT, visitor.conversation_id, visitor.token).messages
    assert stats(sandbox)["list_messages"] == 3


def test_get_is_retried_after_a_reset(client, sandbox):
    visitor = Visitor(client)
    faults(sandbox, reset_rate=1, times=1, operations=["list_messages"])
    assert client.list_messages(BOT, visitor.conversation_id, visitor.token).messages
    assert stats(sandbox)["list_messages"] == 2


def test_get_gives_up_after_its_retries(client, sandbox):
    visitor = Visitor(client)
    faults(sandbox, error_status=502, operations=["list_messages"])
    with pytest.raises(UpstreamUnavailable) as info:
        client.list_messages(BOT, visitor.conversation_id, visitor.token)
    assert info.value.status == 502
    assert stats(sandbox)["list_messages"] == 3  # one try plus get_retries=2


@pytest.mark.parametrize("fault", [{"error_status": 503}, {"reset_rate": 1},
                                   {"error_status": 502}])
@pytest.mark.parametrize("operation", ["create_contact", "create_conversation",
                                       "send_message"])
def test_post_is_never_resent(client, sandbox, fault, operation):
    visitor = Visitor(client)
    before = stats(sandbox)[operation]
    faults(sandbox, operations=[operation], **fault)
    with pytest.raises(UpstreamUnavailable):
        if operation == "create_contact":
            client.create_contact(BOT, contact_request())
        elif operation == "create_conversation":
            client.create_conversation(BOT, conversation_request(visitor.token))
        else:
            client.send_message(BOT, visitor.conversation_id, visitor.token, text="once")
    assert stats(sandbox)[operation] == before + 1


def test_deadline_bounds_retries_and_backoff(sandbox):
    # Each attempt is slow and fails: without the deadline three attempts and two
    # backoffs would take about 3 * 0.5 + 0.5 + 1.0 s.
    with make_client(sandbox.url, deadline=1.0, backoff=0.5) as c:
        visitor = Visitor(c)
        faults(sandbox, latency_ms=500, error_status=503, operations=["list_messages"])
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            c.list_messages(BOT, visitor.conversation_id, visitor.token)
        # Under 2 s proves the bound (3 s without it) with room for a busy machine.
        assert time.monotonic() - started < 2.0


def test_retry_after_beyond_the_deadline_gives_up_at_once():
    hits: list[bytes] = []

    def answer(conn: socket.socket, request: bytes) -> None:
        hits.append(request)
        conn.sendall(http_response("503 Service Unavailable", b'{"error": "busy"}',
                                   "Retry-After: 30\r\n"))

    with raw_server(answer) as url, make_client(url) as c:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as info:
            c.list_messages(BOT, "cv", "wt")
        assert time.monotonic() - started < 0.5
    assert info.value.status == 503 and len(hits) == 1


def test_slow_drip_body_cannot_outlast_the_deadline():
    def drip(conn: socket.socket, request: bytes) -> None:
        body = b'{"messages": []}' + b" " * 100
        conn.sendall(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode())
        for byte in body:
            conn.sendall(bytes([byte]))
            time.sleep(0.1)  # well under the read timeout: only the deadline can stop it

    with raw_server(drip) as url, make_client(url) as c:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            c.list_messages(BOT, "cv", "wt")
        assert time.monotonic() - started <= DEADLINE + MARGIN


def test_redirects_are_not_followed():
    def redirect(conn: socket.socket, request: bytes) -> None:
        conn.sendall(http_response("302 Found", b"", "Location: http://elsewhere.invalid/\r\n"))

    with raw_server(redirect) as url, make_client(url) as c, \
            pytest.raises(ContractViolation) as info:
        c.list_messages(BOT, "cv", "wt")
    assert info.value.status == 302


# --- widget tokens ----------------------------------------------------------------------


def test_expired_token_is_renewed_by_create_conversation(client, sandbox):
    visitor = Visitor(client)
    advance(sandbox, 3601)
    with pytest.raises(TokenExpired) as info:
        client.list_messages(BOT, visitor.conversation_id, visitor.token)
    assert info.value.status == 401 and info.value.kind == "token_expired"

    renewed = client.create_conversation(BOT, conversation_request(visitor.token))
    assert renewed.newWebToken and renewed.newWebToken != visitor.token
    # The token belongs to the contact: it opens the OLD conversation too.
    old = client.list_messages(BOT, visitor.conversation_id, renewed.newWebToken)
    assert old.messages
    new = client.list_messages(BOT, renewed.conversation.id, renewed.newWebToken)
    assert new.messages


def test_another_visitors_token_is_refused(client):
    alice, bob = Visitor(client), Visitor(client)
    with pytest.raises(TokenInvalid) as info:
        client.list_messages(BOT, alice.conversation_id, bob.token)
    assert type(info.value) is TokenInvalid and info.value.status == 403
    assert info.value.kind == "token_invalid"
    with pytest.raises(TokenInvalid):
        client.send_message(BOT, alice.conversation_id, bob.token, text="intrusion")


def test_unknown_token_is_invalid_and_wrong_channel_token_is_rejected(client):
    visitor = Visitor(client)
    with pytest.raises(TokenInvalid) as info:
        client.list_messages(BOT, visitor.conversation_id, "wt_made_up")
    assert info.value.status == 401 and not isinstance(info.value, TokenExpired)
    with pytest.raises(UpstreamRejected) as info:
        client.create_contact(BOT, contact_request("wrong-channel-token"))
    assert type(info.value) is UpstreamRejected and info.value.status == 401


def test_status_heuristics():
    answer = {"status": "200 OK", "body": b""}

    def canned(conn: socket.socket, request: bytes) -> None:
        conn.sendall(http_response(answer["status"], answer["body"]))

    with raw_server(canned) as url, make_client(url) as c:

        def failure(status: str, body: bytes, token_bound: bool = True) -> UpstreamError | None:
            answer.update(status=status, body=body)
            try:
                if token_bound:
                    c.list_messages(BOT, "cv", "wt_secret")
                else:
                    c.create_contact(BOT, contact_request())
            except UpstreamError as error:
                return error
            return None

        assert type(failure("401 Unauthorized", b'{"error": "Token EXPIRED"}')) is TokenExpired
        # Only a 401 means expiry.
        assert type(failure("403 Forbidden", b'{"error": "expired"}')) is TokenInvalid
        assert type(failure("401 Unauthorized", b'{"error": "expired"}', token_bound=False)) \
            is UpstreamRejected
        assert type(failure("429 Too Many Requests", b"")) is UpstreamRejected
        assert type(failure("504 Gateway Timeout", b"<html>")) is UpstreamUnavailable
        assert failure("200 OK", b'{"messages": [], "error": ""}') is None  # empty is no error
        assert type(failure("200 OK", b'{"messages": [], "error": {"code": 1}}')) \
            is UpstreamRejected
        assert type(failure("200 OK", b"[]")) is ContractViolation
        assert type(failure("200 OK", b"")) is ContractViolation
        leaked = failure("400 Bad Request", b'{"error": "bad token wt_secret"}')
        assert "wt_secret" not in str(leaked) and "[redacted]" in str(leaked)


def test_threads_share_two_sessions_and_a_bounded_pool(sandbox):
    """A thread per request (the demo server) must not leave sessions or sockets behind."""

    def sessions() -> int:
        gc.collect()
        return sum(isinstance(o, requests.Session) for o in gc.get_objects())

    def sockets() -> int:
        return sum(os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
                   for fd in os.listdir("/proc/self/fd") if _readable(fd))

    # Timeouts a busy machine cannot reach: what is counted is sessions and sockets.
    with make_client(sandbox.url, read_timeout=10.0, deadline=15.0) as c:
        visitor = Visitor(c)
        before_sessions, before_sockets = sessions(), sockets()
        errors: list[BaseException] = []

        def poll() -> None:
            try:
                c.list_messages(BOT, visitor.conversation_id, visitor.token)
                c.send_message(BOT, visitor.conversation_id, visitor.token, text="hi")
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        for _ in range(5):  # 50 short-lived threads, ten at a time
            threads = [threading.Thread(target=poll) for _ in range(10)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
        assert errors == []
        assert sessions() == before_sessions
        # At most a pool's worth of kept-alive connections per session, each counted
        # twice: the sandbox's end of it lives in this process too.
        assert sockets() - before_sockets <= 2 * 20 * 2


def _readable(fd: str) -> bool:
    try:
        os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return True


# --- secrets ----------------------------------------------------------------------------


def test_no_secret_in_logs_or_errors(sandbox, caplog):
    from webwidget.sandbox import SandboxConfig, create_sandbox_app
    from webwidget.sandbox.server import BackgroundServer

    caplog.set_level(logging.DEBUG)
    api_key = "key-do-not-log"
    server = BackgroundServer(create_sandbox_app(SandboxConfig(api_key=api_key))).start()
    errors: list[UpstreamError] = []
    try:
        with make_client(server.url, api_key=api_key) as c:
            visitor = Visitor(c, api_key=api_key)
            for fault in ({"error_status": 503, "times": 2}, {"reset_rate": 1},
                          {"malformed_rate": 1}, {"latency_ms": 2000}):
                faults(server, operations=["list_messages", "send_message"], **fault)
                for call in (
                    lambda: c.list_messages(BOT, visitor.conversation_id, visitor.token),
                    lambda: c.send_message(BOT, visitor.conversation_id, visitor.token,
                                           text="x"),
                ):
                    try:
                        call()
                    except UpstreamError as exc:
                        errors.append(exc)
                heal(server)
            advance(server, 7200)
            try:
                c.list_messages(BOT, visitor.conversation_id, visitor.token)
            except TokenExpired as exc:
                errors.append(exc)
    finally:
        server.stop()

    assert len(errors) >= 6
    secrets = (visitor.token, api_key, CHANNEL_TOKEN, "token=")
    texts = [str(e) for e in errors] + [repr(e) for e in errors]
    # The client's own records and errors never hold a secret. urllib3's records carry
    # the URL: the app's one logging setup redacts them (test_operability); the
    # sandbox's access log (werkzeug) is the upstream's business.
    ours = [r for r in caplog.records if r.name.startswith("webwidget")]
    texts += [r.getMessage() for r in ours]
    assert any("list_messages" in r.getMessage() for r in ours)
    for text in texts:
        for secret in secrets:
            assert secret not in text
    # No chained requests exception (its text holds the URL with the token).
    assert all(e.__cause__ is None and e.__context__ is None for e in errors)


# --- long conversations: a window of the newest messages ---------------------------------


def serve_list(messages: list) -> Callable[[socket.socket, bytes], None]:
    """A handler answering every request with this message list."""
    body = json.dumps({"messages": messages}).encode()
    return lambda conn, request: conn.sendall(http_response("200 OK", body))


def test_a_window_validates_and_returns_only_the_newest_messages():
    good = [message_payload(f"m{i}", {"text": f"n{i}"}) for i in range(50)]
    # A message that breaks the contract, outside the window: it costs nothing and breaks
    # nothing (the whole list would be refused).
    broken = [{"id": "old", "sender": 7}, *good]
    with raw_server(serve_list(broken)) as url, make_client(url) as c:
        with pytest.raises(ContractViolation):
            c.list_messages(BOT, "cv", "wt")
        newest = c.list_messages(BOT, "cv", "wt", last=10).messages
        assert [m.id for m in newest] == [f"m{i}" for i in range(40, 50)]
        earlier = c.list_messages(BOT, "cv", "wt", last=10, before="m40").messages
        assert [m.id for m in earlier] == [f"m{i}" for i in range(30, 40)]
        assert c.list_messages(BOT, "cv", "wt", last=10, before="nope").messages == []


def test_a_list_may_be_larger_than_other_answers_but_not_unbounded():
    many = [message_payload(f"m{i}", {"text": "x" * 500}) for i in range(12_000)]  # ~7 MB
    with raw_server(serve_list(many)) as url:
        with make_client(url) as c:
            assert len(c.list_messages(BOT, "cv", "wt", last=200).messages) == 200
        with make_client(url, max_list_bytes=4 * 1024 * 1024) as c:
            with pytest.raises(ContractViolation, match="too large"):
                c.list_messages(BOT, "cv", "wt", last=200)
