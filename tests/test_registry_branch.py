"""The registry branch follows the repository's ``HEAD`` (issue 8, "Also").

A registry created with ``git init --bare`` on a machine whose git defaults to ``master`` has
an unborn ``HEAD`` naming ``master``; lfsreg used to push ``main`` there, and a stock ``git
clone`` then found no checkout ("remote HEAD refers to nonexistent ref"). Now lfsreg pushes
the branch ``HEAD`` names (remote ``HEAD`` is read from the advertisement: protocol v2 names
an unborn one), and a stock ``git clone`` + ``git lfs pull`` gives a clean checkout, for a
local path, a ``file://`` URL and HTTPS alike.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from clirun import run_cli
from gitenv import cli_env, isolated_git_env, run_git
from imageverify import FIXTURES, lfsreg, tags_of
from peers import use_credential_store

IMAGES = {"acme/app:1.0": f"oci:{FIXTURES / 'app.oci'}:1.0", "acme/tool:2.0": f"docker-archive:{FIXTURES / 'tool.docker.tar'}"}


def _bare(path: Path, branch: str, env: dict[str, str]) -> None:
    run_git(["init", "--quiet", "--bare", f"--initial-branch={branch}", path], cwd=path.parent, env=env)


def _branches(repo: Path, env: dict[str, str]) -> list[str]:
    out = run_git(["for-each-ref", "--format=%(refname)", "refs/heads"], cwd=repo, env=env).stdout.decode()
    return out.split()


def _clone_and_check(url: str, tmp_path: Path, env: dict[str, str], branch: str) -> None:
    """Stock ``git clone`` (LFS smudge skipped) + ``git lfs pull``: a clean checkout of ``branch`` with real layers."""
    work = tmp_path / "work"
    proc = run_git(["clone", url, work], cwd=tmp_path, env={**env, "GIT_LFS_SKIP_SMUDGE": "1"})
    assert b"warning" not in proc.stderr.lower(), proc.stderr  # "remote HEAD refers to nonexistent ref"
    run_git(["lfs", "pull"], cwd=work, env=env)
    assert run_git(["symbolic-ref", "HEAD"], cwd=work, env=env).stdout.decode().strip() == f"refs/heads/{branch}"
    assert run_git(["status", "--porcelain"], cwd=work, env=env).stdout == b""
    layers = [p for p in (work / "layers").rglob("*") if p.is_file()]
    assert layers
    for layer in layers:
        assert hashlib.sha256(layer.read_bytes()).hexdigest() == layer.name, f"{layer} is still a pointer"
    assert (work / "lfsreg.json").is_file()


def _push_images(location: str, env: dict[str, str]) -> None:
    for tag, source in IMAGES.items():
        proc = run_cli("push", location, source, "--tag", tag, env=env)  # in this process
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("branch", ["master", "main"])
@pytest.mark.parametrize("kind", ["path", "file-url"])
def test_registry_on_git_init_bare_follows_head(tmp_path: Path, branch: str, kind: str) -> None:
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    _bare(repo, branch, env)
    location = str(repo) if kind == "path" else f"file://{repo}"
    _push_images(location, {**os.environ, "LFSREG_CACHE": str(tmp_path / "cache")})
    assert _branches(repo, env) == [f"refs/heads/{branch}"]
    assert set(tags_of(repo)) == set(IMAGES)
    run_git(["fsck", "--strict", "--no-dangling"], cwd=repo, env=env)
    _clone_and_check(str(repo) if kind == "path" else f"file://{repo}", tmp_path, env, branch)


def test_registry_written_on_main_under_a_master_head_stays_on_main(tmp_path: Path) -> None:
    """A registry an earlier lfsreg wrote on ``main`` under a ``HEAD`` naming unborn ``master`` keeps ``main``."""
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    lfsreg("push", repo, IMAGES["acme/app:1.0"], "--tag", "acme/app:1.0")  # HEAD -> main
    run_git(["symbolic-ref", "HEAD", "refs/heads/master"], cwd=repo, env=env)
    lfsreg("push", repo, IMAGES["acme/tool:2.0"], "--tag", "acme/tool:2.0")
    assert _branches(repo, env) == ["refs/heads/main"]
    assert set(tags_of(repo)) == set(IMAGES)


@pytest.mark.interop
@pytest.mark.parametrize("branch", ["master", "main"])
def test_https_registry_follows_the_remote_head(git_http_server, tmp_path: Path, branch: str) -> None:
    """Over smart HTTP (protocol v2 advertises the unborn ``HEAD``) lfsreg pushes ``HEAD``'s branch."""
    env = isolated_git_env(tmp_path)
    peer = git_http_server.repo(f"branch/{branch}-{tmp_path.name[-12:]}")
    peer.path.parent.mkdir(parents=True, exist_ok=True)
    _bare(peer.path, branch, env)
    run_git(["config", "http.receivepack", "true"], cwd=peer.path, env=env)
    if peer.lfs_storage is not None:
        peer.lfs_storage.mkdir(parents=True, exist_ok=True)
    _push_images(peer.url, cli_env(tmp_path, git_http_server))
    assert _branches(peer.path, env) == [f"refs/heads/{branch}"]
    run_git(["fsck", "--strict", "--no-dangling"], cwd=peer.path, env=env)
    use_credential_store(env, git_http_server, tmp_path)
    _clone_and_check(peer.url, tmp_path, env, branch)
