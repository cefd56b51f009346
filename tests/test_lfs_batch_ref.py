"""The LFS batch requests name the registry branch, the one the remote's ``HEAD`` names (issue 8).

git-lfs sends the ref being pushed or pulled with each batch request, and servers may use it
(branch protection, per-branch locks). lfsreg's registry branch follows the remote's ``HEAD``
(tests/test_registry_branch.py); the SSH ``git-lfs-transfer`` queue used to name
``refs/heads/main`` whatever the branch was. The test ``git-lfs-transfer`` server
(tests/peers/lfs_transfer_server.py) records the ``refname`` of every ``batch`` it answers; an LFS
server the user names (tests/fault_lfs) records every batch body's ``ref``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_ok, fixture, run_cli
from fault_lfs import FaultLfsServer
from gitenv import cli_env

pytestmark = pytest.mark.interop
APP = "docker-archive:" + str(fixture("app.docker.tar"))


def _batch_refs(store: Path) -> list[tuple[str, str]]:
    log = store.with_name(store.name + ".batch-refs")
    lines = log.read_text().splitlines() if log.exists() else []
    return [(op, ref) for op, ref in (line.split() for line in lines)]


@pytest.mark.parametrize("branch", ["master", "main"])
def test_ssh_transfer_batches_name_the_registry_branch(branch, sshd_server, git_http_repo, tmp_path):
    (git_http_repo.path / "HEAD").write_text(f"ref: refs/heads/{branch}\n")  # `git init --bare` where git defaults to it
    key = sshd_server.add_key(git_http_repo, lfs="transfer")
    url = sshd_server.url(git_http_repo)
    store = sshd_server.transfer_store / git_http_repo.name

    assert_ok(run_cli("push", url, APP, env=cli_env(tmp_path / "push", sshd=sshd_server, key=key)))
    out = tmp_path / "app.tar"
    assert_ok(
        run_cli("pull", url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=cli_env(tmp_path / "pull", sshd=sshd_server, key=key))
    )

    assert (git_http_repo.path / "refs" / "heads" / branch).is_file(), "the push went to another branch than HEAD's"
    seen = _batch_refs(store)
    assert {op for op, _ in seen} == {"upload", "download"}, seen
    assert {ref for _, ref in seen} == {f"refs/heads/{branch}"}, seen


@pytest.mark.parametrize("branch", ["master", "main"])
def test_http_batches_name_the_registry_branch(branch, git_http_server, git_http_repo, tmp_path):
    """The same over HTTPS-style remotes: the batch body's ``ref.name`` (an LFS server the user names records it)."""
    (git_http_repo.path / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
    with FaultLfsServer() as lfs:
        env = cli_env(tmp_path, git_http_server, LFSREG_LFS_URL=lfs.endpoint())
        assert_ok(run_cli("push", git_http_repo.url, APP, env={**env, "LFSREG_CACHE": str(tmp_path / "push")}))
        out = tmp_path / "app.tar"
        pull_env = {**env, "LFSREG_CACHE": str(tmp_path / "pull")}
        assert_ok(run_cli("pull", git_http_repo.url, "acme/app:1.0", "-o", f"docker-archive:{out}", env=pull_env))
        bodies = lfs.batch_bodies
    assert (git_http_repo.path / "refs" / "heads" / branch).is_file()
    assert {body["operation"] for body in bodies} == {"upload", "download"}, bodies
    assert {(body.get("ref") or {}).get("name") for body in bodies} == {f"refs/heads/{branch}"}, bodies
