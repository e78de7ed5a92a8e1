"""The widgets one deployment serves: their ChatCaptain ids, secrets and allowed origins."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

from .settings import Settings

DEFAULT_WIDGET = "default"


@dataclass(frozen=True)
class WidgetConfig:
    """One embeddable widget; `channel_token` never leaves the server."""

    id: str
    chatbot_id: str
    channel_id: str
    channel_token: SecretStr = field(repr=False)
    allowed_origins: tuple[str, ...]
    language: str = "EN"
    title: str = "Chat with us"

    def allows_origin(self, origin: str | None) -> bool:
        """Whether `origin` (scheme://host[:port]) may embed this widget."""
        return origin is not None and origin in self.allowed_origins


def widgets_from_settings(settings: Settings, *, demo=None) -> dict[str, WidgetConfig]:
    """The `default` widget from the CHATCAPTAIN_* settings, or from the demo sandbox."""
    if demo is not None:
        return {
            DEFAULT_WIDGET: WidgetConfig(
                id=DEFAULT_WIDGET,
                chatbot_id=demo.chatbot_id,
                channel_id=demo.channel_id,
                channel_token=SecretStr(demo.channel_token),
                allowed_origins=tuple(settings.WIDGET_ALLOWED_ORIGINS),
                language=settings.WIDGET_LANGUAGE,
                title=settings.WIDGET_TITLE,
            )
        }
    return {
        DEFAULT_WIDGET: WidgetConfig(
            id=DEFAULT_WIDGET,
            chatbot_id=settings.CHATCAPTAIN_CHATBOT_ID or "",
            channel_id=settings.CHATCAPTAIN_CHANNEL_ID or "",
            channel_token=settings.CHATCAPTAIN_CHANNEL_TOKEN or SecretStr(""),
            allowed_origins=tuple(settings.WIDGET_ALLOWED_ORIGINS),
            language=settings.WIDGET_LANGUAGE,
            title=settings.WIDGET_TITLE,
        )
    }
