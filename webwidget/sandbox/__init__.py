"""A faithful ChatCaptain widget API stand-in: the upstream for the demo and the tests.

``create_sandbox_app(config)`` builds a standalone Flask app; see README.md here for the
endpoints, the sandbox-only send extension, the control API and the bot's commands.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from . import api, control
from .config import SandboxConfig
from .files import build_files
from .state import SandboxState, init_state
from .store import Store

__all__ = ["SandboxConfig", "create_sandbox_app"]


def create_sandbox_app(config: SandboxConfig | None = None) -> Flask:
    """Build the sandbox app; without a config it serves the two demo chatbots."""
    config = config or SandboxConfig()
    app = Flask(__name__)
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False  # keep the vendor's field order, easier to read
    init_state(app, SandboxState(config=config, store=Store(config.state_path),
                                 files=build_files()))
    app.register_blueprint(api.bp)
    app.register_blueprint(control.bp)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> tuple[Response, int]:
        """Every HTTP error as a JSON ``{"error": ...}`` body, like the vendor."""
        return jsonify({"error": err.description}), err.code or 500

    return app
