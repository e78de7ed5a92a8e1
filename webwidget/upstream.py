"""The per-app ChatCaptain client: created in the factory, fetched by views."""

from __future__ import annotations

from flask import Flask, current_app

from .chatcaptain.client import ChatCaptainClient

EXTENSION = "webwidget.upstream"


def init_app(app: Flask, client: ChatCaptainClient) -> None:
    """Attach `client` to `app` and close its connection pools with the app."""
    app.extensions[EXTENSION] = client


def get_client() -> ChatCaptainClient:
    """The current app's upstream client."""
    return current_app.extensions[EXTENSION]
