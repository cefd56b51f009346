"""Before a failed push is sent again, the remote's branch is read again; what it says decides (lfsreg/git/remote.py).

The cut proxy holds an answer past the request deadline (so urllib3 cannot quietly try again)
in front of the real nginx + git http-backend, and the push is driven through
:class:`lfsreg.git.remote.GitRemote` with a commit built in its mirror:

* the answer to the push is lost *and* the branch cannot be read afterwards: the push is sent
  again, and its fresh advertisement shows the branch already at the new commit: the late
  update is recognised, nothing is applied twice;
* another writer moved the branch and the push's advertisement is lost: the branch, read
  again, is elsewhere: ``False`` (the registry transaction re-applies), nothing sent.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import assert_ok, fixture, run_cli
from cutproxy import Cut, CutProxy
from dulwich.objects import Commit
from dulwich.repo import Repo
from gitenv import cli_env

from lfsreg.credentials import Credential
from lfsreg.git.remote import GitRemote
from lfsreg.lfs.retry import RetryPolicy

pytestmark = pytest.mark.interop

BASE = "docker-archive:" + str(fixture("base.docker.tar"))
TOOL = "docker-archive:" + str(fixture("tool.docker.tar"))
RECEIVE_PACK = rb"POST [^ ]*/git-receive-pack "
UPLOAD_REFS = rb"GET [^ ]*/info/refs\?service=git-upload-pack "
RECEIVE_REFS = rb"GET [^ ]*/info/refs\?service=git-receive-pack "
DEADLINE = 2.0
HOLD = 30.0


def _env(tmp_path: Path, server) -> dict[str, str]:
    return cli_env(tmp_path, server)


def _main(repo) -> str:
    return (repo.path / "refs" / "heads" / "main").read_text().strip()


def _remote(url: str, tmp_path: Path, server, sleeps: list[float]) -> GitRemote:
    return GitRemote(
        url,
        str(tmp_path / "mirror.git"),
        url,
        credentials=[Credential(server.user, server.password, "test")],
        timeout=HOLD,
        deadline=DEADLINE,
        policy=RetryPolicy(max_retries=3, base_delay=0.01, sleep=sleeps.append),
    )


def _child(remote: GitRemote, parent: str) -> str:
    """A new commit on top of ``parent`` in the remote's mirror (same tree): what a transaction builds."""
    commit = Commit()
    commit.tree = remote.mirror.repo[parent.encode()].tree
    commit.parents = [parent.encode()]
    commit.author = commit.committer = b"test <test@example.com>"
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"a test commit\n"
    remote.mirror.objects.add(commit)
    return commit.id.decode()


def test_a_late_update_found_in_the_next_advertisement_is_not_applied_again(git_http_server, git_http_repo, tmp_path):
    assert_ok(run_cli("push", git_http_repo.url, BASE, env=_env(tmp_path / "seed", git_http_server)))
    sleeps: list[float] = []
    with CutProxy(("127.0.0.1", git_http_server.port)) as proxy:
        remote = _remote(proxy.url(git_http_repo.url), tmp_path, git_http_server, sleeps)
        try:
            old = remote.fetch_tip()
            new = _child(remote, old)
            # the push's answer is held (receive-pack has moved the branch meanwhile), then the read of the branch too
            proxy.reset(Cut("down", request=RECEIVE_PACK + b"|" + UPLOAD_REFS, stall=HOLD, times=2))
            assert remote.push(old, new) is True
            assert proxy.fired == 2
        finally:
            remote.mirror.close()
    assert len(sleeps) == 1, "one retry: the re-sent push found its update already there"
    assert _main(git_http_repo) == new
    with Repo(str(git_http_repo.path)) as repo:
        assert repo[new.encode()].parents == [old.encode()]  # one new commit, not two


def test_a_branch_another_writer_moved_is_left_to_the_transaction(git_http_server, git_http_repo, tmp_path):
    assert_ok(run_cli("push", git_http_repo.url, BASE, env=_env(tmp_path / "seed", git_http_server)))
    sleeps: list[float] = []
    with CutProxy(("127.0.0.1", git_http_server.port)) as proxy:
        remote = _remote(proxy.url(git_http_repo.url), tmp_path, git_http_server, sleeps)
        try:
            old = remote.fetch_tip()
            new = _child(remote, old)
            assert_ok(run_cli("push", git_http_repo.url, TOOL, env=_env(tmp_path / "other", git_http_server)))
            moved = _main(git_http_repo)
            proxy.reset(Cut("down", request=RECEIVE_REFS, stall=HOLD, times=1))
            assert remote.push(old, new) is False
            assert proxy.fired == 1
        finally:
            remote.mirror.close()
    assert sleeps == [], "nothing was sent again"
    assert _main(git_http_repo) == moved
