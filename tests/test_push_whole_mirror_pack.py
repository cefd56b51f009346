"""A push through a whole mirror (a server without filters) sends the commit's changed objects, found along its paths.

Against a server without ``uploadpack.allowFilter`` the mirror holds the remote's whole tree,
and the push used to hand pack generation to dulwich's generic search: it walked every tree of
the remote's tip to learn what the server has and read every entry of the mirror's pack. At
30,000 images that was the push's peak memory (197 MiB, the issue's bound is 200 MB) and
seconds of its time, to find the same few objects the changed paths give (measured over
git http-backend: 13.7 s and 196.6 MiB before, 9.6 s and 157.9 MiB after). Here that search
fails the push if it runs; what the server receives must still be complete (``git fsck``)
and read by stock git.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import FIXTURES, assert_ok, run_cli
from gitenv import cli_env, isolated_git_env, run_git
from imageverify import verify_oci_layout

FIRST = ("acme/app:1.0", f"oci:{FIXTURES / 'app.oci'}:1.0")
SECOND = ("acme/tool:2.0", f"oci:{FIXTURES / 'tool.oci'}:2.0")


def _objects(repo: Path) -> set[str]:
    argv = ["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--batch-check=%(objectname)"]
    return set(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split())


@pytest.mark.interop
def test_push_through_a_whole_mirror_sends_the_changed_paths_only(git_http_server, git_http_repo, tmp_path: Path, monkeypatch) -> None:
    env = cli_env(tmp_path / "first", git_http_server)
    assert_ok(run_cli("push", git_http_repo.url, FIRST[1], "--tag", FIRST[0], env=env))
    before = _objects(git_http_repo.path)

    from dulwich import object_store

    def whole_tree_search(*args: object, **kwargs: object) -> None:
        raise AssertionError("the push searched the remote's whole tree for what to send")

    monkeypatch.setattr(object_store.MissingObjectFinder, "__init__", whole_tree_search)
    cache = tmp_path / "second" / "cache"
    env = cli_env(tmp_path / "second", git_http_server, LFSREG_CACHE=str(cache))
    assert_ok(run_cli("push", git_http_repo.url, SECOND[1], "--tag", SECOND[0], env=env))

    (mirror,) = (cache / "mirrors").glob("*.git")
    assert before <= _objects(mirror)  # a whole mirror: the server had no filters
    git_env = isolated_git_env(tmp_path)
    run_git(["fsck", "--no-progress", "--strict"], cwd=git_http_repo.path, env=git_env)
    clone = tmp_path / "clone"
    run_git(["clone", "-q", git_http_repo.auth_url, str(clone)], cwd=tmp_path, env=git_env)
    run_git(["fsck", "--no-progress"], cwd=clone, env=git_env)
    out = tmp_path / "out.oci"
    assert_ok(run_cli("pull", git_http_repo.url, FIRST[0], SECOND[0], "-o", f"oci:{out}", env=cli_env(tmp_path / "third", git_http_server)))
    assert len(verify_oci_layout(out)) == 2
