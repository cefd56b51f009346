"""``limits.transfer`` (a host's monthly download allowance) is enforced per command (docs/limits.md).

Against the real peers: nginx + git http-backend + giftless over HTTPS-style HTTP, and the
test sshd with scutiger's ``git-lfs-transfer`` (pure SSH LFS). A pull that would download
more than the limit by itself is refused before a byte of LFS content moves (nginx's log
shows no object GET; nothing is written); one past 80 % of it warns and succeeds; objects
already in the local cache cost nothing; a deep ``verify`` of a remote is held to the same
limit. A local registry has no host to meter.
"""

from __future__ import annotations

import pytest
from conftest import assert_ok, fixture, run_cli
from gitenv import cli_env

APP = "docker-archive:" + str(fixture("app.docker.tar"))  # acme/app:1.0: three layers, ~6.7 kB of LFS objects
REF = "acme/app:1.0"


def _lfs_bytes(root) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and len(p.name) == 64)


def _object_gets(server, start: int) -> list[str]:
    with open(server.access_log, "rb") as f:
        f.seek(start)
        return [line for line in f.read().decode().splitlines() if "GET " in line and "/objects/storage/" in line]


def test_a_pull_over_the_limit_is_refused_before_it_downloads(git_http_server, git_http_repo, tmp_path):
    env = cli_env(tmp_path / "push", git_http_server)
    assert_ok(run_cli("push", git_http_repo.url, APP, env=env))
    layers = _lfs_bytes(git_http_repo.lfs_storage)
    assert_ok(run_cli("config", git_http_repo.url, "limits.transfer", f"{layers - 1}B", env=env))

    fresh = cli_env(tmp_path / "fresh", git_http_server)
    start = git_http_server.access_log.stat().st_size
    out = tmp_path / "app.tar"
    proc = run_cli("pull", git_http_repo.url, REF, "-o", f"docker-archive:{out}", env=fresh)
    assert proc.returncode == 1
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"lfsreg: error: {git_http_repo.url}: this pull would download ") and "over limits.transfer" in first
    assert "1B over" in first, first
    assert "limits.transfer SIZE" in proc.stderr  # the hint: how to raise it
    assert _object_gets(git_http_server, start) == []  # not one object downloaded
    assert not out.exists()
    assert not [p for p in (tmp_path / "fresh" / "cache").rglob("*") if p.is_file() and len(p.name) == 64]

    # a limit the pull fits into, past 80 % of it: a warning, and the pull
    assert_ok(run_cli("config", git_http_repo.url, "limits.transfer", f"{layers + 1}B", env=env))
    proc = run_cli("pull", git_http_repo.url, REF, "-o", f"docker-archive:{out}", env=fresh)
    assert_ok(proc)
    assert "% of limits.transfer" in proc.stderr and out.exists()
    assert len(_object_gets(git_http_server, start)) == len([p for p in git_http_repo.lfs_storage.rglob("*") if p.is_file()])

    # what the cache holds is not downloaded again: a limit of one byte lets the same pull through
    assert_ok(run_cli("config", git_http_repo.url, "limits.transfer", "1B", env=env))
    again = tmp_path / "again.tar"
    proc = run_cli("pull", git_http_repo.url, REF, "-o", f"docker-archive:{again}", env=fresh)
    assert_ok(proc)
    assert again.exists() and "limits.transfer" not in proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("moved 0B from the host")

    # verify --deep downloads everything afresh: held to the limit, before it starts
    start = git_http_server.access_log.stat().st_size
    deep = run_cli("verify", git_http_repo.url, "--deep", env=fresh)
    assert deep.returncode == 1 and "verify --deep would download" in deep.stderr
    assert _object_gets(git_http_server, start) == []
    assert_ok(run_cli("verify", git_http_repo.url, env=fresh))  # the plain check downloads nothing

    assert_ok(run_cli("config", git_http_repo.url, "--unset", "limits.transfer", env=env))
    assert_ok(run_cli("verify", git_http_repo.url, "--deep", env=fresh))


@pytest.mark.interop
def test_a_pull_over_the_limit_through_pure_ssh_lfs_is_refused(sshd_server, git_http_repo, tmp_path):
    key = sshd_server.add_key(git_http_repo, lfs="scutiger")
    url = sshd_server.url(git_http_repo)
    env = cli_env(tmp_path / "push", sshd=sshd_server, key=key)
    assert_ok(run_cli("push", url, APP, env=env))
    assert_ok(run_cli("config", url, "limits.transfer", "1kB", env=env))
    before = len([c for c in sshd_server.commands() if c.startswith("git-lfs-transfer") and c.endswith(" download")])
    out = tmp_path / "app.tar"
    proc = run_cli("pull", url, REF, "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "fresh", sshd=sshd_server, key=key))
    assert proc.returncode == 1 and "over limits.transfer (1kB a month)" in proc.stderr.splitlines()[0]
    assert not out.exists()
    after = len([c for c in sshd_server.commands() if c.startswith("git-lfs-transfer") and c.endswith(" download")])
    assert after == before  # no download session was even opened


def test_a_local_registry_has_no_transfer_to_limit(tmp_path):
    repo = tmp_path / "reg.git"
    env = cli_env(tmp_path)
    assert_ok(run_cli("push", repo, APP, env=env))
    assert_ok(run_cli("config", repo, "limits.transfer", "1B", env=env))
    proc = run_cli("pull", repo, REF, "-o", f"docker-archive:{tmp_path / 'x.tar'}", env=env)
    assert_ok(proc)
    assert "limits.transfer" not in proc.stderr
