"""Smart-HTTP statuses become lfsreg's errors through ``error_for_status`` (issue 8, redesign 3).

A small HTTP server on 127.0.0.1 answers every git request with one status (as a git host
does when it is down, rate-limits, or refuses a token), so each mapping is seen end to end:
through the library (the exception's class, ``status`` and ``retry_after``) and the CLI (one
line, the right exit code, no traceback).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import run_cli

import lfsreg
from lfsreg.api import RemoteOptions
from lfsreg.errors import AuthenticationError, PermissionDeniedError, ProtocolError, RepositoryNotFound, RetriableError
from lfsreg.lfs.retry import RetryPolicy


class _Status(BaseHTTPRequestHandler):
    status = 503
    retry_after: str | None = None

    def do_GET(self) -> None:
        self.send_response(self.status)
        if self.retry_after is not None:
            self.send_header("Retry-After", self.retry_after)
        if self.status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
        body = b"no\n"
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[callable]:
    servers = []

    def start(status: int, retry_after: str | None = None) -> str:
        handler = type("Handler", (_Status,), {"status": status, "retry_after": retry_after})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/org/images.git"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "retry_after", "error", "retriable"),
    [
        (503, "1", RetriableError, True),
        (429, None, RetriableError, True),
        (500, None, RetriableError, True),
        (403, None, PermissionDeniedError, False),
        (404, None, RepositoryNotFound, False),
        (401, None, AuthenticationError, False),
        (418, None, ProtocolError, False),
    ],
)
def test_smart_http_status_maps_to_the_error_tree(answering, status: int, retry_after: str | None, error: type, retriable: bool) -> None:
    url = answering(status, retry_after)
    # a retriable status is retried (lfsreg.git.remote); quickly here
    registry = lfsreg.Registry(url, options=RemoteOptions(policy=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05)))
    try:
        with pytest.raises(error) as caught:
            registry.tags()
    finally:
        registry.close()
    if retriable:
        assert caught.value.status == status
        assert caught.value.retry_after == (float(retry_after) if retry_after else None)
    assert str(status) in str(caught.value) or status in (401, 404)

    proc = run_cli("tags", url, env={**os.environ, "LFSREG_RETRIES": "1"})
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("lfsreg: error:"), proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
