"""The `webwidget` command: run the widget (demo or configured) or the sandbox alone, check
an embedding page, count, purge or migrate the stored sessions."""

from __future__ import annotations

import argparse
import logging
import sys

from werkzeug.serving import WSGIRequestHandler, make_server

from . import embed_doctor
from .sessions import admin as sessions_admin
from .settings import SettingsError, load_settings


class PlainRequestLog(WSGIRequestHandler):
    """werkzeug's request handler, logging each request line without ANSI colours (the
    app's JSON log lines would carry the escape codes)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One plain line per request: method, path, status, size."""
        line = f"{self.command} {self.path} {self.request_version}"
        printable = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in line)
        self.log("info", '"%s" %s %s', printable, code, size)


def serve(args: argparse.Namespace) -> int:
    """Run the widget on a threaded development server (gunicorn for production)."""
    from .app import create_app

    try:
        # `demo` runs on the bundled sandbox when no upstream is configured; `serve` refuses.
        app = create_app(settings=load_settings(WEBWIDGET_DEMO=True) if args.demo else None)
    except SettingsError as error:
        print(error.report(), file=sys.stderr)
        return 2
    server = make_server(args.host, args.port, app, threaded=True, request_handler=PlainRequestLog)
    logging.getLogger(__name__).info(
        "webwidget on http://%s:%s/ (open it in a browser; a development server: use gunicorn"
        " in production)",
        args.host,
        server.port,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `webwidget` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:
        from .sandbox.cli import main as sandbox_main

        return sandbox_main(argv[1:])
    parser = argparse.ArgumentParser(prog="webwidget", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("demo", "run the widget; without CHATCAPTAIN_BASE_URL it runs on the bundled sandbox"),
        ("serve", "run the widget with the current settings; CHATCAPTAIN_BASE_URL is required"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=8000)
        command.set_defaults(run=serve, demo=name == "demo")
    commands.add_parser("sandbox", help="run the ChatCaptain sandbox alone (see --help)")
    embed_doctor.add_command(commands)
    sessions_admin.add_command(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
