"""A server that refuses, cuts or stalls the start of a command says so in one line naming the stage.

Issue 8: SshConnection.exec raised "cannot run git-upload-pack: " with an empty reason when the
connection died under the channel open or the exec request (paramiko's empty ``EOFError``), and
"cannot run git-upload-pack: ChannelException(2, 'Connect failed')" when the server
refused the channel, with no next step. Now each failure names the stage ("the opening of a
channel for X" / "the exec of X"), the reason (or "refused by the server") and what to do.

The servers are the real sshd of tests/peers/: one with ``MaxSessions 0`` (OpenSSH then refuses
every session channel), and the session-wide one behind the cut proxy (tests/cutproxy.py),
which cuts or stalls the client's bytes inside the channel-open or the exec request: the
cut points are measured on a clean connection first, so they follow the exchange's sizes.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import run_cli
from cutproxy import Cut, CutProxy
from gitenv import cli_env
from peers.sshd import start_sshd

from lfsreg.errors import LfsregError, RetriableError
from lfsreg.ssh.connection import SshConnection
from lfsreg.ssh.settings import SshSettings
from lfsreg.ssh.url import parse_ssh_url

pytestmark = pytest.mark.interop
COMMANDS = ["git-upload-pack", "git-lfs-transfer", "git-lfs-authenticate"]


@pytest.fixture(scope="module")
def no_sessions_sshd(tmp_path_factory, git_http_server):
    """A real sshd that authenticates every key, then refuses every session channel."""
    with start_sshd(tmp_path_factory.mktemp("sshd-no-sessions"), git_http_server, extra_config="MaxSessions 0\n") as server:
        yield server


def _connection(sshd, repo, key, port: int, known: Path, timeout: float = 10.0) -> SshConnection:
    known.write_text(f"[127.0.0.1]:{port} {sshd.host_public}\n")
    url = parse_ssh_url(f"ssh://{sshd.login}@127.0.0.1:{port}/{repo.name}.git")
    return SshConnection(url, SshSettings(identity=str(key.path), known_hosts=str(known), timeout=timeout))


def _command(name: str, repo) -> str:
    return f"{name} '/{repo.name}.git'" + ("" if name == "git-upload-pack" else " download")


def _exec_error(connection: SshConnection, command: str) -> LfsregError:
    try:
        connection.exec(command).close()
    except LfsregError as exc:
        return exc
    finally:
        connection.close()
    raise AssertionError(f"{command}: the server ran it")


@pytest.mark.parametrize("name", COMMANDS)
def test_a_refused_channel_names_the_command_and_the_reason(no_sessions_sshd, git_http_repo, tmp_path, name):
    key = no_sessions_sshd.add_key(git_http_repo, lfs="transfer" if name == "git-lfs-transfer" else "authenticate")
    connection = _connection(no_sessions_sshd, git_http_repo, key, no_sessions_sshd.port, tmp_path / "known_hosts")
    error = _exec_error(connection, _command(name, git_http_repo))
    # OpenSSH answers with reason code 2 ("connect failed"), paramiko names the code
    assert re.fullmatch(
        rf"127\.0\.0\.1:{no_sessions_sshd.port}: the opening of a channel for {name} was refused by the server \([a-z ]+\)", str(error)
    ), repr(error)
    assert error.hint and "MaxSessions" in error.hint, error.hint
    assert not isinstance(error, RetriableError), "a refusal is the server's answer, not a cut"


def test_the_cli_says_a_refused_channel_in_one_line_and_a_next_step(no_sessions_sshd, git_http_repo, tmp_path):
    key = no_sessions_sshd.add_key(git_http_repo)
    proc = run_cli("tags", no_sessions_sshd.url(git_http_repo), env=cli_env(tmp_path, sshd=no_sessions_sshd, key=key, LFSREG_RETRIES="0"))
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr
    assert re.search(r": the opening of a channel for git-upload-pack was refused by the server \([a-z ]+\)$", lines[0]), lines
    assert "MaxSessions" in lines[1], lines


def _cut_points(sshd_server, git_http_repo, key, tmp_path) -> dict[str, int]:
    """Client bytes sent when the connection is authenticated, and when the channel is open."""
    with CutProxy(("127.0.0.1", sshd_server.port)) as proxy:
        connection = _connection(sshd_server, git_http_repo, key, proxy.port, tmp_path / "known_hosts")
        transport = connection.transport()
        authenticated = proxy.relayed["up"]
        channel = transport.open_session(timeout=10)
        opened = proxy.relayed["up"]
        channel.close()
        connection.close()
    assert 0 < authenticated < opened, (authenticated, opened)
    return {"the opening of a channel for": authenticated, "the exec of": opened}


@pytest.mark.parametrize("name", COMMANDS)
def test_a_cut_inside_the_channel_open_or_the_exec_names_the_stage(sshd_server, git_http_repo, tmp_path, name):
    key = sshd_server.add_key(git_http_repo)
    for stage, sent in _cut_points(sshd_server, git_http_repo, key, tmp_path).items():
        # every connection (the first and the one reopened) is cut 8 bytes into the request
        with CutProxy(("127.0.0.1", sshd_server.port), Cut("up", after=sent + 8, times=None)) as proxy:
            connection = _connection(sshd_server, git_http_repo, key, proxy.port, tmp_path / "known_hosts")
            error = _exec_error(connection, _command(name, git_http_repo))
            assert proxy.fired == 2, f"{stage}: the connection was reopened once ({proxy.fired} cuts)"
            port = proxy.port
        assert str(error) == f"127.0.0.1:{port}: connection closed by 127.0.0.1 during {stage} {name}", f"{stage}: {error!r}"
        assert isinstance(error, RetriableError), f"{stage}: a cut is worth a retry: {type(error).__name__}"


def test_a_stall_at_the_exec_request_is_bounded_and_named(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo)
    sent = _cut_points(sshd_server, git_http_repo, key, tmp_path)["the exec of"]
    hold = 60.0
    with CutProxy(("127.0.0.1", sshd_server.port), Cut("up", after=sent + 8, stall=hold, times=None)) as proxy:
        connection = _connection(sshd_server, git_http_repo, key, proxy.port, tmp_path / "known_hosts", timeout=1.5)
        start = time.monotonic()
        error = _exec_error(connection, _command("git-upload-pack", git_http_repo))
        took = time.monotonic() - start
        port = proxy.port
    assert took < 10, f"waited {took:.0f} s for the answer to the exec request"
    assert str(error) == f"127.0.0.1:{port}: no answer from 127.0.0.1 within 1.5 s during the exec of git-upload-pack", repr(error)
    assert isinstance(error, RetriableError)


def test_a_stall_after_the_exec_of_git_lfs_authenticate_is_bounded_and_named(sshd_server, git_http_repo, tmp_path):
    """``SshConnection.run`` (git-lfs-authenticate) reads to the end: a silent server raised a bare TimeoutError ("lfsreg: error: ")."""
    # the server's command itself is silent after the exec succeeded (a byte count at a proxy is not
    # deterministic: OpenSSH's host-keys message after authentication comes at varying points)
    key = sshd_server.add_key(git_http_repo, lfs_auth_stall=30)
    connection = _connection(sshd_server, git_http_repo, key, sshd_server.port, tmp_path / "known_hosts", timeout=1.5)
    start = time.monotonic()
    with pytest.raises(LfsregError) as info:
        connection.run(_command("git-lfs-authenticate", git_http_repo))
    took = time.monotonic() - start
    connection.close()
    port = sshd_server.port
    assert took < 10, f"waited {took:.0f} s for the command's output"
    assert str(info.value) == f"127.0.0.1:{port}: no answer from 127.0.0.1 within 1.5 s during git-lfs-authenticate", repr(info.value)
    assert isinstance(info.value, RetriableError)
