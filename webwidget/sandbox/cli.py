"""``webwidget sandbox``: run the ChatCaptain sandbox as its own server."""

from __future__ import annotations

import argparse
import logging

from werkzeug.serving import run_simple

from . import create_sandbox_app
from .config import SandboxConfig, load_config
from .server import QuietRequestHandler


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of the sandbox."""
    parser = argparse.ArgumentParser(prog="webwidget sandbox",
                                     description="Run the ChatCaptain sandbox upstream.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8081, help="TCP port")
    parser.add_argument("--config", help="a TOML or JSON SandboxConfig file")
    parser.add_argument("--state", help="SQLite file shared by several sandbox processes")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve the sandbox until interrupted."""
    args = build_parser().parse_args(argv)
    config = load_config(args.config) if args.config else SandboxConfig()
    if args.state:
        config = config.model_copy(update={"state_path": args.state})
    logging.basicConfig(level=logging.INFO)
    logging.getLogger(__name__).info("ChatCaptain sandbox on http://%s:%d", args.host, args.port)
    run_simple(
        args.host,
        args.port,
        create_sandbox_app(config),
        threaded=True,
        request_handler=QuietRequestHandler,
    )
    return 0
