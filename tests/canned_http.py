"""A small HTTP server on 127.0.0.1 that answers every GET and POST with one canned response.

It stands for a git host that is down, rate-limits or refuses a token, or for a web server where a
git host was expected. :attr:`CannedServer.paths` records each request's path, so a test can
count how often a client asked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

from untraced import UntracedThreadingHTTPServer, untraced


class CannedServer:
    """What :func:`canned_server` yields: the repository URL it serves and the paths it was asked for."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.paths: list[str] = []


@contextmanager
def canned_server(
    status: int, body: bytes = b"no\n", headers: Mapping[str, str] | None = None, content_type: str = "text/plain"
) -> Iterator[CannedServer]:
    """Serve ``status`` with ``body`` (and ``headers``) to every request, until the block ends."""
    answer_headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}

    class Canned(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.paths.append(self.path)
            self.send_response(status)
            for name, value in answer_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = UntracedThreadingHTTPServer(("127.0.0.1", 0), Canned)
    served = CannedServer(f"http://127.0.0.1:{server.server_address[1]}/org/images.git")
    threading.Thread(target=untraced(server.serve_forever), kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
