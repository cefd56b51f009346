"""The smart-HTTP request deadline (lfsreg.git.transport.Exchange) on real sockets, at its edges.

The dripping-server tests (test_smart_http_deadline.py) show the whole path; these pin down the
two timing edges a loaded machine can hit: the deadline passing before the request's connection
exists, and the timer firing just as the exchange ends.
"""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

from lfsreg.git.transport import Exchange


def _reader_sees_end(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


def test_a_deadline_passed_before_the_connection_shuts_it_once_it_exists():
    ours, peer = socket.socketpair()
    with ours, peer:
        conn = SimpleNamespace(sock=None)  # a urllib3 connection still connecting
        exchange = Exchange(0.05)
        exchange.attach(conn)
        time.sleep(0.2)
        assert exchange.fired
        conn.sock = ours  # connected now: the deadline, long past, must still end it
        assert _reader_sees_end(ours, 2.0)
        exchange.finish()


def test_a_finished_exchange_is_left_alone_by_a_late_timer():
    ours, peer = socket.socketpair()
    with ours, peer:
        exchange = Exchange(30.0)
        exchange.attach(SimpleNamespace(sock=ours))
        exchange.finish()
        exchange._fire()  # the timer thread was already running when finish() cancelled it
        assert not exchange.fired
        peer.sendall(b"x")
        assert ours.recv(1) == b"x"  # the connection, back in the pool, still works


def test_the_deadline_shuts_a_connected_socket_and_wakes_its_reader():
    ours, peer = socket.socketpair()
    with ours, peer:
        exchange = Exchange(0.1)
        exchange.attach(SimpleNamespace(sock=ours))
        started = time.monotonic()
        assert _reader_sees_end(ours, 5.0)
        assert exchange.fired and time.monotonic() - started < 2.0
