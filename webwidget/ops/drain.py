"""Once a worker drains, every response it starts says `Connection: close`.

gunicorn marks a response to close only when the request *begins* after SIGTERM. A
request already running when the signal came (a page waiting on ChatCaptain) answered
`keep-alive`, so its client (nginx's upstream pool, a browser) kept the connection and
sent its next request there: the worker keeps such connections only briefly while it
stops and then closes them, and a request that meets the close is a 502 at the proxy.
Closing after the response sends the next request to a fresh connection, which the
stopping worker no longer accepts: another worker or instance takes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .health import draining

WsgiApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


def close_connections_once_draining(app: WsgiApp) -> WsgiApp:
    """`app`, whose responses ask gunicorn to close their connection once draining."""

    def closing(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list, exc_info: Any = None):
            if draining():
                # gunicorn drops a Connection header set by the app (hop-by-hop, PEP 3333);
                # its own response object is what start_response is bound to.
                force_close = getattr(getattr(start_response, "__self__", None),
                                      "force_close", None)
                if force_close is not None:
                    force_close()
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return closing
