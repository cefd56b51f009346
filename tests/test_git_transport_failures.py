"""Each way a smart-HTTP exchange fails at the transport is one line in lfsreg's words, with the right error class.

A connect that times out (a listener whose queue is full), a host that does not resolve, a
server that answers a web page where git's refs advertisement belongs (lfsreg used to read it
as dumb HTTP and crash with ``internal error: ValueError``), a server that stopped listening
after it had answered (retried, then "gave up"), and secrets kept out of messages.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from canned_http import canned_server
from conftest import assert_error, run_cli
from cutproxy import CutProxy
from gitenv import cli_env

import lfsreg
from lfsreg.api import RemoteOptions
from lfsreg.errors import UnreachableError
from lfsreg.git.transport import redact
from lfsreg.lfs.retry import RetryPolicy


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return cli_env(tmp_path, **{"LFSREG_RETRIES": "0", **extra})


@pytest.fixture
def full_listener() -> Iterator[int]:
    """A port whose listener never accepts and whose queue is full: a connect there gets no answer."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    queued = []
    for _ in range(3):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        queued.append(sock)
    time.sleep(0.1)
    yield port
    for sock in [*queued, server]:
        sock.close()


def test_a_connect_without_answer_is_one_line_naming_the_timeout(full_listener, tmp_path):
    started = time.monotonic()
    proc = run_cli("tags", f"http://127.0.0.1:{full_listener}/org/x.git", env=_env(tmp_path, LFSREG_TIMEOUT="1"))
    assert_error(proc, 1, f"127.0.0.1:{full_listener}", "cannot connect: no answer within 1 s")
    assert time.monotonic() - started < 30


def test_an_unknown_host_is_one_line_at_once(tmp_path):
    proc = run_cli("tags", "http://no-such-host.invalid/org/x.git", env=_env(tmp_path, LFSREG_RETRIES="5"))
    line = assert_error(proc, 1, "no-such-host.invalid", "cannot connect: unknown host")
    assert "gave up" not in line  # not retried: the name will not resolve on the next try either


@pytest.fixture
def web_page() -> Iterator[str]:
    """A web server where a git host was expected: every URL is a 200 HTML page (a login form, a portal)."""
    page = b"<html><body>Sign in</body></html>\n"
    with canned_server(200, page, content_type="text/html; charset=utf-8") as served:
        yield served.url


@pytest.mark.parametrize("command", ["tags", "push"])
def test_a_web_page_instead_of_git_is_one_line(web_page, tmp_path, command):
    from conftest import fixture

    args = (web_page, "docker-archive:" + str(fixture("base.docker.tar"))) if command == "push" else (web_page,)
    proc = run_cli(command, *args, env=_env(tmp_path))
    line = assert_error(proc, 1, web_page, "text/html", "not git's smart HTTP")
    assert "internal error" not in line and "ValueError" not in proc.stderr


def test_a_server_that_stops_listening_is_retried_then_one_line(git_http_server, git_http_repo, tmp_path, monkeypatch):
    """Refused after the server had answered: retried (a restart), and once the retries are spent, said so."""
    for name in list(os.environ):
        if name.startswith(("LFSREG_", "XDG_", "GIT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LFSREG_USERNAME", git_http_server.user)
    monkeypatch.setenv("LFSREG_PASSWORD", git_http_server.password)
    assert run_cli("push", git_http_repo.url, "docker-archive:" + str(_base())).returncode == 0
    sleeps: list[float] = []
    policy = RetryPolicy(max_retries=2, base_delay=0.01, sleep=sleeps.append)
    with CutProxy(("127.0.0.1", git_http_server.port)) as proxy:
        url = proxy.url(git_http_repo.url)
        reg = lfsreg.Registry(url, options=RemoteOptions(cache_dir=str(tmp_path / "c"), policy=policy))
        assert "acme/base:1.0" in {f"{t.name}:{t.tag}" for t in reg.tags()}
    # the proxy is gone: its port refuses connections now
    try:
        with pytest.raises(UnreachableError) as caught:
            reg.tags()
    finally:
        reg.close()
    text = str(caught.value)
    assert "connection refused" in text and "gave up after 3 attempts" in text, text
    assert caught.value.hint and "server is running" in caught.value.hint
    assert len(sleeps) == 2


def _base() -> Path:
    from conftest import fixture

    return fixture("base.docker.tar")


def test_redact_hides_every_secret_and_ignores_empty_ones():
    # an empty password (a token given as the user name) must not turn every gap into ***
    assert redact("user s3cret at host, s3cret again", ["", "s3cret"]) == "user *** at host, *** again"
    assert redact("nothing to hide", [""]) == "nothing to hide"
