"""Overall deadlines and size bounds for HTTP responses of LFS servers.

requests' ``timeout`` bounds each socket read, so a server that sends one byte every few
seconds never times out. :class:`Deadline` bounds a whole exchange: once it passes, the
response's socket is shut down, which wakes the reading thread with an end of stream, and
the reader reports a :class:`lfsreg.errors.RetriableError` (a stall is retried like a cut). The
process's one watchdog thread (:mod:`lfsreg.watchdog`) fires every deadline: no thread per request.
Request bodies check the deadline as they are read. :func:`read_bounded` reads a body whole
only up to a limit, so a hostile or broken server cannot make the client buffer gigabytes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any

import requests
import urllib3.exceptions

from .. import watchdog
from ..errors import ProtocolError, RetriableError

#: What reading a body may raise when the connection is cut (or shut down by a deadline).
READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError)


def stalled(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is a read or connect timeout: the peer went quiet."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, urllib3.exceptions.NewConnectionError):
            return False  # a refused connection (urllib3 files it under its connect timeouts)
        if isinstance(current, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def request_error(what: str, exc: requests.RequestException, timeout: float) -> RetriableError:
    """The error for a request that got no response: refused, timed out, or cut (all retriable).

    In lfsreg's words: the HTTP library's own text names pools and retries.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return RetriableError(f"{what}: cannot connect: no answer within {timeout:g} s")
    if stalled(exc):
        return RetriableError(f"{what}: the server sent nothing for {timeout:g} s (stalled)")
    text = str(exc)
    if "refused" in text.lower():
        return RetriableError(f"{what}: cannot connect: connection refused")
    if "NameResolution" in text or "Name or service not known" in text:
        return RetriableError(f"{what}: cannot connect: unknown host")
    return RetriableError(f"{what}: the connection was cut before the response")


def _socket_of(resp: requests.Response) -> socket.socket | None:
    """The socket a streamed response reads from (urllib3 2.x / http.client internals)."""
    raw: Any = resp.raw
    conn = getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    # A response with "Connection: close" no longer has a connection; its file still has the socket.
    fp = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
    sock = getattr(fp, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


class Deadline:
    """A time limit for one request, from creation to the last body byte.

    Use as a context manager around the request; call :meth:`watch` with the (streamed)
    response as soon as it exists, and :meth:`check` from request-body readers. After the
    block, :attr:`fired` tells whether the deadline cut the exchange; :meth:`error` is the
    error to raise then.
    """

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.end = time.monotonic() + seconds
        self.fired = False
        self._lock = threading.Lock()
        self._watch: watchdog.Watch | None = None
        self._sock: socket.socket | None = None

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.cancel()

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.end - time.monotonic()

    def error(self) -> RetriableError:
        """The error that reports the stall."""
        return RetriableError(f"{self.what}: no complete answer within {self.seconds:g} s (stalled)")

    def check(self) -> None:
        """Raise :meth:`error` if the deadline has passed (for request-body readers)."""
        if self.remaining() <= 0:
            self.fired = True
            raise self.error()

    def watch(self, resp: requests.Response) -> None:
        """Shut ``resp``'s socket down when the deadline passes (unless cancelled first)."""
        sock = _socket_of(resp)
        if sock is None:
            return
        with self._lock:
            self._sock = sock
            self._watch = watchdog.schedule(self.end, self._fire)

    def _fire(self) -> None:
        with self._lock:
            if self._sock is None:
                return
            self.fired = True
            with contextlib.suppress(OSError):
                # socket.socket's own shutdown, also for an SSLSocket: wakes a blocked recv.
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
            self._sock = None

    def cancel(self) -> None:
        """Stop watching (the exchange is over)."""
        with self._lock:
            self._sock = None
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None


def read_bounded(resp: requests.Response, limit: int, what: str, deadline: Deadline | None = None) -> bytes:
    """The whole body of ``resp`` (streamed), refusing more than ``limit`` bytes.

    Raises:
        ProtocolError: the body is longer than ``limit``.
        RetriableError: the connection was cut, or ``deadline`` passed, before the end.
    """
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ProtocolError(f"{what}: the response is {int(declared)} bytes, more than the {limit} allowed")
    parts: list[bytes] = []
    total = 0
    try:
        for chunk in resp.raw.stream(64 << 10, decode_content=True):
            total += len(chunk)
            if total > limit:
                raise ProtocolError(f"{what}: the response is longer than the {limit} bytes allowed")
            parts.append(chunk)
    except READ_ERRORS as exc:
        if deadline is not None and deadline.fired:
            raise deadline.error() from None
        if stalled(exc):
            raise RetriableError(f"{what}: the response stalled after {total} bytes") from None
        raise RetriableError(f"{what}: the connection was cut after {total} bytes of the response") from None
    if deadline is not None and deadline.fired:
        raise deadline.error()
    return b"".join(parts)
