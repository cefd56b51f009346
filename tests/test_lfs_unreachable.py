"""The LFS endpoint of a registry out of reach (lfsreg/lfs/deadline.py): a push over smart HTTP
to the real nginx + git http-backend peer, with ``--lfs-url`` naming an LFS server whose host
does not resolve or that never answers a connect, fails in one line naming the LFS host and
why, and publishes nothing (the peer's repository keeps no branch).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import assert_error, main_ref, run_cli
from gitenv import cli_env
from imageverify import FIXTURES
from test_git_transport_failures import full_listener  # noqa: F401  (the fixture)

APP = f"oci:{FIXTURES / 'app.oci'}:1.0"


def _env(tmp: Path, server, **extra: str) -> dict[str, str]:
    return cli_env(tmp, server, **{"LFSREG_RETRIES": "0", **extra})


@pytest.mark.interop
def test_an_lfs_host_that_does_not_resolve(git_http_server, git_http_repo, tmp_path):
    env = _env(tmp_path, git_http_server, LFSREG_LFS_URL="http://no-such-lfs.invalid/x.git/info/lfs")
    proc = run_cli("push", git_http_repo.url, APP, "--tag", "acme/app:1.0", env=env)
    assert_error(proc, 1, "no-such-lfs.invalid", "cannot connect: unknown host")
    assert main_ref(git_http_repo.path) is None


@pytest.mark.interop
def test_an_lfs_host_that_never_answers_the_connect(git_http_server, git_http_repo, tmp_path, full_listener):  # noqa: F811
    env = _env(tmp_path, git_http_server, LFSREG_TIMEOUT="1", LFSREG_LFS_URL=f"http://127.0.0.1:{full_listener}/x.git/info/lfs")
    started = time.monotonic()
    proc = run_cli("push", git_http_repo.url, APP, "--tag", "acme/app:1.0", env=env)
    assert_error(proc, 1, f"127.0.0.1:{full_listener}", "cannot connect: no answer within 1 s")
    assert time.monotonic() - started < 30
    assert main_ref(git_http_repo.path) is None
