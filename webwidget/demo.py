"""Demo mode: the bundled ChatCaptain sandbox as upstream, and a demo host page at `/`.

This is the one place where the widget starts the sandbox. Each process runs its own
sandbox server on a free loopback port, all sharing one SQLite state file in the
instance folder, so several gunicorn workers see the same conversations and no
worker ever calls itself (no self-deadlock with one sync worker).
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Flask, render_template

from .sandbox import create_sandbox_app
from .sandbox.config import SandboxConfig
from .sandbox.server import BackgroundServer

log = logging.getLogger(__name__)

bp = Blueprint("demo", __name__)


@dataclass(frozen=True)
class DemoUpstream:
    """The running sandbox and the widget ids it knows."""

    url: str
    chatbot_id: str
    channel_id: str
    channel_token: str


def start_demo_upstream(instance_path: str) -> DemoUpstream:
    """Start the sandbox for this process and return how to reach it."""
    config = SandboxConfig(state_path=str(Path(instance_path) / "sandbox.sqlite3"))
    server = BackgroundServer(create_sandbox_app(config)).start()
    bot = config.chatbots[0]
    channel = bot.channels[0]
    log.warning(
        "demo mode: no CHATCAPTAIN_BASE_URL set, running on the bundled ChatCaptain sandbox at %s",
        server.url,
    )
    return DemoUpstream(server.url, bot.id, channel.id, channel.token)


def demo_secret_key(instance_path: str) -> str:
    """A random signing key kept in the instance folder, shared by every worker."""
    path = Path(instance_path) / "demo-secret-key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


@bp.get("/")
def host_page():
    """A demo host page that embeds the widget the way a website owner would."""
    return render_template("demo/index.html")


def init_app(app: Flask) -> None:
    """Serve the demo host page."""
    app.register_blueprint(bp)
