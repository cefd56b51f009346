"""``lfsreg copy`` from a remote source is held to the source's ``limits.transfer``, as a pull is (docs/limits.md).

Against nginx + git http-backend + giftless: a copy that would download more than the limit is
refused before one LFS object is fetched (nginx's log shows no object GET) and the destination
it would have created is not left behind; one past 80 % of the limit warns and copies; objects
already in the local cache are not counted again.
"""

from __future__ import annotations

from conftest import assert_ok, fixture, run_cli
from gitenv import cli_env
from test_transfer_limit import _lfs_bytes, _object_gets  # the same counting as the pull tests

APP = "docker-archive:" + str(fixture("app.docker.tar"))  # acme/app:1.0: three layers, ~6.7 kB of LFS objects


def test_a_copy_from_a_remote_over_the_limit_is_refused_before_it_downloads(git_http_server, git_http_repo, tmp_path):
    env = cli_env(tmp_path / "push", git_http_server)
    assert_ok(run_cli("push", git_http_repo.url, APP, env=env))
    layers = _lfs_bytes(git_http_repo.lfs_storage)
    assert_ok(run_cli("config", git_http_repo.url, "limits.transfer", f"{layers - 1}B", env=env))

    fresh = cli_env(tmp_path / "fresh", git_http_server)
    dst = tmp_path / "copy.git"
    start = git_http_server.access_log.stat().st_size
    proc = run_cli("copy", git_http_repo.url, str(dst), env=fresh)
    assert proc.returncode == 1
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"lfsreg: error: {git_http_repo.url}: this copy would download ") and "1B over limits.transfer" in first, first
    assert "limits.transfer SIZE" in proc.stderr  # the hint: how to raise it
    assert _object_gets(git_http_server, start) == []  # not one object downloaded
    assert not dst.exists()  # the destination the copy would have created is not left behind

    # a limit the copy fits into, past 80 % of it: a warning, and the copy
    assert_ok(run_cli("config", git_http_repo.url, "limits.transfer", f"{layers + 1}B", env=env))
    proc = run_cli("copy", git_http_repo.url, str(dst), env=fresh)
    assert_ok(proc)
    assert "this copy downloads" in proc.stderr and "% of limits.transfer" in proc.stderr
    assert _lfs_bytes(dst / "lfs") == layers

    # what the local cache holds is not downloaded again: a one-byte limit lets a second copy through
    assert_ok(run_cli("config", git_http_repo.url, "limits.transfer", "1B", env=env))
    again = tmp_path / "again.git"
    start = git_http_server.access_log.stat().st_size
    proc = run_cli("copy", git_http_repo.url, str(again), env=fresh)
    assert_ok(proc)
    assert "limits.transfer" not in proc.stderr
    assert _object_gets(git_http_server, start) == []
    assert _lfs_bytes(again / "lfs") == layers
