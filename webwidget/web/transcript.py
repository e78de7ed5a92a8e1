"""The visitor's copy of the conversation: one HTML file to save, rendered on the server
from the session's chat (rendering/transcript.py says what goes in it)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, make_response, render_template
from flask_babel import format_datetime, get_locale

from .. import clock
from ..chatcaptain.errors import UpstreamError
from ..current import requested_widget
from ..rendering.transcript import transcript_entries
from .views import attempt, page_context, upstream_failed
from .visitor import visitor_chats

bp = Blueprint("transcript", __name__)
bp.register_error_handler(UpstreamError, upstream_failed)


@bp.get("/w/<widget>/transcript")
def save():
    """The conversation as an HTML file (an attachment); 404 without a chat."""
    widget = requested_widget()
    chats = visitor_chats()
    chat = chats.current(widget)
    if chat is None:
        abort(404)
    attempt("transcript")
    listing = chats.message_listing(widget, chat)
    saved = datetime.fromtimestamp(clock.now(), UTC)
    entries = transcript_entries(listing.messages, locale=str(get_locale()))
    context = page_context(widget)
    html = render_template(
        "widget/transcript.html",
        entries=entries,
        saved=format_datetime(saved, "medium"),
        **context,
    )
    response = make_response(html)
    response.headers["Content-Disposition"] = 'attachment; filename="chat-transcript.html"'
    return response
