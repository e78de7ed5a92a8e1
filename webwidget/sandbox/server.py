"""Run a WSGI app on a loopback port in a background thread (demo and tests)."""

from __future__ import annotations

import threading

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

# An app may list callables here that its in-process server calls as it stops (the
# widget's held polls end at once): the sandbox knows no more of the widget than that.
STOP_HOOKS = "background_server.on_stop"


class QuietRequestHandler(WSGIRequestHandler):
    """No access log: the upstream's URLs carry widget tokens in their query strings."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing for a served request."""


class BackgroundServer:
    """A threaded werkzeug server on its own thread; port 0 picks a free port."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=QuietRequestHandler
        )
        self._app = app
        self.host = host
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"server-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        """The server's root URL, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        """Start serving; returns self so that it chains."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; the widget's held polls answer at once (their
        threads would otherwise outlive the server by a whole hold)."""
        for hook in getattr(self._app, "extensions", {}).get(STOP_HOOKS, ()):
            hook()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
