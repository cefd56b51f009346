"""A cut, reset or refused smart-HTTP exchange is retried; a push only after the branch was read again.

Issue 8: the git side had no retry: one cut refs advertisement or pack exchange failed the
whole operation with one RetriableError line carrying urllib3's text ("HTTPConnectionPool(...):
Max retries exceeded ... Caused by ..."). Now lfsreg.git.remote retries with the LFS queue's
RetryPolicy. A fetch is simply run again. A push is re-sent only after the remote's branch is
read again: at the new commit, the lost push landed (no second push); elsewhere, another writer
moved it and the registry transaction re-applies; at the old commit, it is sent again. Once the
retries are spent the error is one line in lfsreg's words. Faults come from the cut proxy
(tests/cutproxy.py) in front of the real nginx + git http-backend + giftless.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest
from conftest import fixture
from cutproxy import RECEIVE_PACK, REFS, UPLOAD_PACK, Cut, CutProxy, pipe
from dulwich.repo import Repo
from gitenv import use_cli_env
from imageverify import verify_docker_archive

import lfsreg
from lfsreg.api import RemoteOptions
from lfsreg.errors import LfsregError, RetriableError, UnreachableError
from lfsreg.lfs.retry import RetryPolicy

pytestmark = pytest.mark.interop
BASE = "docker-archive:" + str(fixture("base.docker.tar"))
APP = "docker-archive:" + str(fixture("app.docker.tar"))
TOOL = "docker-archive:" + str(fixture("tool.docker.tar"))
RAW = ("HTTPConnectionPool", "urllib3", "Max retries", "Caused by", "IncompleteRead", "ProtocolError(", "NewConnectionError")


class Sleeps(list):
    """A RetryPolicy's sleep that records the waits (and may act between attempts)."""

    def __init__(self, between=None) -> None:
        super().__init__()
        self.between = between

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.between is not None:
            self.between(len(self))


def _policy(sleeps: Sleeps, retries: int = 3) -> RetryPolicy:
    return RetryPolicy(max_retries=retries, base_delay=0.01, max_delay=0.05, max_retry_time=60, sleep=sleeps)


@pytest.fixture
def isolated(tmp_path, monkeypatch, git_http_server):
    """In-process runs see only this test's HOME and cache, and the server's credentials."""
    use_cli_env(monkeypatch, tmp_path, git_http_server)
    return tmp_path


def _push(url: str, cache: Path, source: str, tag: str, policy: RetryPolicy | None = None) -> None:
    options = RemoteOptions(cache_dir=str(cache), policy=policy or RetryPolicy(base_delay=0.01, max_delay=0.05))
    with lfsreg.Registry(url, options=options) as reg:
        reg.push([source], tags=[tag])


def _tags(url: str, cache: Path) -> set[str]:
    with lfsreg.Registry(url, options=RemoteOptions(cache_dir=str(cache))) as reg:
        return {f"{t.name}:{t.tag}" for t in reg.tags()}


def _history(repo) -> list[str]:
    with Repo(str(repo.path)) as r:
        return [entry.commit.id.decode() for entry in r.get_walker(include=[r.refs[b"refs/heads/main"]])]


def _one_line(error: LfsregError) -> str:
    text = str(error)
    assert text and "\n" not in text, text
    assert not any(raw in text for raw in RAW), f"the HTTP library's words leak: {text!r}"
    return text


@pytest.mark.parametrize(
    "rule",
    [
        Cut("down", after=10, request=REFS, body=True, times=1),
        Cut("down", after=30, request=UPLOAD_PACK, body=True, times=1),
        Cut("up", after=20, request=UPLOAD_PACK, times=1),
    ],
    ids=["refs-response", "upload-pack-response", "upload-pack-request"],
)
def test_a_cut_fetch_is_retried(rule, git_http_server, git_http_repo, isolated):
    _push(git_http_repo.url, isolated / "seed", APP, "acme/app:1.0")
    out = isolated / "out.tar"
    sleeps = Sleeps()
    with CutProxy(("127.0.0.1", git_http_server.port), rule) as proxy:
        options = RemoteOptions(cache_dir=str(isolated / "cache"), policy=_policy(sleeps))
        with lfsreg.Registry(proxy.url(git_http_repo.url), options=options) as reg:
            reg.pull(["acme/app:1.0"], f"docker-archive:{out}")
        assert proxy.fired == 1
    assert len(sleeps) == 1, f"one retry, not {len(sleeps)}"
    verify_docker_archive(out)


def test_a_cut_push_request_is_sent_again_once(git_http_server, git_http_repo, isolated):
    _push(git_http_repo.url, isolated / "seed", BASE, "acme/base:1.0")
    before = git_http_repo.main()
    sleeps = Sleeps()
    with CutProxy(("127.0.0.1", git_http_server.port), Cut("up", after=200, request=RECEIVE_PACK, times=1)) as proxy:
        _push(proxy.url(git_http_repo.url), isolated / "cache", APP, "acme/app:1.0", _policy(sleeps))
        assert proxy.fired == 1
    assert len(sleeps) == 1
    assert "acme/app:1.0" in _tags(git_http_repo.url, isolated / "check")
    assert _history(git_http_repo)[1] == before, "more than one commit for one push"


def test_a_lost_push_answer_is_checked_not_sent_again(git_http_server, git_http_repo, isolated):
    """The update landed but its answer is cut, every time: the branch, read again, says so."""
    _push(git_http_repo.url, isolated / "seed", BASE, "acme/base:1.0")
    before = git_http_repo.main()
    sleeps = Sleeps()
    with CutProxy(("127.0.0.1", git_http_server.port), Cut("down", after=4, request=RECEIVE_PACK, body=True, times=None)) as proxy:
        _push(proxy.url(git_http_repo.url), isolated / "cache", APP, "acme/app:1.0", _policy(sleeps))
        assert proxy.fired == 1, f"the push was sent {proxy.fired} times"
    assert not sleeps
    assert _history(git_http_repo)[1] == before
    assert "acme/app:1.0" in _tags(git_http_repo.url, isolated / "check")


def test_a_branch_moved_between_attempts_is_re_applied(git_http_server, git_http_repo, isolated):
    """Between the cut push and its retry another writer publishes: the push re-applies on top, both tags stay."""
    _push(git_http_repo.url, isolated / "seed", BASE, "acme/base:1.0")

    def other_writer(attempt: int) -> None:
        if attempt == 1:
            _push(git_http_repo.url, isolated / "other", TOOL, "acme/tool:2.0")

    sleeps = Sleeps(other_writer)
    with CutProxy(("127.0.0.1", git_http_server.port), Cut("up", after=200, request=RECEIVE_PACK, times=1)) as proxy:
        _push(proxy.url(git_http_repo.url), isolated / "cache", APP, "acme/app:1.0", _policy(sleeps))
        assert proxy.fired == 1
    assert len(sleeps) == 1
    assert {"acme/base:1.0", "acme/tool:2.0", "acme/app:1.0"} <= _tags(git_http_repo.url, isolated / "check")


def test_spent_retries_are_one_line(git_http_server, git_http_repo, isolated):
    _push(git_http_repo.url, isolated / "seed", BASE, "acme/base:1.0")
    before = git_http_repo.main()
    sleeps = Sleeps()
    with CutProxy(("127.0.0.1", git_http_server.port), Cut("down", after=10, request=REFS, body=True, times=None)) as proxy:
        with pytest.raises(RetriableError) as caught:
            _push(proxy.url(git_http_repo.url), isolated / "cache", APP, "acme/app:1.0", _policy(sleeps, retries=2))
        assert proxy.fired == 3
    text = _one_line(caught.value)
    assert "cut during the refs advertisement" in text and "gave up after 3 attempts" in text, text
    assert len(sleeps) == 2
    assert git_http_repo.main() == before


def _refusing_port() -> socket.socket:
    """A bound socket that does not listen yet: connections to it are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


class _Relay:
    """Relays connections on a fixed port to ``target``; :meth:`stop` closes them all and refuses new ones."""

    def __init__(self, sock: socket.socket, target: tuple[str, int]) -> None:
        self.port = sock.getsockname()[1]
        self.target = target
        self.sock = sock
        self.conns: list[socket.socket] = []

    def start(self) -> None:
        self.sock.listen(16)
        threading.Thread(target=self._serve, args=(self.sock,), daemon=True).start()

    def stop(self) -> None:
        """Close the listener and every relayed connection; the port stays bound, not listening."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.sock.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.conns.clear()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))

    def _serve(self, sock: socket.socket) -> None:
        while True:
            try:
                client, _ = sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.conns += [client, server]
            threading.Thread(target=pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=pipe, args=(server, client), daemon=True).start()


def test_a_refused_connection_is_retried_once_the_server_has_answered(git_http_server, git_http_repo, isolated):
    """The server goes down between two reads (a restart): the read is tried again and succeeds once it listens."""
    _push(git_http_repo.url, isolated / "seed", APP, "acme/app:1.0")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # bound again by stop()
    sock.bind(("127.0.0.1", 0))
    relay = _Relay(sock, ("127.0.0.1", git_http_server.port))
    relay.start()
    sleeps = Sleeps(lambda attempt: relay.start() if attempt == 2 else None)
    url = git_http_repo.url.replace(f":{git_http_server.port}/", f":{relay.port}/")
    try:
        with lfsreg.Registry(url, options=RemoteOptions(cache_dir=str(isolated / "c"), policy=_policy(sleeps))) as reg:
            assert "acme/app:1.0" in {f"{t.name}:{t.tag}" for t in reg.tags()}
            assert sleeps == []
            relay.stop()
            assert "acme/app:1.0" in {f"{t.name}:{t.tag}" for t in reg.tags()}
    finally:
        relay.stop()
    assert len(sleeps) == 2


def test_a_refused_first_connection_is_one_line_at_once(isolated):
    """Refused before the server ever answered: a wrong address or a server that is down, said without retrying."""
    sock = _refusing_port()
    port = sock.getsockname()[1]
    sleeps = Sleeps()
    try:
        options = RemoteOptions(cache_dir=str(isolated / "c"), policy=_policy(sleeps, retries=2))
        with pytest.raises(UnreachableError) as caught, lfsreg.Registry(f"http://127.0.0.1:{port}/org/images.git", options=options) as reg:
            reg.tags()
    finally:
        sock.close()
    text = _one_line(caught.value)
    assert text.endswith("cannot connect: connection refused"), text
    assert caught.value.hint and "server is running" in caught.value.hint
    assert sleeps == []
