"""``lfsreg serve`` sends each answer at once: TCP_NODELAY on every connection it accepts.

A response is written as two sends (the headers, then the body). With Nagle's algorithm on, the
body waited for the client's ACK of the headers, and clients delay that ACK (~40 ms on Linux):
every small request on a keep-alive connection cost ~44 ms instead of ~1 ms, and the OCI
conformance suite ran 14 s instead of 1.3 s. Checked on the accepted socket itself, while the
connection is open, rather than by timing requests on a shared machine.
"""

from __future__ import annotations

import socket
from pathlib import Path

import requests
from servehelp import serving

import lfsreg


def test_every_accepted_connection_has_nagle_off(tmp_path: Path) -> None:
    path = tmp_path / "reg.git"
    with lfsreg.Registry(str(path)) as reg:
        reg.init()
    with serving(path) as srv, requests.Session() as session:
        for _ in range(2):  # the same keep-alive connection, asked twice
            assert session.get(f"{srv.url}/v2/", timeout=30).status_code == 200
        connections = list(srv.http.connections)
        assert len(connections) == 1, connections
        assert connections[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
