"""The HTTP side of ``lfsreg serve``: requests in, responses out, bodies streamed both ways.

A thread per connection (:class:`http.server.ThreadingHTTPServer`), HTTP/1.1 with keep-alive.
Handlers never touch the socket: they get a :class:`Request` (whose ``body`` reads at most what
the client declared, ``Content-Length`` or chunked) and return a :class:`Response` whose body is
bytes, a :class:`FileBody` (file segments sent with ``sendfile``, in bounded pieces) or an
iterator of byte strings. Memory per connection is bounded by :data:`PIECE`, whatever the size
of a blob. ``HEAD`` is answered by the ``GET`` handler with the body left out.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

from ..digest import Digest
from .errors import ApiError

log = logging.getLogger(__name__)
access_log = logging.getLogger("lfsreg.serve.access")

#: Bytes read or sent at a time: the memory a connection holds for a body.
PIECE = 1 << 20
API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")


class BodyReader:
    """The request body: at most ``Content-Length`` bytes, or the chunks of a chunked body.

    ``read(n)`` returns ``b""`` at the end; a client that stops early raises :class:`ApiError`
    (``BLOB_UPLOAD_INVALID``: the body ended before what it declared).
    """

    def __init__(self, raw: BinaryIO, length: int | None, chunked: bool) -> None:
        self._raw = raw
        self._left = length if length is not None else 0
        self._chunked = chunked
        self._chunk_left = 0
        self._done = not chunked and not self._left
        self.length = length if not chunked else None
        self.consumed = 0

    def _next_chunk(self) -> None:
        line = self._raw.readline(1024)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ApiError("BLOB_UPLOAD_INVALID", "malformed chunked request body") from None
        if size == 0:
            while self._raw.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self._done = True
        self._chunk_left = size

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (``-1``: the rest; avoid it for large bodies)."""
        if n < 0:
            return b"".join(iter(lambda: self.read(PIECE), b""))
        if self._done or n == 0:
            return b""
        if self._chunked:
            if not self._chunk_left:
                self._next_chunk()
                if self._done:
                    return b""
            data = self._raw.read(min(n, self._chunk_left))
            if not data:
                raise ApiError("BLOB_UPLOAD_INVALID", "the request body ended early")
            self._chunk_left -= len(data)
            if not self._chunk_left:
                self._raw.readline(8)  # the CRLF after a chunk
        else:
            data = self._raw.read(min(n, self._left))
            if not data:
                raise ApiError("BLOB_UPLOAD_INVALID", "the request body ended before its Content-Length")
            self._left -= len(data)
            self._done = not self._left
        self.consumed += len(data)
        return data

    @property
    def finished(self) -> bool:
        """Whether the whole body was read (the connection can carry another request)."""
        return self._done


@dataclass
class Request:
    """One request, as the router and handlers see it.

    ``params`` are the path's parts the route matched (``name``, ``reference``, ``digest``,
    ``session``); ``user`` is who authenticated (``None``: anonymous); ``base`` is
    ``scheme://host`` as the client addressed the server, for ``Location`` headers.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: BodyReader
    base: str = ""
    params: dict[str, str] = field(default_factory=dict)
    user: str | None = None

    @property
    def head(self) -> bool:
        """A ``HEAD`` request: the response's body is not sent."""
        return self.method == "HEAD"

    def arg(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class FileBody:
    """A body read from files: ``segments`` of ``(path, offset, length)``, sent in order.

    With ``digest``, the whole content is hashed as it is sent and the connection is cut
    (the client sees a short body) if it does not match: a damaged file is never passed off as
    the blob. ``on_mismatch`` is called then (e.g. to drop a cache entry), ``on_match`` when the
    bytes matched (so the files need not be hashed again); without ``digest``, the files are
    sent with ``sendfile``.
    """

    segments: list[tuple[str, int, int]]
    digest: Digest | None = None
    on_mismatch: Callable[[], None] | None = None
    on_match: Callable[[], None] | None = None

    @property
    def length(self) -> int:
        """Bytes in all segments."""
        return sum(n for _, _, n in self.segments)


Body = bytes | FileBody | Iterable[bytes]


@dataclass
class Response:
    """What a handler answers. ``length`` is required for an iterator body answered to ``HEAD``."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = b""
    length: int | None = None

    @classmethod
    def json(cls, data: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """A JSON body."""
        return cls(status, {"Content-Type": "application/json", **(headers or {})}, data)


class BodyMismatch(Exception):
    """A :class:`FileBody` did not hash to its digest while being sent; the connection is cut."""


Dispatch = Callable[[Request], Response]


class Handler(BaseHTTPRequestHandler):
    """Turns each HTTP request into a :class:`Request` for ``server.dispatch``, and its answer back."""

    protocol_version = "HTTP/1.1"
    # TCP_NODELAY on each connection: a response goes out as two writes (headers, then body), and
    # with Nagle's algorithm the body waited for the client's delayed ACK of the headers: ~40 ms
    # for every small response (measured 44 ms per manifest GET on a keep-alive connection, 0.7 ms
    # without; the OCI conformance suite ran 14 s instead of 1.3 s).
    disable_nagle_algorithm = True
    server: Server
    server_version = "lfsreg"

    def version_string(self) -> str:
        """The ``Server`` header: the base class appends a space and ``sys_version``; the name alone."""
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Nothing: :meth:`_handle` logs each request once, with its user and timing."""

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        """Every method goes through :meth:`_handle` (the router decides what a path allows)."""
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET  # noqa: N815 -- the base class's names

    def _request(self) -> Request:
        parts = urlsplit(self.path)
        length_header = self.headers.get("Content-Length")
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        length: int | None = None
        if length_header is not None and not chunked:
            if not length_header.strip().isdigit():
                raise ApiError("SIZE_INVALID", "malformed Content-Length", 400)
            length = int(length_header)
        body = BodyReader(self.rfile, length, chunked)  # type: ignore[arg-type]
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        base = f"{self.server.scheme}://{host}"
        query = parse_qs(parts.query, keep_blank_values=True)
        return Request(self.command, parts.path, query, self.headers, body, base)

    def _handle(self) -> None:
        start = time.monotonic()
        self.server.busy(+1)
        try:
            self._answer(start)
        finally:
            self.server.busy(-1)

    def _answer(self, start: float) -> None:
        request: Request | None = None
        try:
            request = self._request()
            response = self.server.dispatch(request)
        except ApiError as exc:
            response = error_response(exc)
        except Exception:  # a bug: the client gets a 500 in the spec's form, the log the traceback
            log.exception("%s %s failed", self.command, self.path)
            response = error_response(ApiError("UNKNOWN", "internal server error", 500))
        sent = self._send(response, request)
        if request is None:
            self.close_connection = True  # the request could not be read: where its body ends is unknown
        elif not request.body.finished:
            self._discard(request.body)
        access_log.info(
            '%s %s "%s %s" %d %d %.1fms',
            self.client_address[0],
            (request.user if request else None) or "-",
            self.command,
            self.path,
            response.status,
            sent,
            (time.monotonic() - start) * 1000,
        )

    def _discard(self, body: BodyReader) -> None:
        """Read what is left of a small unread body (keep-alive), else close the connection."""
        if body.length is not None and body.length - body.consumed <= PIECE:
            try:
                while body.read(PIECE):
                    pass
                return
            except (ApiError, OSError):
                pass
        self.close_connection = True

    def _send(self, response: Response, request: Request | None) -> int:
        body = response.body
        if isinstance(body, FileBody):
            length: int | None = body.length
        elif isinstance(body, (bytes, bytearray)):
            length = len(body)
        else:
            length = response.length
        head = (request is not None and request.head) or response.status in (204, 304) or response.status < 200
        self.send_response(response.status)
        self.send_header(*API_VERSION)
        for key, value in response.headers.items():
            self.send_header(key, value)
        chunked = length is None and not head
        if length is not None and "Content-Length" not in response.headers:
            self.send_header("Content-Length", str(length))
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif head and "Content-Length" not in response.headers and response.status not in (204, 304):
            self.send_header("Content-Length", "0")
        self.end_headers()
        if head:
            return 0
        try:
            if isinstance(body, FileBody):
                return self._send_files(body)
            if isinstance(body, (bytes, bytearray)):
                self.wfile.write(body)
                return len(body)
            return self._send_iter(body, chunked)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, BodyMismatch) as exc:
            log.debug("%s %s: sending stopped: %s", self.command, self.path, exc)
            self.close_connection = True
            return 0

    def _send_iter(self, body: Iterable[bytes], chunked: bool) -> int:
        sent = 0
        for piece in body:
            if not piece:
                continue
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)
            sent += len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        return sent

    def _send_files(self, body: FileBody) -> int:
        self.wfile.flush()
        hasher = hashlib.sha256() if body.digest is not None else None
        sent = 0
        for path, offset, length in body.segments:
            with open(path, "rb") as f:
                if hasher is None:
                    sent += _sendfile(self.connection, f, offset, length)
                    continue
                f.seek(offset)
                for piece in _pieces(f, length):
                    hasher.update(piece)
                    sent += len(piece)
                    if sent == body.length and hasher.hexdigest() != (body.digest.hex if body.digest else ""):
                        if body.on_mismatch is not None:
                            body.on_mismatch()
                        raise BodyMismatch(f"stored content of {body.digest} does not match its digest; connection cut")
                    self.wfile.write(piece)
        if hasher is not None and body.on_match is not None:
            body.on_match()
        return sent


def _pieces(f: BinaryIO, length: int) -> Iterator[bytes]:
    left = length
    while left:
        piece = f.read(min(PIECE, left))
        if not piece:
            raise BodyMismatch(f"{getattr(f, 'name', 'a file')} is shorter than expected")
        left -= len(piece)
        yield piece


def _sendfile(sock: socket.socket, f: BinaryIO, offset: int, length: int) -> int:
    """Send ``length`` bytes of ``f`` from ``offset`` (zero-copy where the OS can)."""
    sent = 0
    while sent < length:
        n = sock.sendfile(f, offset + sent, min(length - sent, 64 * PIECE))
        if n == 0:
            raise BodyMismatch(f"{getattr(f, 'name', 'a file')} is shorter than expected")
        sent += n
    return sent


def error_response(exc: ApiError) -> Response:
    """The spec's error form for ``exc``."""
    return Response.json(exc.body(), exc.status, exc.headers)


class Server(ThreadingHTTPServer):
    """A threaded HTTP server calling ``dispatch`` for every request."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], dispatch: Dispatch, *, scheme: str = "http", timeout: float = 300.0) -> None:
        self.dispatch = dispatch
        self.scheme = scheme
        self.connection_timeout = timeout
        self.active = 0  # requests in progress
        self.connections: set[socket.socket] = set()
        self._active_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        """Handle one connection, bounded in time; its socket is known until it ends (for :meth:`cut_idle`)."""
        request.settimeout(self.connection_timeout)  # a client that stops reading or writing frees its thread
        with self._active_lock:
            self.connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self.connections.discard(request)

    def handle_error(self, request: object, client_address: object) -> None:
        """Log what ended a connection's thread (socketserver's default prints a traceback to stderr: the library never prints).

        A client that resets or drops its connection (between keep-alive requests, or mid-request) is routine.
        """
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("%s dropped the connection: %s", client_address, exc)
            return
        log.error("connection from %s failed", client_address, exc_info=True)

    def busy(self, delta: int) -> None:
        """Count a request in progress (+1) or done (-1)."""
        with self._active_lock:
            self.active += delta

    def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for requests in progress; return how many are still running."""
        end = time.monotonic() + grace
        while self.active and time.monotonic() < end:
            time.sleep(0.05)
        return self.active

    def cut_connections(self) -> None:
        """Shut every open connection (idle keep-alive ones wait for a next request that will not come)."""
        with self._active_lock:
            open_ = list(self.connections)
        for sock in open_:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


__all__ = ["PIECE", "BodyReader", "FileBody", "Request", "Response", "Server", "error_response"]
