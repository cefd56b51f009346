"""A server that goes silent after the SSH connection is authenticated (issue 8: "a cut or stall
at any point of any exchange is a retry, or once retries are spent one clear line").

Reads on a channel (git-upload-pack's advertisement here) had no timeout: a stall there hung the
command for as long as the server held the connection. The cut proxy (tests/cutproxy.py) sits
in front of the real sshd and, past the key exchange and authentication (~2.6 KB down), holds
every connection silent for far longer than the read timeout.
"""

from __future__ import annotations

import time

import pytest
from conftest import fixture, run_cli
from cutproxy import Cut, CutProxy
from gitenv import cli_env

pytestmark = pytest.mark.interop
APP = "docker-archive:" + str(fixture("app.docker.tar"))
HOLD = 60.0  # the proxy's silence; the command must give up long before


def test_a_silent_channel_after_authentication_is_one_line(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo)
    seed = cli_env(tmp_path / "seed", sshd=sshd_server, key=key)
    direct = f"ssh://{sshd_server.login}@127.0.0.1:{sshd_server.port}/{git_http_repo.name}.git"
    assert run_cli("push", direct, APP, env=seed).returncode == 0
    # cut only after the hold, so a read without a timeout would wait all of it
    with CutProxy(("127.0.0.1", sshd_server.port), Cut("down", after=3000, times=None, stall=HOLD)) as proxy:
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{proxy.port} {sshd_server.host_public}\n")
        url = f"ssh://{sshd_server.login}@127.0.0.1:{proxy.port}/{git_http_repo.name}.git"
        env = cli_env(tmp_path, sshd=sshd_server, key=key, known_hosts=known, LFSREG_RETRIES="0", LFSREG_TIMEOUT="2")
        start = time.monotonic()
        proc = run_cli("tags", url, env=env)
        took = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    assert took < HOLD / 2, f"waited {took:.0f} s: the read had no timeout"
    assert len(proc.stderr.splitlines()) <= 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.splitlines()[0]
    assert "sent nothing within the read timeout" in line and "stalled" in line, line
