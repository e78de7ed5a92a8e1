"""What reached ChatCaptain: the visitor messages the sandbox stored, to count copies."""

from __future__ import annotations

import json
import uuid


def unique(text: str) -> str:
    """`text` with a marker of its own, so its stored copies can be counted."""
    return f"{text} {uuid.uuid4().hex[:6]}"


def stored(sandbox_server, marker: str) -> list[str]:
    """The visitor texts (or chosen buttons' labels) containing `marker` that the sandbox
    stored, in order, over all conversations: what arrived, however often it was sent."""
    store = sandbox_server._server.app.extensions["webwidget_sandbox"].store
    with store.transaction() as db:
        rows = db.execute("SELECT body FROM messages ORDER BY seq").fetchall()
    texts = []
    for row in rows:
        body = json.loads(row["body"])
        content = body.get("content") or {}
        text = content.get("text") or (content.get("selectedButton") or {}).get("label") or ""
        if body.get("sender") == "user" and marker in text:
            texts.append(text)
    return texts
