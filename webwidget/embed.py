"""The loader for host pages (`GET /embed.js`) and what the iframe page needs to talk to it."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, request, send_from_directory

from .settings import parse_origin
from .views import page_origin_allowed

bp = Blueprint("embed", __name__)

# Short: the URL carries no version, and a fix should reach host pages within minutes.
LOADER_MAX_AGE = 300


@bp.get("/embed.js")
def loader():
    """The loader script that host pages include with one script tag."""
    response = send_from_directory(
        current_app.static_folder, "embed.js", mimetype="text/javascript", max_age=LOADER_MAX_AGE
    )
    # Host pages on any site load it, including ones that isolate themselves with COEP.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def host_origin() -> str:
    """The embedding page's origin from the iframe URL's `page`, only if it may embed us."""
    if request.endpoint != "widget.page" or not request.view_args:
        return ""
    widget = current_app.extensions["webwidget.widgets"].get(request.view_args.get("widget"))
    page = request.args.get("page", "")
    if widget is None or not page or len(page) > 2048 or not page_origin_allowed(widget, page):
        return ""
    parts = urlsplit(page)
    return parse_origin(f"{parts.scheme}://{parts.netloc}")


@bp.app_context_processor
def embed_context() -> dict[str, str]:
    """`host_origin` for templates (empty unless allowed): widget.js trusts it for postMessage."""
    return {"host_origin": host_origin()}
