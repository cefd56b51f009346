"""A TCP proxy for tests that cuts or stalls a connection at a chosen point of an exchange.

It sits in front of a real server (nginx + git http-backend + giftless, sshd) on
``127.0.0.1:<free port>`` and relays bytes both ways. A :class:`Cut` rule names the point:

* ``request``: a regular expression over the client's bytes (e.g. ``rb"POST [^ ]*/objects/batch"``)
  that arms the rule when it appears; ``None`` arms it when a connection opens (SSH, whose bytes
  are encrypted, is cut by byte count alone).
* ``direction``: ``"up"`` (client to server) or ``"down"`` (server to client).
* ``after``: how many bytes of that direction pass once the rule is armed; with ``body=True``
  a downstream count starts after the response's header block (``\\r\\n\\r\\n``).
* ``stall``: seconds to hold the connection at that point before cutting it; with
  ``then_resume=True`` the bytes flow again after the stall instead.
* ``times``: how many connections the rule hits (``None``: every one), so a test can tell a
  retry that heals from a failure that persists.

Cutting shuts both sockets down (with ``SO_LINGER`` 0, so unread data turns into a reset), as a
dropped network path or a killed peer does. :attr:`CutProxy.fired` counts the rule's hits,
:attr:`CutProxy.relayed` the bytes passed per direction (to find a cut point in an exchange).
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from untraced import untraced

__all__ = ["BATCH", "RECEIVE_PACK", "REFS", "STORAGE_GET", "STORAGE_PUT", "UPLOAD_PACK", "VERIFY", "Cut", "CutProxy", "pipe"]

# The requests of a git + LFS exchange over HTTP (giftless behind nginx), as ``Cut.request`` patterns.
BATCH = rb"POST [^ ]*/info/lfs/objects/batch "
STORAGE_PUT = rb"PUT [^ ]*/info/lfs/objects/storage/"
STORAGE_GET = rb"GET [^ ]*/info/lfs/objects/storage/"
VERIFY = rb"POST [^ ]*/objects/storage/verify "
REFS = rb"GET [^ ]*/info/refs\?service=git-"
UPLOAD_PACK = rb"POST [^ ]*/git-upload-pack "
RECEIVE_PACK = rb"POST [^ ]*/git-receive-pack "


def pipe(src: socket.socket, dst: socket.socket, rewrite: Callable[[bytes], bytes] | None = None) -> None:
    """Relay ``src``'s bytes to ``dst`` (each read through ``rewrite``) until either side ends; then end both.

    The whole of a plain relay, for the tests' small proxies that need no cut rule.
    """
    try:
        while data := src.recv(65536):
            dst.sendall(rewrite(data) if rewrite else data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True)
class Cut:
    """Where and how to break connections; see the module docstring."""

    direction: Literal["up", "down"]
    after: int = 0
    request: bytes | None = None
    body: bool = False
    stall: float = 0.0
    then_resume: bool = False
    times: int | None = 1


class _Conn:
    """One proxied connection: two sockets and the state of the rule on it."""

    def __init__(self, proxy: CutProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.armed = False
        self.done = False  # the rule already acted on this connection
        self.up_seen = b""  # a tail of the client's bytes, for the request pattern
        self.count = 0  # bytes of the rule's direction since it was armed
        self.in_body = False
        self.head_tail = b""
        self.lock = threading.Lock()
        self.closed = threading.Event()

    def close(self, reset: bool) -> None:
        self.closed.set()
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                # close() alone does not end a connection that another thread is reading:
                # shutdown wakes that reader and tells the peer at once
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _arm(self, data: bytes) -> int:
        """Arm the rule if the client's bytes now match; return how many bytes of ``data`` come
        before the counting starts (all of them when nothing was armed)."""
        rule = self.proxy.rule
        if rule is None or self.armed or self.done or rule.request is None:
            return 0
        self.up_seen = (self.up_seen + data)[-65536:]
        matches = list(re.finditer(rule.request, self.up_seen))
        last = matches[-1] if matches else None
        if last is None or not self.proxy._take():
            return 0
        self.armed = True
        self.count = 0
        self.in_body = not rule.body
        self.head_tail = b""
        return max(0, len(data) - (len(self.up_seen) - last.end()))

    def relay(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        rule = self.proxy.rule
        try:
            while not self.closed.is_set():
                try:
                    data = src.recv(65536)
                except OSError:
                    break
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    break
                with self.lock:
                    free = self._arm(data) if direction == "up" else 0
                    if free:  # the bytes up to the end of the matched request pass uncounted
                        with contextlib.suppress(OSError):
                            dst.sendall(data[:free])
                    data = self._apply(rule, data[free:], direction, dst)
                if data is None:
                    return
                # Counted before they are sent: the answer to these bytes can reach the other
                # side (and a test read the count) before this thread runs again after sendall.
                self.proxy._relayed(direction, len(data))
                try:
                    dst.sendall(data)
                except OSError:
                    self.proxy._relayed(direction, -len(data))
                    break
        finally:
            if direction == "down" or self.closed.is_set():
                self.close(reset=False)

    def _apply(self, rule: Cut | None, data: bytes, direction: str, dst: socket.socket) -> bytes | None:
        """Forward what may pass; act at the cut point. ``None``: the connection is gone."""
        if rule is None or not self.armed or self.done or rule.direction != direction:
            return data
        if not self.in_body:
            buf = self.head_tail + data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.head_tail = buf[-3:]
                return data
            self.in_body = True
            head_len = end + 4 - len(self.head_tail)
            passed, data = data[:head_len], data[head_len:]
            with contextlib.suppress(OSError):
                dst.sendall(passed)
        room = rule.after - self.count
        if room > len(data):
            self.count += len(data)
            return data
        head, rest = data[: max(room, 0)], data[max(room, 0) :]
        with contextlib.suppress(OSError):
            dst.sendall(head)
        self.count = rule.after
        self.done = True
        self.proxy._fired()
        if rule.stall:
            self.closed.wait(rule.stall)
        if rule.then_resume and not self.closed.is_set():
            return rest
        self.close(reset=True)
        return None


class CutProxy:
    """Relays ``127.0.0.1:<port>`` to ``target``; breaks connections as :attr:`rule` says.

    Use it as a context manager. :attr:`rule` may be replaced between runs; :meth:`reset`
    clears the counters.
    """

    def __init__(self, target: tuple[str, int], rule: Cut | None = None) -> None:
        self.target = target
        self.rule = rule
        self._lock = threading.Lock()
        self._taken = 0
        self.fired = 0
        self.connections = 0
        self.relayed = {"up": 0, "down": 0}  # bytes passed whole, per direction (where a cut could go)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._conns: list[_Conn] = []
        self._thread = threading.Thread(target=untraced(self._serve), daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def url(self, server_url: str) -> str:
        """``server_url`` (``http://127.0.0.1:PORT/...``) pointed at the proxy instead."""
        return re.sub(r"^(\w+://(?:[^@/]*@)?127\.0\.0\.1):\d+", rf"\g<1>:{self.port}", server_url)

    def reset(self, rule: Cut | None = None) -> None:
        """A new rule (or none) and zeroed counters; open connections are dropped."""
        with self._lock:
            conns, self._conns = self._conns, []
            self.rule = rule
            self._taken = self.fired = self.connections = 0
            self.relayed = {"up": 0, "down": 0}
        for conn in conns:
            conn.close(reset=False)

    def _take(self) -> bool:
        """Whether the rule may hit one more connection (and count it)."""
        with self._lock:
            rule = self.rule
            # Counted by cuts made, not connections armed: a connection whose body ends before
            # the cut point (a small object among concurrent downloads) must not use up the rule.
            if rule is None or (rule.times is not None and self.fired >= rule.times):
                return False
            self._taken += 1
            return True

    def _fired(self) -> None:
        with self._lock:
            self.fired += 1

    def _relayed(self, direction: str, n: int) -> None:
        with self._lock:
            self.relayed[direction] += n

    def __enter__(self) -> CutProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        # Wake the accept() at once (it would see the stop only at its next 0.2 s timeout: a
        # wait at every exit, and some tests make dozens of proxies).
        with contextlib.suppress(OSError):
            socket.create_connection(self._listener.getsockname(), timeout=1).close()
        self._thread.join(timeout=5)
        self._listener.close()
        self.reset()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._stop.is_set():  # the wake-up call of __exit__ (or a late client): not relayed
                client.close()
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            conn = _Conn(self, client, server)
            with self._lock:
                self._conns.append(conn)
                self.connections += 1
                rule = self.rule
            if rule is not None and rule.request is None and self._take():
                conn.armed, conn.in_body = True, True
            for src, dst, direction in ((client, server, "up"), (server, client, "down")):
                threading.Thread(target=untraced(conn.relay), args=(src, dst, direction), daemon=True).start()


def wait_until(predicate, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
