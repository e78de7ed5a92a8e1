"""The per-app sandbox state: config, store and served files, kept on the Flask app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from . import clock
from .config import SandboxConfig
from .files import SandboxFile
from .store import Store

EXTENSION_KEY = "webwidget_sandbox"


@dataclass
class SandboxState:
    """Everything a sandbox request handler needs."""

    config: SandboxConfig
    store: Store
    files: dict[str, SandboxFile]

    def now(self) -> float:
        """The sandbox clock (real time, or where it is held, plus the control API's offset)."""
        store = self.store
        offset = store.get_control("clock_offset") or 0.0
        return clock.now(offset, store.get_control("clock_held_at"))


def init_state(app: Flask, state: SandboxState) -> None:
    """Attach the state to the app."""
    app.extensions[EXTENSION_KEY] = state


def get_state() -> SandboxState:
    """The current app's sandbox state."""
    return current_app.extensions[EXTENSION_KEY]
