"""A ``git-lfs-transfer`` server that stalls in the middle of an object: a retry, then one line, in bounded time.

Issue 8: the read timeout of the pure-SSH LFS adapter (``Session._read`` in
lfsreg/lfs/sshtransfer.py: the channel's read raises ``TimeoutError`` past ``LFSREG_TIMEOUT``)
had no test of its own. The server is the project's ``git-lfs-transfer`` test server behind
the real sshd (tests/peers/): scripted with ``stall SECONDS``, it starts the answer to
``get-object`` (status, size, half the first chunk) and then goes silent far longer than the
read timeout.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import assert_ok, fixture, run_cli
from gitenv import cli_env

pytestmark = pytest.mark.interop
APP = "docker-archive:" + str(fixture("app.docker.tar"))
TIMEOUT = 2.0  # LFSREG_TIMEOUT: long enough for a key exchange on a loaded machine
HOLD = 60.0  # the server's silence


def _pushed(sshd_server, git_http_repo, tmp_path: Path) -> tuple[str, Path, str, object]:
    """The URL, the transfer server's store and its largest object (a layer) after a push of APP."""
    key = sshd_server.add_key(git_http_repo, lfs="transfer")
    url = sshd_server.url(git_http_repo)
    assert_ok(run_cli("push", url, APP, env=cli_env(tmp_path / "push", sshd=sshd_server, key=key)))
    store = sshd_server.transfer_store / git_http_repo.name
    layer = max((p for p in store.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_size)
    return url, store, layer.name, key


def _get_requests(store: Path, oid: str) -> int:
    return sum(1 for line in (store / ".requests").read_text().splitlines() if line.startswith(f"get-object {oid}"))


def test_a_stall_mid_object_is_retried_and_the_pull_completes(sshd_server, git_http_repo, tmp_path):
    url, store, oid, key = _pushed(sshd_server, git_http_repo, tmp_path)
    marker = store / f".fault.get-object.{oid}"
    marker.write_text(f"stall {HOLD}\n")
    out = tmp_path / "app.tar"
    env = cli_env(tmp_path / "pull", sshd=sshd_server, key=key, LFSREG_TIMEOUT=str(TIMEOUT))
    start = time.monotonic()
    assert_ok(run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=env))
    took = time.monotonic() - start
    assert not marker.exists(), "the stall was not met"
    assert _get_requests(store, oid) == 2, "the stalled download was not asked for again"
    assert took < HOLD / 2, f"waited {took:.0f} s: the read had no timeout"


def test_a_stall_on_every_attempt_is_one_line_once_retries_are_spent(sshd_server, git_http_repo, tmp_path):
    url, store, oid, key = _pushed(sshd_server, git_http_repo, tmp_path)
    retries = 1
    (store / f".fault.get-object.{oid}").write_text(f"stall {HOLD}\n" * (retries + 1))
    out = tmp_path / "app.tar"
    env = cli_env(tmp_path / "pull", sshd=sshd_server, key=key, LFSREG_TIMEOUT=str(TIMEOUT), LFSREG_RETRIES=str(retries))
    start = time.monotonic()
    proc = run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=env)
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    assert _get_requests(store, oid) == retries + 1, "each attempt met the stall"
    assert took < HOLD / 2, f"waited {took:.0f} s: the read had no timeout"
    lines = proc.stderr.splitlines()
    assert len(lines) <= 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "git-lfs-transfer: the server sent nothing within the read timeout (stalled)" in lines[0], lines
    assert not out.exists(), "a failed pull wrote its output"
