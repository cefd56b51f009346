"""lfsreg's LFS client against servers that answer badly on purpose (issue 8, defects #10 and #11).

A tiny raw-socket HTTP server (stdlib) lets each test write exactly the bytes it wants: a
batch body of hundreds of megabytes, a body that drips one byte at a time, an error status
whose body is cut short, an error object whose ``code`` is not an integer. The client must
bound what it reads, give every request an overall deadline, and end each case in a retry or
a one-line lfsreg error, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lfsreg.errors import LfsregError, ProtocolError, RetriableError
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.cache import ObjectCache
from lfsreg.lfs.http import HttpLfsStore, HttpSettings
from lfsreg.lfs.retry import RetryPolicy

DATA = b"layer bytes " * 1000
OBJ = LfsObject(hashlib.sha256(DATA).hexdigest(), len(DATA))
Scenario = Callable[["_Handler", str, str, bytes], None]


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.connections += 1
        while True:
            line = self.rfile.readline()
            if not line:
                return
            method, path, _ = line.decode().split(" ", 2)
            length = 0
            while (h := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = h.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = self.rfile.read(length)
            self.server.log.append((method, path))
            try:
                self.server.scenario(self, method, path, body)
            except OSError:
                return
            if self.server.close_after:
                return

    def send(self, status: str, body: bytes, *, length: int | None = None, extra: str = "") -> None:
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/vnd.git-lfs+json\r\n{extra}"
        if length is not None:
            head += f"Content-Length: {length}\r\n"
        self.wfile.write(head.encode() + b"\r\n" + body)
        self.wfile.flush()

    def batch_ok(self, path: str) -> None:
        obj = {"oid": OBJ.oid, "size": OBJ.size, "actions": {"download": {"href": f"{self.server.url}/storage/{OBJ.oid}"}}}
        body = json.dumps({"objects": [obj]}).encode()
        self.send("200 OK", body, length=len(body))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.scenario = scenario
        self.log: list[tuple[str, str]] = []
        self.sent = 0
        self.connections = 0
        self.close_after = False
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def serve() -> Iterator[Callable[[Scenario], _Server]]:
    servers: list[_Server] = []

    def start(scenario: Scenario) -> _Server:
        srv = _Server(scenario)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _store(srv: _Server, tmp_path: Path, **settings: float) -> HttpLfsStore:
    policy = RetryPolicy(max_retries=2, sleep=lambda s: None)
    return HttpLfsStore(f"{srv.url}/repo.git/info/lfs", [], ObjectCache(str(tmp_path / "cache")), HttpSettings(policy=policy, **settings))


def _in_thread(call: Callable[[], None], limit: float) -> BaseException | None:
    """Run ``call``; fail the test if it has not ended within ``limit`` seconds."""
    result: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            result.append(None)
        except BaseException as exc:
            result.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    assert result, f"the client was still reading after {limit} s"
    return result[0]


def test_huge_batch_body_is_refused_without_reading_it(serve, tmp_path):
    """Defect #10: a batch response is not read whole (3 GB of it ended in MemoryError)."""

    def scenario(h: _Handler, method: str, path: str, body: bytes) -> None:
        h.send("200 OK", b"", extra="Connection: close\r\n")  # no length: the body runs to the end of the connection
        chunk = b'{"objects": [' + b" " * (1 << 20)
        for _ in range(300):  # 300 MB
            h.wfile.write(chunk)
            h.server.sent += len(chunk)
        h.server.close_after = True

    srv = serve(scenario)
    store = _store(srv, tmp_path)
    err = _in_thread(lambda: store.fetch([OBJ]), 60)
    assert isinstance(err, ProtocolError) and "longer than" in str(err)
    assert srv.sent < 64 << 20, f"the server got to send {srv.sent} bytes"


def test_declared_huge_batch_body_is_refused_at_once(serve, tmp_path):
    def scenario(h: _Handler, method: str, path: str, body: bytes) -> None:
        h.send("200 OK", b"{", length=3 << 30)
        h.server.close_after = True

    srv = serve(scenario)
    err = _in_thread(lambda: _store(srv, tmp_path).fetch([OBJ]), 30)
    assert isinstance(err, ProtocolError) and str(3 << 30) in str(err)


def test_dripping_batch_body_hits_the_deadline_and_is_retried(serve, tmp_path):
    """Defect #10: one byte every 0.2 s never tripped the per-read timeout; the deadline does."""

    def scenario(h: _Handler, method: str, path: str, body: bytes) -> None:
        payload = b" " * 10_000
        h.send("200 OK", b"", length=len(payload))
        for i in range(len(payload)):
            h.wfile.write(payload[i : i + 1])
            h.wfile.flush()
            time.sleep(0.2)

    srv = serve(scenario)
    store = _store(srv, tmp_path, timeout=10, deadline=1.5)
    start = time.monotonic()
    err = _in_thread(lambda: store.fetch([OBJ]), 40)
    assert isinstance(err, RetriableError) and "stalled" in str(err)
    assert len([e for e in srv.log if "batch" in e[1]]) == 3  # the first try and two retries
    assert time.monotonic() - start < 20


def test_dripping_download_hits_the_deadline(serve, tmp_path):
    def scenario(h: _Handler, method: str, path: str, body: bytes) -> None:
        if "batch" in path:
            h.batch_ok(path)
            return
        h.send("200 OK", b"", length=OBJ.size)
        for i in range(OBJ.size):
            h.wfile.write(DATA[i : i + 1])
            h.wfile.flush()
            time.sleep(0.2)

    srv = serve(scenario)
    store = _store(srv, tmp_path, timeout=10, deadline=1.0, min_rate=1 << 30)
    err = _in_thread(lambda: store.fetch([OBJ]), 40)
    assert isinstance(err, RetriableError) and "stalled" in str(err)


def test_error_object_with_a_non_integer_code_is_one_line(serve, tmp_path):
    """Defect #11: ``"code": "x"`` in a batch error object ended in 'internal error'."""

    def scenario(h: _Handler, method: str, path: str, body: bytes) -> None:
        obj = {"oid": OBJ.oid, "size": OBJ.size, "error": {"code": "not found", "message": "gone"}}
        out = json.dumps({"objects": [obj]}).encode()
        h.send("200 OK", out, length=len(out))

    srv = serve(scenario)
    with pytest.raises(ProtocolError) as info:
        _store(srv, tmp_path).fetch([OBJ])
    assert "code must be an integer" in str(info.value) and "\n" not in str(info.value)


def test_error_status_with_a_cut_error_body_is_retried(serve, tmp_path):
    """Defect #11: a 503 whose error body was cut escaped as urllib3's ProtocolError ('internal error')."""

    def scenario(h: _Handler, method: str, path: str, body: bytes) -> None:
        if "batch" in path:
            h.batch_ok(path)
            return
        if len([e for e in h.server.log if "storage" in e[1]]) == 1:
            h.send("503 Service Unavailable", b'{"message": "back in', length=4000)
            h.server.close_after = True
            raise OSError("cut")  # end this connection here
        h.send("200 OK", DATA, length=OBJ.size)

    srv = serve(scenario)
    store = _store(srv, tmp_path)
    store.fetch([OBJ])
    with store.open(OBJ) as f:
        assert f.read() == DATA
    assert [p for _, p in srv.log].count(f"/storage/{OBJ.oid}") == 2


def test_error_status_with_a_cut_error_body_gives_one_line_when_retries_run_out(serve, tmp_path):
    def scenario(h: _Handler, method: str, path: str, body: bytes) -> None:
        if "batch" in path:
            h.batch_ok(path)
            return
        h.send("502 Bad Gateway", b'{"mess', length=4000)
        raise OSError("cut")

    srv = serve(scenario)
    with pytest.raises(RetriableError) as info:
        _store(srv, tmp_path).fetch([OBJ])
    assert info.value.status == 502 and "\n" not in str(info.value)
    assert isinstance(info.value, LfsregError)


def test_cut_connection_on_the_batch_call_is_retried(serve, tmp_path):
    calls = []

    def scenario(h: _Handler, method: str, path: str, body: bytes) -> None:
        if "batch" in path:
            calls.append(path)
            if len(calls) == 1:
                h.send("200 OK", b'{"objects": [', length=500)
                raise OSError("cut")
            h.batch_ok(path)
            return
        h.send("200 OK", DATA, length=OBJ.size)

    srv = serve(scenario)
    _store(srv, tmp_path).fetch([OBJ])
    assert len(calls) == 2


def test_socket_is_closed_by_deadline_even_when_headers_are_done(serve, tmp_path):
    """The deadline's watchdog stops a reader blocked in recv (not only between reads)."""

    def scenario(h: _Handler, method: str, path: str, body: bytes) -> None:
        h.send("200 OK", b"{", length=100)
        time.sleep(8)

    srv = serve(scenario)
    store = _store(srv, tmp_path, timeout=30, deadline=1.0)
    start = time.monotonic()
    err = _in_thread(lambda: store.missing([OBJ]), 30)
    assert isinstance(err, RetriableError)
    assert time.monotonic() - start < 7


def test_connections_are_reused_and_not_cut_after_the_deadline(serve, tmp_path):
    """A normal exchange keeps its connection: the deadline's watchdog ends with the request."""

    def scenario(h: _Handler, method: str, path: str, body: bytes) -> None:
        if "batch" in path:
            h.batch_ok(path)
            return
        h.send("200 OK", DATA, length=OBJ.size)

    srv = serve(scenario)
    store = _store(srv, tmp_path, deadline=0.5)
    store.fetch([OBJ])
    time.sleep(1.0)  # past the deadline: a late watchdog would have shut the pooled connection
    os.unlink(store.cache.path(OBJ))
    store.fetch([OBJ])
    assert len(srv.log) == 4 and srv.connections == 1
