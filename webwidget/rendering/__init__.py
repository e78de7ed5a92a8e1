"""What a message looks like: upstream messages become view models for Jinja partials.

`messages` builds the views (one entry of `KINDS` per content kind), `text` makes the
text that reaches HTML safe and formats it, `domids` gives each message a stable
element id. Nothing here talks HTTP or touches sessions.
"""

from __future__ import annotations

from .messages import (
    CONTENT_TEMPLATES,
    KINDS,
    UNKNOWN_TEMPLATE,
    MessageView,
    build_message_views,
    message_groups,
    register_template_helpers,
    stream_flags,
)

__all__ = [
    "CONTENT_TEMPLATES",
    "KINDS",
    "UNKNOWN_TEMPLATE",
    "MessageView",
    "build_message_views",
    "message_groups",
    "register_template_helpers",
    "stream_flags",
]
