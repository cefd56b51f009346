"""A smart-HTTP answer dripped a byte at a time is bounded by the overall deadline (LFSREG_DEADLINE).

Issue 8: the git side had only a per-read timeout, so a server sending one byte every half
second (each read well within the timeout) held a pull or push for as long as it liked; the
LFS side already had an overall deadline per request. The drip proxy below sits in front of
the real nginx + git http-backend and drips the answers; it stops dripping after ``DRIP_FOR``
seconds (so the old code finishes, late, instead of hanging the suite). Now each request gets
the deadline: a retry, then one line saying the answer was incomplete within it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import assert_error, assert_ok, fixture, run_cli
from cutproxy import Cut, CutProxy
from gitenv import cli_env

pytestmark = pytest.mark.interop

BASE = "docker-archive:" + str(fixture("base.docker.tar"))
APP = "docker-archive:" + str(fixture("app.docker.tar"))
DRIP_EVERY = 0.4  # seconds between dripped bytes: far inside the per-read timeout
DRIP_FOR = 15.0  # seconds a connection is dripped before the rest flows at once
DEADLINE = 2.0
RECEIVE_PACK = rb"POST [^ ]*/git-receive-pack "
UPLOAD_PACK = rb"POST [^ ]*/git-upload-pack "


class DripProxy:
    """Relays ``127.0.0.1:<port>`` to ``target``; drips the answers on connections whose request matches ``request``.

    ``request`` is a regular expression over the client's bytes (``None``: every connection).
    :attr:`dripped` counts the connections dripped.
    """

    def __init__(self, target: tuple[str, int], request: bytes | None = None) -> None:
        self.target = target
        self.request = request
        self.dripped = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, server_url: str) -> str:
        port = self._listener.getsockname()[1]
        return re.sub(r"^(\w+://(?:[^@/]*@)?127\.0\.0\.1):\d+", rf"\g<1>:{port}", server_url)

    def __enter__(self) -> DripProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(self.target, timeout=10)
            server.settimeout(None)
            client.settimeout(None)
            self._socks += [client, server]
            armed = threading.Event()
            threading.Thread(target=self._up, args=(client, server, armed), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, armed), daemon=True).start()

    def _up(self, src: socket.socket, dst: socket.socket, armed: threading.Event) -> None:
        seen = b""
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                seen = (seen + data)[-65536:]
                if not armed.is_set() and (self.request is None or re.search(self.request, seen)):
                    armed.set()
                    with self._lock:
                        self.dripped += 1
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _down(self, src: socket.socket, dst: socket.socket, armed: threading.Event) -> None:
        started: float | None = None
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if armed.is_set():
                    started = started or time.monotonic()
                    while data and time.monotonic() - started < DRIP_FOR and not self._stop.is_set():
                        dst.sendall(data[:1])
                        data = data[1:]
                        time.sleep(DRIP_EVERY)
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _env(tmp_path: Path, server, **extra: str) -> dict[str, str]:
    return cli_env(tmp_path, server, **extra)


def _main(repo) -> str | None:
    ref = repo.path / "refs" / "heads" / "main"
    return ref.read_text().strip() if ref.exists() else None


def test_a_dripped_answer_ends_at_the_deadline_with_one_line(git_http_server, git_http_repo, tmp_path):
    assert_ok(run_cli("push", git_http_repo.url, BASE, env=_env(tmp_path / "seed", git_http_server)))
    env = _env(tmp_path, git_http_server, LFSREG_DEADLINE=str(DEADLINE), LFSREG_RETRIES="1", LFSREG_TIMEOUT="10")
    with DripProxy(("127.0.0.1", git_http_server.port)) as proxy:
        started = time.monotonic()
        proc = run_cli("tags", proxy.url(git_http_repo.url), env=env)
        took = time.monotonic() - started
    line = assert_error(proc, 1, f"no complete answer within {DEADLINE:g} s", "the refs advertisement", "stalled", "gave up after 2")
    assert "urllib3" not in line and "Traceback" not in proc.stderr
    assert proxy.dripped == 2, "one try and one retry, each on its own connection"
    assert took < 2 * DEADLINE + 4, f"the dripped answer was waited out ({took:.1f} s), not cut at the deadline"


def test_a_dripped_answer_to_the_push_is_cut_and_the_branch_read_again(git_http_server, git_http_repo, tmp_path):
    # receive-pack moved the branch before its answer: the branch, read again, says the push landed
    assert_ok(run_cli("push", git_http_repo.url, BASE, env=_env(tmp_path / "seed", git_http_server)))
    before = _main(git_http_repo)
    env = _env(tmp_path, git_http_server, LFSREG_DEADLINE=str(DEADLINE), LFSREG_RETRIES="1", LFSREG_TIMEOUT="10")
    with DripProxy(("127.0.0.1", git_http_server.port), RECEIVE_PACK) as proxy:
        started = time.monotonic()
        assert_ok(run_cli("push", proxy.url(git_http_repo.url), APP, "--tag", "acme/drip:1.0", env=env))
        took = time.monotonic() - started
    assert proxy.dripped == 1
    assert took < DRIP_FOR, f"the dripped answer was waited out ({took:.1f} s), not cut at the deadline"
    after = _main(git_http_repo)
    assert after != before
    check = run_cli("tags", git_http_repo.url, env=_env(tmp_path / "check", git_http_server))
    assert_ok(check)
    assert re.search(r"^acme/drip +1\.0 ", check.stdout, re.M), check.stdout


def test_a_pack_held_mid_body_is_cut_at_the_deadline_and_fetched_again(git_http_server, git_http_repo, tmp_path):
    # the read timeout (30 s) would wait the hold out; the deadline cuts it, the retry heals
    assert_ok(run_cli("push", git_http_repo.url, BASE, env=_env(tmp_path / "seed", git_http_server)))
    env = _env(tmp_path, git_http_server, LFSREG_DEADLINE=str(DEADLINE), LFSREG_RETRIES="1", LFSREG_TIMEOUT="30")
    with CutProxy(("127.0.0.1", git_http_server.port), Cut("down", after=30, request=UPLOAD_PACK, body=True, stall=60, times=1)) as proxy:
        started = time.monotonic()
        proc = run_cli("tags", proxy.url(git_http_repo.url), env=env)
        took = time.monotonic() - started
        assert proxy.fired == 1
    assert_ok(proc)
    assert re.search(r"^acme/base +1\.0 ", proc.stdout, re.M), proc.stdout
    assert took < 20, f"the held pack was waited out ({took:.1f} s), not cut at the deadline"
