"""A client that resets its connection to ``lfsreg serve`` is logged, not printed: the library never prints.

socketserver's default ``handle_error`` prints "Exception occurred during processing of request"
and a traceback to stderr; with the server in the same process as an ``lfsreg`` command (tests,
embedding programs) that lands in the command's output. Seen as a flaky failure of
test_docker_serve under load (a keep-alive connection reset by the client between requests).
"""

from __future__ import annotations

import logging
import socket
import struct
import time

from conftest import FIXTURES
from servehelp import serving

import lfsreg


def test_reset_connection_is_not_printed(tmp_path, capfd, caplog):
    repo = tmp_path / "reg.git"
    with lfsreg.Registry(str(repo)) as reg:
        reg.init()
        reg.push([f"oci:{FIXTURES / 'app.oci'}:1.0"], tags=["acme/app:1.0"])
    caplog.set_level(logging.DEBUG, logger="lfsreg.serve")

    def dropped() -> bool:
        return any("dropped the connection" in r.getMessage() for r in caplog.records)

    with serving(repo) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        for _ in range(10):  # a reset the server never read (timing) is tried again
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(65536)  # answered; the server now waits for the next request on this connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST, not FIN: the server's read fails with ECONNRESET
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline and not dropped():
                time.sleep(0.02)
            if dropped():
                break
    out, err = capfd.readouterr()
    assert "Traceback" not in err + out and "Exception occurred" not in err + out
    assert dropped()
