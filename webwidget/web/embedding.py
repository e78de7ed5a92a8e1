"""The loader for host pages (`GET /embed.js`) and what the iframe page needs to talk to it."""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, jsonify, request, send_from_directory
from flask_babel import force_locale, gettext

from .. import unread
from ..chatcaptain.errors import UpstreamError
from ..clock import get_clock
from ..current import current_widget, requested_widget, widgets_of
from ..sessions.errors import SessionStoreUnavailable
from ..settings import parse_origin
from ..themes import SHADOWS
from .assets import asset_response, static_asset
from .i18n import ui_language
from .views import own_origin, page_origin_allowed
from .visitor import visitor_chats

log = logging.getLogger(__name__)

bp = Blueprint("embed", __name__)

SESSION_HEADER = "X-Widget-Session"
# Short: the URL carries no version, and a fix should reach host pages within minutes.
LOADER_MAX_AGE = 300


@bp.get("/embed.js")
def loader():
    """The loader script that host pages include with one script tag (minified, compressed)."""
    response = asset_response(static_asset("embed.js"), f"public, max-age={LOADER_MAX_AGE}")
    response.mimetype = "text/javascript"
    # Host pages on any site load it, including ones that isolate themselves with COEP.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@bp.get("/w/<widget>/cookie")
def cookie_check():
    """Whether this request's cookie alone finds the visitor's chat with `widget`.

    widget.js asks without the X-Widget-Session header before the loader keeps a handle
    in the host page's storage: only where the cookie is lost does it need to. Changes
    nothing; under /w/ it is never cached.
    """
    config = requested_widget()
    by_header = request.headers.get(SESSION_HEADER) is not None
    by_cookie = not by_header and visitor_chats().current(config) is not None
    return jsonify(cookie=by_cookie)


@bp.route("/w/<widget>/unread", methods=["GET", "OPTIONS"])
def unread_count():
    """How many bot messages came after `seen` (the newest the visitor saw, an id the
    loader kept), for the launcher's badge on a page whose frame is not open.

    The host page asks (an allowed origin, with credentials: the cookie, or the handle in
    X-Widget-Session where the cookie is lost, which needs a preflight). Read from the
    cached list only, refreshed in the background when older than
    unread.REFRESH_AFTER_SECONDS (`every` then says to ask again soon): a page view never
    waits on or calls ChatCaptain itself.
    Changes nothing; under /w/ it is never cached. `chat` false: nothing to ask about.
    """
    config = current_widget()
    origin = request.headers.get("Origin", "")
    if config is None or not origin or not config.allows_origin(origin):
        abort(404 if config is None else 403)
    if request.method == "OPTIONS":
        response = current_app.response_class(status=204)
        response.headers["Access-Control-Allow-Headers"] = SESSION_HEADER
        response.headers["Access-Control-Max-Age"] = "600"
    else:
        response = jsonify(unread_answer(config, request.args.get("seen", "")[:128]))
        response.headers["Cache-Control"] = "no-store"
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Credentials"] = "true"
    response.vary.add("Origin")
    return response


def unread_answer(config, seen: str) -> dict[str, object]:
    """The badge's count for the visitor's chat with `config`, from the cached list."""
    try:
        chats = visitor_chats()
        chat = chats.current(config)
    except SessionStoreUnavailable:
        chat = None
    if chat is None:
        return {"chat": False, "unread": 0}
    try:
        listing = chats.message_listing(
            config, chat, max_age=unread.REFRESH_AFTER_SECONDS, background=True, cold_ok=True
        )
    except UpstreamError:
        listing = None  # the badge is a hint: the frame says what is wrong when opened
    if listing is None:
        return {"chat": True, "unread": 0, "every": unread.ASK_SOON_SECONDS}
    age = get_clock()() - listing.fetched_at
    every = unread.ask_again_in(listing.messages, age)
    return {"chat": True, "unread": unread.unread_after(listing.messages, seen), "every": every}


@bp.get("/favicon.ico")
def favicon():
    """The icon browsers ask for by default on any page of ours (an SVG: they all take it)."""
    static = current_app.static_folder
    if static is None:
        abort(404)
    response = send_from_directory(
        static, "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )
    return response


def host_origin() -> str:
    """The embedding page's origin from the iframe URL's `page`, only if it may embed us."""
    if request.endpoint != "widget.page":
        return ""
    widget = current_widget()
    page = request.args.get("page", "")
    if widget is None or not page or len(page) > 2048 or not page_origin_allowed(widget, page):
        return ""
    parts = urlsplit(page)
    return parse_origin(f"{parts.scheme}://{parts.netloc}")


@bp.app_context_processor
def embed_context() -> dict[str, str]:
    """`host_origin` for templates (empty unless allowed): widget.js trusts it for postMessage."""
    return {"host_origin": host_origin()}


def launcher_strings(title: str) -> dict[str, str]:
    """The loader's words in the request's language; `{n}` stands for the unread count."""
    if title:
        return {
            "open": gettext("Open %(title)s", title=title),
            "openUnread": gettext(
                "Open %(title)s (new messages: %(count)s)", title=title, count="{n}"
            ),
            "close": gettext("Close %(title)s", title=title),
            "unread": gettext("New chat messages: %(count)s", count="{n}"),
        }
    return {
        "open": gettext("Open chat"),
        "openUnread": gettext("Open chat (new messages: %(count)s)", count="{n}"),
        "close": gettext("Close chat"),
        "unread": gettext("New chat messages: %(count)s", count="{n}"),
    }


# Not under /w/<widget>: that prefix is per visitor and never cached (security.py).
@bp.get("/embed/<widget_id>.json")
def loader_config(widget_id: str):
    """What the loader needs from the widget's theme: position, colours and its words.

    Public and the same for every visitor (no session is read), so it is cacheable; only
    the widget's allowed origins (and our own pages) may read it.
    """
    config = widgets_of().get(widget_id)
    origin = request.headers.get("Origin")
    if config is None:
        return refusal(
            404, widget_id, origin,
            f'there is no widget "{widget_id}" on {own_origin()}: check the script tag\'s '
            "data-widget (the ids are the default widget's `default` and those in WIDGETS_FILE)",
        )
    if origin and origin != own_origin() and not config.allows_origin(origin):
        return refusal(
            403, widget_id, origin,
            f'{origin} may not embed the widget "{widget_id}": add it to the widget\'s '
            "allowed origins (WIDGET_ALLOWED_ORIGINS, or allowed_origins in WIDGETS_FILE)",
        )
    lang = ui_language(request.args.get("lang")) or ui_language(config.language) or "en"
    theme = config.theme
    title = request.args.get("title", "")[:120]
    light = [theme.primary_color, theme.on_primary]
    dark = [theme.dark_primary, theme.dark_on_primary]
    colors = {"light": light, "dark": dark}
    if theme.mode != "auto":
        # A theme fixed to one palette shows that palette whatever the host's scheme.
        colors = {"light": colors[theme.mode], "dark": colors[theme.mode]}
    with force_locale(lang):
        response = jsonify(
            position=theme.position,
            colors=colors,
            panel={"radius": theme.panel_radius, "shadow": SHADOWS[theme.shadow]},
            lang=lang,
            title=title or gettext("Chat"),
            strings=launcher_strings(title),
        )
    response.headers["Cache-Control"] = f"public, max-age={LOADER_MAX_AGE}"
    response.vary.add("Origin")
    if origin and config.allows_origin(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


# A misconfigured embed asks on every page view of the host site: one log line per widget
# and origin this often, and no more than a few lines a minute for all of them together.
REFUSAL_LOG_SECONDS = 600
REFUSAL_LOG_PER_MINUTE = 10


def refusal(status: int, widget_id: str, origin: str | None, fix: str):
    """The loader's answer to an embed that cannot work: no config, only what to fix.

    The host page may read it (the loader shows no launcher and logs `fix` in the console);
    it holds nothing the page could not learn by trying, and is never cached. A 200, as
    browsers log every 4xx of a page as a second console line that names no fix; `status`
    (404 no such widget, 403 origin not allowed) is in the body and the server's log.
    """
    log_refusal(widget_id[:64], (origin or "")[:200], status)
    response = jsonify(error=fix, status=status)
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


class RefusalLog:
    """Says which embeds were refused, once per widget id and origin per `every` seconds
    and at most `per_minute` lines a minute in all (a scan of made-up ids stays quiet)."""

    def __init__(
        self, every: float = REFUSAL_LOG_SECONDS, per_minute: int = REFUSAL_LOG_PER_MINUTE
    ):
        self.every, self.per_minute = every, per_minute
        self.last: dict[tuple[str, str], float] = {}
        self.minute: list[float] = []
        self.lock = threading.Lock()

    def due(self, widget_id: str, origin: str, now: float) -> bool:
        """Whether a refusal of `widget_id` from `origin` at `now` gets a log line."""
        with self.lock:
            self.minute = [t for t in self.minute if now - t < 60]
            last = self.last.get((widget_id, origin))
            if last is not None and now - last < self.every:
                return False
            if len(self.minute) >= self.per_minute:
                return False
            if len(self.last) > 1000:
                self.last.clear()  # many ids or origins: forget them, the minute cap holds
            self.last[(widget_id, origin)] = now
            self.minute.append(now)
            return True


def log_refusal(widget_id: str, origin: str, status: int) -> None:
    """A warning naming the widget id and origin of a refused embed, rate-limited."""
    refusals = current_app.extensions.setdefault("webwidget.embed_refusals", RefusalLog())
    if refusals.due(widget_id, origin, get_clock()()):
        reason = "no such widget" if status == 404 else "origin not allowed"
        log.warning("embed refused (%s): widget %r from origin %r", reason, widget_id, origin)
