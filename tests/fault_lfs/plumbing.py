"""HTTP/1.1 plumbing of the fault server's handler: request bodies (length or chunked), responses, cuts."""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, cast

from fault_lfs.wire import CHUNK, LFS_MEDIA_TYPE, RecordedRequest

if TYPE_CHECKING:
    from fault_lfs.server import FaultLfsServer, LfsHTTPServer

_MAX_JSON_BODY = 16 * 1024 * 1024


class Plumbing(BaseHTTPRequestHandler):
    """Reads request bodies in pieces (a cut can come mid-body), records what was sent, closes on purpose."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as lfsreg serve's: no ~40 ms delayed-ACK wait before each response body
    server_version = "FaultLfs/1.0"
    timeout = 30  # idle keep-alive connections give up eventually

    rec: RecordedRequest
    _body_left: int | None  # bytes of a Content-Length body not read yet; None for chunked
    _chunked_done: bool

    @property
    def lfs(self) -> FaultLfsServer:
        return cast("LfsHTTPServer", self.server).lfs

    def setup(self) -> None:
        super().setup()
        with self.lfs._lock:
            self.lfs._connections.add(self.connection)

    def finish(self) -> None:
        with self.lfs._lock:
            self.lfs._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        """Route one request (the subclass's job)."""
        raise NotImplementedError

    def _method_is(self, method: str) -> bool:
        if self.command == method:
            return True
        self._error(405, f"{self.command} not allowed here", headers={"Allow": method})
        return False

    # -- request bodies --------------------------------------------------------------------------
    def _start_body(self) -> None:
        self._chunked_done = False
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._body_left = None
        else:
            try:
                self._body_left = max(0, int(self.headers.get("Content-Length") or 0))
            except ValueError:
                self._body_left = 0
                self.close_connection = True

    def _has_length(self) -> bool:
        return self._body_left is None or "content-length" in self.rec.headers

    def _body(self, limit: int | None = None) -> Iterator[bytes]:
        """Yield the request body (at most ``limit`` more bytes when given)."""
        budget = limit
        if self._body_left is not None:
            while self._body_left > 0 and (budget is None or budget > 0):
                want = min(self._body_left, CHUNK, budget if budget is not None else CHUNK)
                data = self.rfile.read(want)
                if not data:
                    raise ConnectionError("client closed the connection mid-body")
                self._body_left -= len(data)
                self.rec.bytes_received += len(data)
                if budget is not None:
                    budget -= len(data)
                yield data
            return
        while not self._chunked_done and (budget is None or budget > 0):
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                self._chunked_done = True
                return
            remaining = size
            while remaining:
                data = self.rfile.read(min(remaining, CHUNK))
                if not data:
                    raise ConnectionError("client closed the connection mid-body")
                remaining -= len(data)
                self.rec.bytes_received += len(data)
                if budget is not None:
                    budget -= len(data)
                yield data
            self.rfile.readline()

    def _drain(self) -> None:
        for _ in self._body():
            pass

    def _read_json_body(self) -> tuple[Any, str | None]:
        """The parsed JSON body, or ``(None, problem)``."""
        data = bytearray()
        for chunk in self._body():
            data += chunk
            if len(data) > _MAX_JSON_BODY:
                self._drain()
                return None, "request body too large"
        try:
            return json.loads(data), None
        except (ValueError, UnicodeDecodeError) as exc:
            return None, f"request body is not JSON: {exc}"

    # -- responses -------------------------------------------------------------------------------
    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.lfs._stopping.wait(seconds)

    def _send_head(self, code: int, headers: Mapping[str, str]) -> None:
        self.rec.status = code
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _write(self, data: bytes) -> None:
        self.rec.bytes_sent += len(data)
        self.wfile.write(data)

    def _send(self, code: int, body: bytes, headers: Mapping[str, str]) -> None:
        if self._body_left or (self._body_left is None and not self._chunked_done):
            self._drain()
        self._send_head(code, {**headers, "Content-Length": str(len(body))})
        self._write(body)

    def _json(self, code: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self._send(code, body, {"Content-Type": LFS_MEDIA_TYPE, **(headers or {})})

    def _error(self, code: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        self._json(code, {"message": message, "request_id": uuid.uuid4().hex[:12]}, headers)

    def _close_now(self) -> None:
        """Close the connection at once (a scripted cut)."""
        self.rec.cut = True
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
