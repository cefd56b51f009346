"""A smart-HTTP status that asks to come back later is retried by lfsreg's loop alone.

urllib3 (inside dulwich) honours ``Retry-After`` on 413/429/503 by itself: it retried such an
answer 3 times, sleeping each time, within every one of lfsreg's own attempts, so a host asking
for 60 s was waited 4 x 60 s per attempt. The server here counts the requests it answers.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import lfsreg
from lfsreg.api import RemoteOptions
from lfsreg.errors import RetriableError
from lfsreg.lfs.retry import RetryPolicy


@pytest.mark.parametrize("status", [503, 429])
def test_a_retry_after_answer_costs_one_request_per_lfsreg_attempt(status: int) -> None:
    seen: list[str] = []

    class Busy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(status)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/org/images.git"
    registry = lfsreg.Registry(url, options=RemoteOptions(policy=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05)))
    try:
        with pytest.raises(RetriableError) as caught:
            registry.tags()
    finally:
        registry.close()
        server.shutdown()
        server.server_close()
    assert caught.value.status == status
    assert len(seen) == 3, seen  # 1 + max_retries, each one request
