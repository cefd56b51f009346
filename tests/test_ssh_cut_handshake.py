"""An SSH connection cut or stalled before it is authenticated says what happened, and where.

Issue 8: a connection cut during the SSH handshake gave an empty reason ("SSH handshake
failed: "), and one cut during authentication said "SSH authentication refused" (paramiko
words a dead transport as a refusal), sending the user to check a key that was fine. Now each
names the host and the stage ("connection closed by HOST during the SSH handshake" / "...
during authentication"; a silent server: "no answer from HOST within N s during ..."), and is a
:class:`RetriableError`, so git's exchange tries again. The cut proxy (tests/cutproxy.py) sits
in front of the real sshd of tests/peers/ and cuts after every 100th byte in both directions,
which covers the key exchange and the authentication.
"""

from __future__ import annotations

import os
import re

import pytest
from conftest import fixture, run_cli
from cutproxy import Cut, CutProxy
from gitenv import cli_env

from lfsreg.errors import LfsregError, RetriableError
from lfsreg.ssh.connection import SshConnection
from lfsreg.ssh.settings import SshSettings
from lfsreg.ssh.url import parse_ssh_url

pytestmark = pytest.mark.interop
APP = "docker-archive:" + str(fixture("app.docker.tar"))
# Far enough to pass the whole key exchange and authentication (~1.8 KB down, ~1.6 KB up with ed25519 keys).
SWEEP = [("down", n) for n in range(0, 2600, 100)] + [("up", n) for n in range(0, 2400, 100)]
NAMED = re.compile(
    r"^127\.0\.0\.1:\d+: (connection closed by|no answer from) 127\.0\.0\.1( within [\d.]+ s)? during (the SSH handshake|authentication)$"
)


def _connect(sshd_server, git_http_repo, proxy: CutProxy, key, tmp_path, timeout: float = 10.0) -> LfsregError | None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{proxy.port} {sshd_server.host_public}\n")
    url = parse_ssh_url(f"ssh://{sshd_server.login}@127.0.0.1:{proxy.port}/{git_http_repo.name}.git")
    connection = SshConnection(url, SshSettings(identity=str(key.path), known_hosts=str(known), timeout=timeout))
    try:
        connection.transport()
    except LfsregError as exc:
        return exc
    finally:
        connection.close()
    return None


def test_a_cut_names_the_stage_it_happened_in(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo)
    stages: dict[str, list[str]] = {}
    for direction, after in SWEEP:
        with CutProxy(("127.0.0.1", sshd_server.port), Cut(direction, after=after, times=None)) as proxy:
            error = _connect(sshd_server, git_http_repo, proxy, key, tmp_path)
        if error is None:
            continue  # the cut came after authentication
        text = str(error)
        match = NAMED.match(text)
        assert match and match.group(1) == "connection closed by", f"{direction} {after}: {type(error).__name__}: {text!r}"
        assert isinstance(error, RetriableError), f"{direction} {after}: a cut is worth a retry: {type(error).__name__}"
        stages.setdefault(match.group(3), []).append(f"{direction}-{after}")
    # the sweep reached both stages (else the cut points above no longer fit the exchange)
    assert set(stages) == {"the SSH handshake", "authentication"}, stages


def test_a_stall_names_the_stage_and_the_timeout(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo)
    seen = set()
    for direction, after in [("down", 0), ("down", 600), ("up", 600)]:
        with CutProxy(("127.0.0.1", sshd_server.port), Cut(direction, after=after, stall=60.0, times=None)) as proxy:
            error = _connect(sshd_server, git_http_repo, proxy, key, tmp_path, timeout=1.5)
        assert error is not None, f"{direction} {after}: the stall did not stop the connection"
        match = NAMED.match(str(error))
        assert match and match.group(1) == "no answer from" and "within 1.5 s" in str(error), f"{direction} {after}: {error!r}"
        assert isinstance(error, RetriableError)
        seen.add(match.group(3))
    assert "the SSH handshake" in seen


def test_a_cut_handshake_through_the_cli_is_one_line(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo)
    with CutProxy(("127.0.0.1", sshd_server.port), Cut("down", after=600, times=None)) as proxy:
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{proxy.port} {sshd_server.host_public}\n")
        url = f"ssh://{sshd_server.login}@127.0.0.1:{proxy.port}/{git_http_repo.name}.git"
        env = cli_env(tmp_path, sshd=sshd_server, key=key, known_hosts=known, LFSREG_RETRIES="1")
        proc = run_cli("push", url, APP, env=env)
        connections = proxy.connections
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.splitlines()[0]
    assert "connection closed by 127.0.0.1 during the SSH handshake" in line and "Traceback" not in proc.stderr, proc.stderr
    assert connections == 2, f"one retry (LFSREG_RETRIES=1), not {connections - 1}"
    assert not (git_http_repo.path / "refs" / "heads" / "main").exists()
    assert os.path.isdir(git_http_repo.path)
