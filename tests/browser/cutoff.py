"""A connection the test can cut: a TCP forwarder in front of the widget server.

To any browser engine, `down()` is the network gone (a train tunnel, a closed laptop lid):
open connections drop and new ones are refused, so requests fail on the wire as they do
offline. `up()` brings it back. Where a browser cannot be told it is offline (Firefox over
WebDriver BiDi, WebKitGTK's WebDriver), this is the real thing below it.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import free_port


class Cutoff:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target` until `down()`, again after `up()`."""

    def __init__(self, target: int) -> None:
        self.port = free_port()
        self.target = target
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._control: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The widget as the browser reaches it (localhost: a site apart from 127.0.0.1)."""
        return f"http://localhost:{self.port}"

    def up(self) -> None:
        """Listen (again): the connection is back."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)  # so accept() notices when down() closes the listener
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and drop the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            dropped, self._open = self._open, set()
        if listener is not None:
            listener.close()
        for conn in dropped:
            _close(conn)

    def control_url(self) -> str:
        """An HTTP endpoint for a browser driver in another process: POST /down, POST /up."""
        if self._control is None:
            cutoff = self

            class Control(BaseHTTPRequestHandler):
                def do_POST(self):  # noqa: N802 (http.server's naming)
                    {"/down": cutoff.down, "/up": cutoff.up}[self.path]()
                    self.send_response(204)
                    self.end_headers()

                def log_message(self, *args):
                    pass

            self._control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
            threading.Thread(target=self._control.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._control.server_address[1]}"

    def close(self) -> None:
        """Stop forwarding and the control endpoint."""
        self.down()
        if self._control is not None:
            self._control.shutdown()
            self._control.server_close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(server)
                    return
                self._open.update((client, server))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for conn in (src, dst):
            _close(conn)
        with self._lock:
            self._open.discard(src)
            self._open.discard(dst)


def _close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()
