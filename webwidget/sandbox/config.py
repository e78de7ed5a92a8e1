"""Sandbox configuration: chatbots with their channels, API key, token TTL and state path."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ChannelConfig(BaseModel):
    """One widget channel of a chatbot and the token that authorises it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    token: str


class ChatbotConfig(BaseModel):
    """A chatbot known to the sandbox, with the persona its scripted bot speaks as."""

    model_config = ConfigDict(extra="forbid")

    id: str
    persona_name: str = "Captain"
    channels: list[ChannelConfig]


def default_chatbots() -> list[ChatbotConfig]:
    """The chatbots used when no config is given (matches the vendor's examples)."""
    return [
        ChatbotConfig(
            id="demo-bot",
            channels=[ChannelConfig(id="channel_abc123", token="channel_token_xyz789")],
        ),
        ChatbotConfig(
            id="second-bot",
            persona_name="First Mate",
            channels=[ChannelConfig(id="channel_second", token="channel_token_second")],
        ),
    ]


class SandboxConfig(BaseModel):
    """Everything the sandbox can be configured with; defaults give the demo setup."""

    model_config = ConfigDict(extra="forbid")

    chatbots: list[ChatbotConfig] = Field(default_factory=default_chatbots)
    # When set, every widget call must carry it in x-chatcaptain-key.
    api_key: str | None = None
    token_ttl_seconds: float = 3600
    # A SQLite file shared by several processes; None keeps state in this process.
    state_path: str | None = None
    environment: Literal["dev", "test", "prod"] = "test"

    def chatbot(self, chatbot_id: str) -> ChatbotConfig | None:
        """The chatbot with this id, or None."""
        return next((bot for bot in self.chatbots if bot.id == chatbot_id), None)


def load_config(path: str | Path) -> SandboxConfig:
    """Read a SandboxConfig from a .toml or .json file."""
    path = Path(path)
    raw = path.read_bytes()
    data = tomllib.loads(raw.decode("utf-8")) if path.suffix == ".toml" else json.loads(raw)
    return SandboxConfig.model_validate(data)
