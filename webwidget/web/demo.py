"""Demo mode: the bundled ChatCaptain sandbox as upstream, a demo host page at `/`, and
the theme gallery at `/demo/themes` (gallery.py) with the sandbox bot's sample conversation.

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
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from flask import Blueprint, Flask, render_template

from ..chatcaptain.models import ContentDto, MessageDto
from ..sandbox import bot, create_sandbox_app
from ..sandbox.config import SandboxConfig
from ..sandbox.files import build_files
from ..sandbox.server import BackgroundServer
from ..startup_lock import startup_lock
from . import gallery

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
    # Under the lock a worker never reads the file between its creation and its first byte.
    with startup_lock(path):
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


def sample_conversation(upstream: DemoUpstream) -> list[MessageDto]:
    """A visitor asking for `all` and the sandbox bot's answer: every content kind."""
    ctx = bot.BotContext(
        persona_name="Captain", files_url=f"{upstream.url}/_sandbox/files/", files=build_files()
    )
    start = datetime.now(UTC) - timedelta(minutes=5)
    stamp = start.isoformat().replace("+00:00", "Z")
    messages = [
        MessageDto(
            id="sample_0", sender="contact", type="text", status="read", created=stamp,
            outgoing=False, content=ContentDto(text="all"), tags=[],
        )
    ]
    for number, reply in enumerate(bot.respond(ctx, "all"), 1):
        messages.append(
            MessageDto(
                id=f"sample_{number}", sender=reply.sender, type=bot.message_type(reply.content),
                persona=reply.persona, status="delivered", created=stamp, outgoing=True,
                content=reply.content, tags=[], **reply.extra,
            )
        )
    return messages


def init_app(app: Flask, upstream: DemoUpstream | None = None) -> None:
    """Serve the demo host page and, with the sandbox running, the theme gallery."""
    app.register_blueprint(bp)
    if upstream is not None:
        gallery.init_app(app, cache(lambda: sample_conversation(upstream)))
