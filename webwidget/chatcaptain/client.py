"""HTTP client for the ChatCaptain widget API (plus the sandbox's optional send extension).

One `ChatCaptainClient` per app. It knows nothing of Flask, sessions or templates: it
turns contract models into HTTP calls and every failure into a typed `UpstreamError`.

Retries. Only the GET (list_messages) is retried, by urllib3's `Retry` on connect
errors, read errors and 502/503/504, with exponential backoff plus jitter and
`Retry-After` honoured. POSTs go through a second session whose adapter has
`Retry(total=0)`, so a POST is sent at most once: creating a contact or a
conversation twice is worse than failing once. The client holds exactly these two
sessions, shared by every thread (their connection pools are thread-safe, and their
cookie jars accept nothing, so no state passes between visitors); each thread's call
tells the shared retry policy its own deadline through a thread-local budget.

Deadline. Every operation, retries and backoff included, ends within `deadline`
seconds (plus a few milliseconds of bookkeeping). How that is bounded:
  * each attempt gets `Timeout(connect=min(connect_timeout, left), read=read_timeout,
    total=left)` where `left` is the time still available, so one attempt cannot
    outlive the deadline through its connect or its wait for the response headers;
  * the retry policy refuses a retry (and caps a backoff or Retry-After sleep) when
    the wait would not leave time for another attempt;
  * the body is streamed with `read1` (one socket read at a time) and before every
    read the socket timeout is cut to the time left, so a slow-drip body cannot
    stretch past the deadline either.
Known gap: the response *headers* are read by http.client with one socket timeout,
so a server dripping header bytes slower than that timeout, one by one, is bounded
per byte rather than in total. Closing it needs a watchdog thread per call; a real
upstream (behind a load balancer) does not drip headers, and bodies are covered.

Secrets. The widget token travels in the `token` query parameter (the contract says
so), the API key in `x-chatcaptain-key`. Neither, nor any URL with a query, appears
in our log records or exception texts; errors are raised with no chained cause or
context, because a chained requests exception would print the URL. urllib3's own
records (request lines, retry warnings) carry the full URL: the app's one logging
setup (webwidget.ops.logs) redacts every record it writes, whichever library made it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.cookiejar import DefaultCookiePolicy
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, ValidationError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import MaxRetryError, NewConnectionError, ResponseError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

from ..cooperative import off_the_event_loop
from .errors import (
    ContractViolation,
    SendingUnsupported,
    TokenExpired,
    TokenInvalid,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .models import (
    CreateWidgetContactRequestDto,
    CreateWidgetContactResponseDto,
    CreateWidgetConversationRequestDto,
    CreateWidgetConversationResponseDto,
    ListWidgetConversationMessagesResponseDto,
    MessageDto,
    SandboxSelectedButton,
    SandboxSendMessageRequest,
)
from .window import parse_window

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# Starting an attempt with less time than this left only produces a timeout later.
_MIN_ATTEMPT_SECONDS = 0.05
# A widget payload is small; anything near this is a broken or hostile upstream.
_MAX_BODY_BYTES = 4 * 1024 * 1024
# A conversation's list grows with it (20,000 messages are about 6 MB): it may be larger,
# and only its newest messages are validated and kept (`last`).
_MAX_LIST_BYTES = 32 * 1024 * 1024
_READ_CHUNK = 64 * 1024
# Bodies this large are parsed off a gevent worker's event loop (cooperative.py): about
# 1,000 short messages; below it the hop to a thread costs more than it saves.
_PARSE_APART_BYTES = 256 * 1024
_RETRY_STATUSES = frozenset({502, 503, 504})
_USER_AGENT = "webwidget-chatcaptain-client/0.1"


class _Budget(threading.local):
    """The deadline of the call in flight on each thread (read by the shared retry policy)."""

    def __init__(self) -> None:
        self.deadline_at = float("inf")
        self.single_attempt = False

    def remaining(self) -> float:
        """Seconds left before this thread's call must end."""
        return self.deadline_at - time.monotonic()


class _DeadlineRetry(Retry):
    """urllib3 Retry that never retries or sleeps past the current call's deadline."""

    def __init__(self, *args: Any, budget: _Budget | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget or _Budget()

    def new(self, **kw: Any) -> _DeadlineRetry:
        """Copy with updated counters, keeping the budget (Retry.new drops unknown args)."""
        retry = super().new(**kw)
        retry.budget = self.budget
        return retry

    def _planned_wait(self, response: Any = None) -> float:
        if self.respect_retry_after_header and response is not None:
            retry_after = self.get_retry_after(response)
            if retry_after is not None:
                return retry_after
        return self.get_backoff_time()

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _DeadlineRetry:
        """Count the failure; give up early when the wait would leave no time to retry."""
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        left_after_wait = self.budget.remaining() - retry._planned_wait(response)
        if self.budget.single_attempt or left_after_wait < _MIN_ATTEMPT_SECONDS:
            # With raise_on_status=False urllib3 then hands back the last response;
            # for a transport error it raises with the original error as the reason.
            raise MaxRetryError(_pool, url or "", error or ResponseError("deadline")) from error
        return retry

    def sleep(self, response: Any = None) -> None:
        """Sleep the backoff or Retry-After, but never beyond the deadline."""
        wait = min(self._planned_wait(response), self.budget.remaining() - _MIN_ATTEMPT_SECONDS)
        if wait > 0:
            time.sleep(wait)


class _DeadlineTimeout(Timeout):
    """A Timeout whose every per-attempt copy is cut to the time left before the deadline."""

    def __init__(self, connect: float, read: float, deadline_at: float) -> None:
        super().__init__(connect=connect, read=read)
        self._connect_limit = connect
        self._read_limit = read
        self._deadline_at = deadline_at

    def clone(self) -> Timeout:
        """urllib3 clones the timeout for each attempt: that is where we apply the budget."""
        left = max(self._deadline_at - time.monotonic(), 0.001)
        return Timeout(connect=min(self._connect_limit, left), read=self._read_limit, total=left)


class _SendMessageResponse(BaseModel):
    """The sandbox send extension's answer: {"message": MessageDto}."""

    model_config = ConfigDict(extra="ignore")

    message: MessageDto
    error: str | None = None


class ChatCaptainClient:
    """Typed client for the ChatCaptain widget endpoints; one per app, thread-safe."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        deadline: float = 8.0,
        get_retries: int = 2,
        backoff: float = 0.2,
        pool_maxsize: int = 20,
        sending_enabled: bool = False,
        max_list_bytes: int = _MAX_LIST_BYTES,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        if min(connect_timeout, read_timeout, deadline) <= 0:
            raise ValueError("timeouts and deadline must be positive")
        self._base_url = base_url.rstrip("/")
        # Proxy settings from the environment, read once: requests would re-read the whole
        # environment on every call (about 0.7 ms of each poll's upstream call).
        self._proxies = requests.utils.get_environ_proxies(self._base_url)
        self._api_key = api_key or None
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._deadline = deadline
        self._pool_maxsize = pool_maxsize
        self._max_list_bytes = max_list_bytes
        self._sending_enabled = sending_enabled
        self._budget = _Budget()
        retries = max(0, get_retries)
        backoff = max(0.0, backoff)
        get_retry = _DeadlineRetry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=_RETRY_STATUSES,
            backoff_factor=backoff,
            backoff_jitter=backoff,
            backoff_max=deadline,
            respect_retry_after_header=True,
            raise_on_status=False,
            budget=self._budget,
        )
        self._get = self._new_session(get_retry)
        # total=0: a POST is never re-sent, not even after a connect error.
        self._post = self._new_session(Retry(total=0, raise_on_status=False))

    # -- public API -----------------------------------------------------------------

    @contextmanager
    def single_attempt(self) -> Iterator[None]:
        """Calls on this thread make one attempt, no retry: a breaker's probe asks whether
        the upstream is back, and retrying a down one only multiplies the calls it gets."""
        self._budget.single_attempt = True
        try:
            yield
        finally:
            self._budget.single_attempt = False

    @property
    def base_url(self) -> str:
        """The upstream API root (no query, no secret)."""
        return self._base_url

    @property
    def supports_sending(self) -> bool:
        """Whether send_message can work against this upstream."""
        return self._sending_enabled

    def create_contact(
        self, chatbot_id: str, request: CreateWidgetContactRequestDto
    ) -> CreateWidgetContactResponseDto:
        """Create a widget contact; the answer carries contactId and widgetToken."""
        path = f"/v1/widget/{_segment(chatbot_id)}/contact"
        return self._request(
            "create_contact",
            "POST",
            path,
            CreateWidgetContactResponseDto,
            body=request.model_dump(by_alias=True, exclude_none=True),
            secrets=(request.channelToken,),
            token_bound=False,
        )

    def create_conversation(
        self, chatbot_id: str, request: CreateWidgetConversationRequestDto
    ) -> CreateWidgetConversationResponseDto:
        """Create a conversation; a set newWebToken replaces the contact's widget token."""
        path = f"/v1/widget/{_segment(chatbot_id)}/conversations"
        return self._request(
            "create_conversation",
            "POST",
            path,
            CreateWidgetConversationResponseDto,
            body=request.model_dump(by_alias=True, exclude_none=True),
            secrets=(request.widgetToken,),
            token_bound=True,
        )

    def list_messages(
        self,
        chatbot_id: str,
        conversation_id: str,
        token: str,
        *,
        last: int | None = None,
        before: str | None = None,
    ) -> ListWidgetConversationMessagesResponseDto:
        """List a conversation's messages (retried on transient failures).

        With `last`, only the newest `last` messages (before the one with id `before`, if
        given) are parsed into objects and validated (window.py): a long conversation
        costs reading its JSON, and a bad message outside the window breaks nothing.
        """
        path = (
            f"/v1/widget/{_segment(chatbot_id)}/conversations/{_segment(conversation_id)}"
            "/messages"
        )
        return self._request(
            "list_messages",
            "GET",
            path,
            ListWidgetConversationMessagesResponseDto,
            params={"token": token},
            secrets=(token,),
            token_bound=True,
            max_bytes=self._max_list_bytes,
            parse=(lambda text: parse_window(text, last, before)) if last or before else None,
        )

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
    ) -> MessageDto:
        """Post the visitor's text or button choice (sandbox extension); sent at most once.

        `client_message_id` makes a retry idempotent: the upstream stores one message per id.
        """
        if not self._sending_enabled:
            raise SendingUnsupported()
        has_button = button_label is not None or button_value is not None
        if (text is None) == (not has_button):
            raise ValueError("pass either text or button_label/button_value")
        if has_button:
            if button_label is None or button_value is None:
                raise ValueError("a button needs both button_label and button_value")
            body = SandboxSendMessageRequest(
                selectedButton=SandboxSelectedButton(label=button_label, value=button_value),
                clientMessageId=client_message_id,
            )
        else:
            body = SandboxSendMessageRequest(text=text, clientMessageId=client_message_id)
        path = (
            f"/v1/widget/{_segment(chatbot_id)}/conversations/{_segment(conversation_id)}"
            "/messages"
        )
        answer = self._request(
            "send_message",
            "POST",
            path,
            _SendMessageResponse,
            params={"token": token},
            body=body.model_dump(by_alias=True, exclude_none=True),
            secrets=(token,),
            token_bound=True,
        )
        return answer.message

    def probe(self, chatbot_id: str, *, deadline: float = 1.0) -> int:
        """The status of one GET of a conversation's messages route without a token, sent
        once and answered within `deadline` seconds: whether the upstream is reachable and
        takes our API key (readiness, ops/health.py), changing nothing upstream.

        A transport failure raises UpstreamTimeout or UpstreamUnavailable; any answer,
        refusals included, is returned as its status (the body is not read).
        """
        path = f"/v1/widget/{_segment(chatbot_id)}/conversations/readyz/messages"
        deadline_at = time.monotonic() + deadline
        self._budget.deadline_at = deadline_at
        timeout = _DeadlineTimeout(min(self._connect_timeout, deadline), deadline, deadline_at)
        with self.single_attempt():
            response = _send(self._get, "probe", "GET", self._base_url + path,
                             params=None, body=None, timeout=timeout)
        response.close()
        return response.status_code

    def close(self) -> None:
        """Release every pooled connection; later calls open new ones."""
        self._get.close()
        self._post.close()

    def __enter__(self) -> ChatCaptainClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChatCaptainClient(base_url={self._base_url!r})"

    # -- transport --------------------------------------------------------------------

    def _new_session(self, retry: Retry) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.proxies.update(self._proxies)
        # trust_env also carried the CA bundle variables; keep honouring them.
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get(
            "CURL_CA_BUNDLE"
        ) or True
        # Shared by every visitor's calls: a cookie the upstream sets must not travel on.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self._pool_maxsize,
                              max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"Accept": "application/json", "User-Agent": _USER_AGENT})
        if self._api_key:
            session.headers["x-chatcaptain-key"] = self._api_key
        return session

    def _request(
        self,
        operation: str,
        method: str,
        path: str,
        model: type[M],
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        secrets: tuple[str | None, ...] = (),
        token_bound: bool,
        max_bytes: int = _MAX_BODY_BYTES,
        parse: Callable[[str], Any] | None = None,
    ) -> M:
        """The one way to the upstream: send, read within the deadline, interpret.

        Every failure is raised as a typed `UpstreamError`, never chained: each helper
        raises outside the `except` that caught the library's error (its text holds the
        URL, and with it the token).
        """
        started = time.monotonic()
        deadline_at = started + self._deadline
        self._budget.deadline_at = deadline_at
        status: int | None = None
        try:
            response = _send(
                self._get if method == "GET" else self._post,
                operation,
                method,
                self._base_url + path,
                params=params,
                body=body,
                timeout=_DeadlineTimeout(self._connect_timeout, self._read_timeout, deadline_at),
            )
            status = response.status_code
            # Only the box holds the body: it goes once its text is decoded (window.py).
            read = [_read_body(response, operation, deadline_at, max_bytes)]
            redact = tuple(s for s in (*secrets, self._api_key) if s)

            def finish() -> M:
                payload, not_json = _parse_body(read.pop(), parse or json.loads)
                return _interpret(operation, status, payload, not_json, model, token_bound,
                                  redact)

            # A long list's parse would hold up a gevent worker's other requests.
            big = len(read[0]) >= _PARSE_APART_BYTES
            result = off_the_event_loop(finish) if big else finish()
        except UpstreamError as exc:
            logger.warning(
                "chatcaptain %s failed: kind=%s status=%s elapsed_ms=%d",
                operation, exc.kind, status, _ms_since(started),
            )
            raise
        logger.debug("chatcaptain %s status=%s elapsed_ms=%d", operation, status,
                     _ms_since(started))
        return result


def _send(
    session: requests.Session,
    operation: str,
    method: str,
    url: str,
    *,
    params: dict[str, str] | None,
    body: dict[str, Any] | None,
    timeout: Timeout,
) -> requests.Response:
    """Send the request and receive the headers; the body is left streaming."""
    try:
        return session.request(
            method,
            url,
            params=params,
            json=body,
            # requests hands a urllib3 Timeout to urllib3 as it is (HTTPAdapter.send);
            # its stubs admit only seconds, which cannot carry the per-attempt deadline.
            timeout=timeout,  # type: ignore[arg-type]
            stream=True,
            # A redirect could carry the token to another host; the API has none.
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        failure = _transport_error(operation, exc)
    raise failure


def _segment(value: str) -> str:
    """One URL path segment, fully quoted (a '/' in an id must not change the route)."""
    if not value:
        raise ValueError("path identifiers must be non-empty")
    return quote(value, safe="")


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _is_timeout(exc: BaseException) -> bool:
    """Whether a requests/urllib3 error is, at its root, a timeout."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NewConnectionError):
            # urllib3 derives it from ConnectTimeoutError, yet it is usually a refusal.
            current = current.__cause__ or current.__context__
            continue
        if isinstance(current, requests.Timeout | Urllib3TimeoutError | TimeoutError):
            return True
        if isinstance(current, MaxRetryError):
            current = current.reason
        elif current.args and isinstance(current.args[0], BaseException):
            # requests wraps urllib3's error as its first argument.
            current = current.args[0]
        else:
            current = current.__cause__ or current.__context__
    return False


def _parse_body(raw: bytearray, parse: Callable[[str], Any]) -> tuple[Any, bool]:
    """The body's JSON (None when empty) and whether it was no JSON at all.

    The bytes are decoded as `json.loads` decodes them and let go before parsing, so a
    large list holds its text once, not its bytes beside it.
    """
    if not raw or raw.isspace():
        return None, False
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except UnicodeDecodeError:
        return None, True
    del raw
    try:
        return parse(text), False
    except ValueError:
        return None, True


def _transport_error(operation: str, exc: requests.RequestException) -> UpstreamError:
    """Map a requests failure to a typed error without keeping its text (it holds the URL)."""
    if _is_timeout(exc):
        return UpstreamTimeout("timed out", operation=operation)
    return UpstreamUnavailable(f"connection failed ({type(exc).__name__})", operation=operation)


def _read_body(
    response: requests.Response, operation: str, deadline_at: float, max_bytes: int
) -> bytearray:
    """The whole body, read one socket read at a time, never waiting past the deadline."""
    status = response.status_code
    raw = response.raw
    body = bytearray()
    try:
        while True:
            left = deadline_at - time.monotonic()
            if left <= 0:
                raise UpstreamTimeout("deadline exceeded while reading the response",
                                      operation=operation, status=status)
            sock = getattr(raw.connection, "sock", None)
            if sock is not None:
                # The read timeout applies per socket read: cut it so a drip cannot outlast us.
                sock.settimeout(left)
            chunk = raw.read1(_READ_CHUNK, decode_content=True)
            if not chunk:
                return body  # not bytes(body): a copy of a 32 MiB list is 32 MiB more
            body += chunk
            if len(body) > max_bytes:
                raise ContractViolation("response body too large", operation=operation,
                                        status=status)
    except (Urllib3HTTPError, OSError, requests.RequestException) as exc:
        if _is_timeout(exc):
            failure: UpstreamError = UpstreamTimeout(
                "timed out reading the response", operation=operation, status=status)
        else:
            failure = UpstreamUnavailable(f"response broken off ({type(exc).__name__})",
                                          operation=operation, status=status)
    finally:
        # After a complete read urllib3 has already pooled the connection; otherwise
        # this drops it, which is right for a half-read response.
        response.close()
    raise failure


def _interpret(
    operation: str,
    status: int,
    payload: Any,
    not_json: bool,
    model: type[M],
    token_bound: bool,
    secrets: tuple[str, ...],
) -> M:
    """The model for a good answer (its JSON `payload`, see `_parse_body`); for any
    other, the matching typed error is raised."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if error is not None and not isinstance(error, str):
        error = "(non-string error field)"
    error = error or ""
    for secret in secrets:  # the upstream may echo what we sent: never into our errors
        error = error.replace(secret, "[redacted]")
    error = error.strip()

    if 200 <= status < 300:
        if not_json:
            raise ContractViolation("response is not valid JSON", operation=operation,
                                    status=status)
        if not isinstance(payload, dict):
            raise ContractViolation("response is not a JSON object", operation=operation,
                                    status=status)
        if error:
            # The contract lets any body carry `error`, even with a 2xx: that is a failure.
            raise UpstreamRejected(status, error, operation=operation)
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            # Only field paths and error types: pydantic's own text would echo the values.
            where = ", ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'} ({e['type']})"
                for e in exc.errors()[:3]
            )
            reason = f"{model.__name__.lstrip('_')} invalid at {where}"
        raise ContractViolation(reason, operation=operation, status=status)
    if status in (401, 403) and token_bound:
        # The vendor documents no error codes; the sandbox says 401 "Widget token
        # expired." Heuristic: a 401 whose error mentions "expired" means expiry,
        # any other 401/403 on a token-bearing call means the token is not accepted.
        if status == 401 and "expired" in error.lower():
            raise TokenExpired(status, error, operation=operation)
        raise TokenInvalid(status, error, operation=operation)
    if 400 <= status < 500:
        raise UpstreamRejected(status, error, operation=operation)
    if status >= 500:
        raise UpstreamUnavailable("upstream server error", operation=operation, status=status)
    raise ContractViolation("unexpected status", operation=operation, status=status)
