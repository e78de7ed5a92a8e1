"""The iframe page and its htmx fragments: welcome, conversation, polls, sending, end."""

from __future__ import annotations

import functools
import logging
import re
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale, gettext
from werkzeug.exceptions import TooManyRequests

from .. import clock, polling
from ..chatcaptain.errors import (
    SendingUnsupported,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..conversation import Chat, chat_unreachable
from ..current import current_widget, requested_widget
from ..listing import Listing
from ..ops.metrics import count_session_lost
from ..rendering import MessageView, build_message_views
from ..settings import parse_origin
from ..themes import localized
from ..widgets import WidgetConfig
from . import security
from .errors import Refused, render_error
from .i18n import N_
from .languages import choose_language
from .limits import limited
from .visitor import chat_core, visitor_chats

log = logging.getLogger(__name__)

bp = Blueprint("widget", __name__)

MAX_MESSAGE_CHARS = 2000
# The composer's id for one message (see _composer.html); anything else is ignored.
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


@bp.app_template_global()
def new_client_id() -> str:
    """A fresh id for the next message the composer sends (random, not a secret)."""
    return secrets.token_hex(12)


def is_htmx() -> bool:
    """An htmx request wants a fragment, not the page."""
    return request.headers.get("HX-Request") == "true"


def own_origin() -> str:
    """This server's origin as the browser sees it (PUBLIC_URL when set)."""
    return security.own_origin()


def page_origin_allowed(widget: WidgetConfig, url: str) -> bool:
    """Whether `url` lies on an origin that may embed `widget` (or on our own)."""
    try:
        origin = parse_origin(f"{urlsplit(url).scheme}://{urlsplit(url).netloc}")
    except ValueError:
        return False
    return origin == own_origin() or widget.allows_origin(origin)


def embedding_page_url(widget: WidgetConfig) -> str:
    """The host page's origin and path as the loader or the referrer tells it, if allowed.

    Never its query or fragment: they may hold the host's secrets (reset tokens, e-mail
    addresses), and this URL goes upstream as `originUrl`.
    """
    for candidate in (request.args.get("page"), request.referrer):
        if candidate and len(candidate) <= 2048 and page_origin_allowed(widget, candidate):
            return origin_and_path(candidate)
    return ""


def origin_and_path(url: str) -> str:
    """`url` without its query string, fragment and path parameters (`;jsessionid=...`)."""
    parts = urlsplit(url)
    # Servers put session ids in a segment's parameters (`/cart;jsessionid=...`): a secret
    # of the host page like its query, so every segment loses them.
    path = "/".join(segment.split(";", 1)[0] for segment in parts.path.split("/"))
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


# The title a widget has when its owner set none: shown in the visitor's language.
DEFAULT_TITLE = N_("Chat with us")


def widget_title(widget: WidgetConfig) -> str:
    """The widget's configured title, or the default one translated."""
    return gettext(DEFAULT_TITLE) if widget.title == DEFAULT_TITLE else widget.title


def poll_seconds() -> float:
    """The base poll interval (polling.py adapts it to how long a chat has been idle)."""
    return current_app.config["WEBWIDGET_SETTINGS"].WIDGET_POLL_SECONDS


def hold_seconds() -> float:
    """How long a held poll waits for a change (0: short polls only), see polling.py."""
    return current_app.config["WEBWIDGET_SETTINGS"].WIDGET_HOLD_SECONDS


def hold_limit() -> int:
    """How many polls this process may hold at once (WIDGET_HOLD_MAX, else by worker)."""
    configured = current_app.config["WEBWIDGET_SETTINGS"].WIDGET_HOLD_MAX
    return polling.default_hold_limit() if configured is None else configured


def page_context(widget: WidgetConfig, **extra: object) -> dict[str, object]:
    """What every view of the page needs."""
    return {
        "widget": widget.id,
        "title": localized(widget.theme.title, str(get_locale()), widget_title(widget)),
        "poll_seconds": poll_seconds(),
        "can_send": chat_core().client.supports_sending,
        "messages_shown": chat_core().messages_shown,
        "notice": None,
        **extra,
    }


def render_view(partial: str, context: Mapping[str, object], status: int = 200) -> Response:
    """The whole page, or for htmx only `partial`, from the same context."""
    template = partial if is_htmx() else "widget/page.html"
    return make_response(render_template(template, partial=partial, **context), status)


def conversation_context(
    widget: WidgetConfig, chat: Chat, listing: Listing | None = None
) -> dict[str, object]:
    """The conversation view's context, with `listing` or messages fetched from upstream."""
    core = chat_core()
    listing = listing or visitor_chats().message_listing(widget, chat)
    views = build_message_views(
        listing.messages, locale=str(get_locale()), can_send=core.client.supports_sending
    )
    core.remember(widget, chat, listing)
    return page_context(
        widget,
        messages=views,
        version=listing.version,
        **polling.active_poller(clock.now(), poll_seconds(), hold_seconds()),
    )


UPSTREAM_STATUS = {UpstreamTimeout: 504, UpstreamUnavailable: 503}


def upstream_status(error: UpstreamError) -> int:
    """The status that tells htmx (and caches) what went wrong upstream."""
    for kind, status in UPSTREAM_STATUS.items():
        if isinstance(error, kind):
            return status
    return 502


def trouble_notice(error: UpstreamError) -> str:
    """What the visitor is told: a refused chat is kept and may be left for a new one."""
    return "unreachable" if chat_unreachable(error) else "reconnecting"


def upstream_trouble(widget: WidgetConfig, error: UpstreamError, notice: str, *, update: bool):
    """The conversation with `notice` and no messages, in the status htmx needs.

    `update`: as out-of-band swaps that keep the messages on screen (a poll, an htmx
    send); otherwise as the page or its fragment.
    """
    status = upstream_status(error)
    if update:
        context = page_context(widget, messages=None, version="", notice=notice)
        return make_response(render_template("widget/_update.html", **context), status)
    context = page_context(widget, messages=[], version="", notice=notice)
    return render_view("widget/_conversation.html", context, status)


@bp.get("/w/<widget>")
def page():
    """The iframe page: the welcome view, or the visitor's conversation."""
    widget = requested_widget()
    chat = visitor_chats().current(widget)
    if chat is None:
        return render_view(
            "widget/_welcome.html",
            page_context(
                widget,
                page_url=embedding_page_url(widget),
                lang=request.args.get("lang", "")[:16],
            ),
        )
    return conversation_page(widget, chat)


def conversation_page(widget: WidgetConfig, chat: Chat):
    """The conversation (the page, or its fragment for htmx), or what went wrong.

    Loaded in the panel, the page never waits on the upstream: a cached list shows at once
    (the poller brings anything newer), and without one the frame's shell shows while
    htmx loads the conversation (`_loading.html`).
    """
    in_panel = request.headers.get("Sec-Fetch-Dest") == "iframe" and not is_htmx()
    attempt("show")
    listing = None
    if in_panel and not request.args.get("wait"):
        listing = visitor_chats().message_listing(
            widget, chat, max_age=poll_seconds(), background=True, cold_ok=True
        )
        if listing is None:
            return render_view("widget/_loading.html", page_context(widget))
    context = conversation_context(widget, chat, listing)
    return render_view("widget/_conversation.html", context)


def describe(error: UpstreamError) -> str:
    """The kind of an upstream failure, with its status when one came (never a secret)."""
    return f"{error.kind} (HTTP {error.status})" if error.status else error.kind


LOST_REASONS = {
    "ended": "the chat ended (in another tab, or by the idle timeout)",
    "expired": "the session had passed its timeout",
    "unknown": (
        "this session store never issued that handle: instances with separate SQLite files "
        "behind one address (use one Redis), or a store emptied since"
    ),
}


def session_lost(at: str) -> str:
    """Log and count a request whose handle led to no session; the reason, for the view."""
    reason = visitor_chats().lost_reason() or "ended"
    log.warning("session lost at %s: %s", at, LOST_REASONS.get(reason, reason))
    count_session_lost(current_app, reason, at)
    return reason


def kept_words(widget: WidgetConfig, *, draft: str, client_id: str | None, status: int):
    """The chat is gone but the words are not: the welcome view holds them, with one
    action that starts a new chat and sends them."""
    response = render_view(
        "widget/_welcome.html",
        page_context(
            widget,
            page_url=embedding_page_url(widget),
            lang="",
            notice="lost",
            draft=draft,
            client_id=client_id,
        ),
        status,
    )
    if is_htmx():
        # The send's own target is nothing: put the welcome where the chat was.
        response.headers["HX-Retarget"] = "#ww-main"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


@bp.post("/w/<widget>/start")
@limited("start")
def start():
    """Start a chat: create the contact and the conversation upstream; with `text`, send
    it as the first message (words kept from a chat that was lost or left)."""
    widget = requested_widget()
    chats = visitor_chats()
    draft, client_id = message_fields()
    if request.values.get("new") == "1":
        # The visitor chose a new chat over one that cannot be reached.
        chats.leave(widget)
    page_url = origin_and_path(request.form.get("page_url", "")[:2048])
    if chats.current(widget) is None:
        if page_url and not page_origin_allowed(widget, page_url):
            raise Refused(N_("This page may not start a chat with this widget."))
        origin_url = page_url or (widget.allowed_origins or (own_origin(),))[0] + "/"
        language = choose_language(
            request.form.get("lang"), request.accept_languages, widget.language
        )
        # Nothing is created upstream that no session could keep (SessionStoreUnavailable
        # answers 503 with the store's own reason in the log).
        chats.core.check_store_writable()
        attempt("start")
        chats.start(widget, origin_url=origin_url, language=language)
    chat = chats.current(widget)
    assert chat is not None  # started above, or already there
    if draft:
        attempt("send_draft")
        chats.send_text(widget, chat, draft, client_id)
    if is_htmx():
        return conversation_page(widget, chat)
    return redirect(url_for("widget.page", widget=widget.id), 303)


def message_fields() -> tuple[str, str | None]:
    """The visitor's text and its client id from the form (400 when the text is too long)."""
    text = request.form.get("text", "").strip()
    if len(text) > MAX_MESSAGE_CHARS:
        raise Refused(f"A message can have at most {MAX_MESSAGE_CHARS} characters.")
    client_id = request.form.get("client_id", "")
    return text, client_id if CLIENT_ID.fullmatch(client_id) else None


@bp.get("/w/<widget>/messages")
def messages():
    """A poll: 204 when nothing changed, else the updated message list out of band."""
    widget = requested_widget()
    chat = visitor_chats().current(widget)
    if chat is None:
        # The chat ended elsewhere (another tab, a timeout) or this store never had it:
        # 286 stops this poller; the composer stays, and a send keeps its words.
        reason = session_lost("poll")
        answer = render_template(
            "widget/_update.html", ended=True, lost=reason == "unknown", widget=widget.id
        )
        return make_response(answer, 286)
    return poll_answer(widget, chat, request.args, activity=False)


def poll_answer(
    widget: WidgetConfig, chat: Chat, values: Mapping[str, str], *, activity: bool
):
    """A poll's answer, or with `activity` an htmx send's: 204, a new poller, or the
    changes (polling.py decides), as out-of-band swaps. A held poller's request waits
    for a change (polling.hold)."""
    now, base = clock.now(), poll_seconds()
    state = polling.read_state(values, now, base)
    attempt("poll")
    answer, transport = polling.respond(
        visitor_chats(), widget, chat, state, clock=clock.now, base=base, activity=activity,
        hold=hold_seconds(), limit=hold_limit(),
    )
    if isinstance(answer, polling.Unchanged):
        return "", 204
    poller = polling.poller_context(
        interval=answer.interval, changed_at=answer.changed_at, hold=transport.hold,
        fallback=transport.fallback,
    )
    if isinstance(answer, polling.SlowerPoller):
        return render_template(
            "widget/_update.html",
            poller_only=True,
            widget=widget.id,
            version=answer.version,
            **poller,
        )
    views, delta = changed_message_views(answer)
    return render_template(
        "widget/_update.html",
        **page_context(widget),
        messages=views,
        delta=delta,
        version=answer.version,
        **poller,
    )


def changed_message_views(
    changes: polling.Changes,
) -> tuple[list[MessageView], polling.Delta[MessageView] | None]:
    """View models for the messages a page lacks or shows differently (all of them when
    there is no delta), built in one pass."""
    build = functools.partial(
        build_message_views,
        changes.messages,
        locale=str(get_locale()),
        can_send=chat_core().client.supports_sending,
    )
    if changes.delta is None:
        return build(), None
    appended, replaced = changes.delta.append, changes.delta.replace
    views = build(only=[*appended, *replaced])
    delta = polling.Delta(append=views[: len(appended)], replace=views[len(appended) :])
    return views, delta


@bp.get("/w/<widget>/earlier")
def earlier():
    """The messages before the oldest one shown ("Show earlier messages"), fresh from
    upstream; their quick replies are history, not choices."""
    widget = requested_widget()
    chats = visitor_chats()
    chat = chats.current(widget)
    before = request.args.get("before", "")
    if chat is None or not before or len(before) > 256:
        return redirect(url_for("widget.page", widget=widget.id))
    attempt("earlier")
    messages = chats.fetch_messages(widget, chat, before=before)
    views = build_message_views(messages, locale=str(get_locale()), can_send=False)
    return render_view("widget/_earlier.html", page_context(widget, messages=views))


@bp.post("/w/<widget>/send")
@limited("send")
def send():
    """Send the visitor's text or button choice, then show the updated conversation."""
    widget = requested_widget()
    text, client_id = message_fields()
    label = request.form.get("button_label", "").strip()
    value = request.form.get("button_value", "").strip()
    if len(label) > 256 or len(value) > 1024:
        raise Refused(f"A message can have at most {MAX_MESSAGE_CHARS} characters.")
    if not text and not value:
        raise Refused(N_("Type a message first."))
    chats = visitor_chats()
    chat = chats.current(widget)
    if chat is None:
        # 409: not sent, and not for a reason a retry of the same request mends.
        session_lost("send")
        return kept_words(widget, draft=text or label or value, client_id=client_id, status=409)
    attempt("send")
    if value:
        chats.send_button(widget, chat, label or value, value, client_id)
    else:
        chats.send_text(widget, chat, text, client_id)
    if is_htmx():
        # The poller's fields (`v` of the list on screen) came with the form.
        return poll_answer(widget, chat, request.form, activity=True)
    return redirect(url_for("widget.page", widget=widget.id), 303)


@bp.errorhandler(TooManyRequests)
def too_many(error: TooManyRequests):
    """A send over the limit: without script, the conversation again with the words in the
    box and their id (htmx keeps them in the page itself); anything else, the friendly 429."""
    widget = current_widget()
    chat = None
    if widget is not None and request.endpoint == "widget.send" and not is_htmx():
        chat = visitor_chats().current(widget)
    text = request.form.get("text", "").strip() if chat is not None else ""
    if widget is None or chat is None or not text or len(text) > MAX_MESSAGE_CHARS:
        return render_error(429)
    client_id = request.form.get("client_id", "")
    try:
        context = conversation_context(widget, chat)
    except UpstreamError:
        context = page_context(widget, messages=[], version="")
    kept_id = client_id if CLIENT_ID.fullmatch(client_id) else None
    context.update(notice="slow_down", draft=text, client_id=kept_id)
    return render_view("widget/_conversation.html", context, 429)


def send_failed_page(
    widget: WidgetConfig, chat: Chat, error: UpstreamError, *, draft: str,
    client_id: str | None,
):
    """The conversation again (the page, or its fragment for htmx), the words back in the
    box with their id."""
    try:
        context = conversation_context(widget, chat)
    except UpstreamError:
        context = page_context(widget, messages=[], version="")
    notice = "unreachable" if chat_unreachable(error) else "send_failed"
    context.update(notice=notice, draft=draft, client_id=client_id)
    return render_view("widget/_conversation.html", context, upstream_status(error))


# What a view asks of the upstream, and what its failure is logged as.
ACTIONS = {
    "show": "conversation unavailable",
    "start": "could not start a chat",
    "send_draft": "send failed",
    "send": "send failed",
    "poll": "poll failed",
    "earlier": "earlier messages unavailable",
    "transcript": "transcript unavailable",
}


def attempt(action: str) -> None:
    """Say what the view asks of the upstream from here on: a failure is answered as
    this action's (upstream_failed)."""
    g.upstream_action = action


def upstream_failed(error: UpstreamError) -> ResponseReturnValue:
    """Every widget view's upstream failure: logged (never a secret), answered in the
    status that tells htmx what went wrong, the chat kept and the visitor's words with it."""
    if isinstance(error, SendingUnsupported):
        return render_error(405)
    action = g.get("upstream_action", "show")
    log.warning("%s: %s", ACTIONS[action], describe(error))
    widget = requested_widget()
    if action == "transcript":
        return render_error(upstream_status(error))
    if action == "start":
        draft, client_id = message_fields()
        page_url = origin_and_path(request.form.get("page_url", "")[:2048])
        context = page_context(
            widget, page_url=page_url, lang="", notice="start_failed", draft=draft,
            client_id=client_id,
        )
        return render_view("widget/_welcome.html", context, upstream_status(error))
    chat = visitor_chats().current(widget)
    if chat is None:  # not after a failed upstream call: the chat was read before it
        return render_error(upstream_status(error))
    if action == "send_draft" or (action == "send" and not is_htmx()):
        text, client_id = message_fields()
        return send_failed_page(widget, chat, error, draft=text, client_id=client_id)
    if action == "send":
        # The words stay in the visitor's box (widget.js keeps them on a failed send).
        notice = "unreachable" if chat_unreachable(error) else "send_failed"
        return upstream_trouble(widget, error, notice, update=True)
    return upstream_trouble(widget, error, trouble_notice(error), update=action != "show")


bp.register_error_handler(UpstreamError, upstream_failed)


@bp.post("/w/<widget>/end")
def end():
    """End the chat: the session record is deleted on the server."""
    widget = requested_widget()
    visitor_chats().end(widget)
    if is_htmx():
        return render_view(
            "widget/_welcome.html", page_context(widget, page_url="", lang="", notice="ended")
        )
    return redirect(url_for("widget.page", widget=widget.id), 303)
