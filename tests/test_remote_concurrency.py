"""One user pushing many tags at once to one remote registry (defect #3 of issue 8).

The pushers are separate processes that share one cache, hence one mirror of the remote: its
refs and ``shallow`` file are written by all of them. Every push must land, and each exit
code must tell the truth (0 exactly when the tag landed), over ``file://`` (dulwich writes the
remote's refs in the pushing process) and over HTTPS (stock ``git http-backend``).

This is the soak form: the processes are released together and collide where they happen to.
Each place where they can collide is also forced once, deterministically: the remote's branch
moved or locked between fetch and push (test_forced_races), the mirror's branch hint locked by
another writer and its pack lock held by another fetch (test_shared_mirror_locks). So the
rounds here are few: a cold cache, then a warm one.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli
from gitenv import cli_env, isolated_git_env, run_git
from imageverify import FIXTURES, lfsreg, tags_of
from test_concurrency import check_history, run_concurrently
from test_git_durability import fsck_clean

from lfsreg.git import locks

PUSHERS = 5  # processes per round; each colliding point is also forced (see above)
SOURCES = [
    f"oci:{FIXTURES / 'app.oci'}:1.0",
    f"oci:{FIXTURES / 'tool.oci'}:2.0",
    f"docker-archive:{FIXTURES / 'base.docker.tar'}",
    f"oci:{FIXTURES / 'app-zstd.oci'}:1.0",
]


# Locks are held 30 ms longer (a slow disk): the pushers really meet each other's locks.
_env = functools.partial(cli_env, SLOW_GIT_LOCKS="0.03")


def _push_all(tmp_path: Path, url: str, env: dict[str, str], run: str) -> dict[str, subprocess.CompletedProcess[str]]:
    tags = {f"same/user:{run}-{i}": SOURCES[i % len(SOURCES)] for i in range(PUSHERS)}
    argvs = [["push", url, source, "--tag", tag] for tag, source in tags.items()]
    results = run_concurrently(tmp_path / run, argvs, env=env)
    return dict(zip(tags, results, strict=True))


def _exit_codes_tell_the_truth(results: dict[str, subprocess.CompletedProcess[str]], landed: set[str]) -> None:
    lies = [
        f"{tag}: exit {r.returncode} but {'landed' if tag in landed else 'absent'}: {r.stderr.strip()}"
        for tag, r in results.items()
        if (r.returncode == 0) != (tag in landed)
    ]
    assert not lies, "; ".join(lies)
    failures = [f"{tag}: exit {r.returncode}: {r.stderr.strip()}" for tag, r in results.items() if r.returncode != 0]
    assert not failures, "; ".join(failures)


@pytest.mark.parametrize("init", ["lfsreg-init", "git-init-bare"])
def test_one_user_pushes_many_tags_at_once_over_file_url(tmp_path: Path, init: str) -> None:
    """Over ``file://`` the pushers met the remote's locked branch and failed instead of re-applying."""
    git_env = isolated_git_env(tmp_path)
    repo = tmp_path / "remote.git"
    if init == "lfsreg-init":
        lfsreg("init", repo)
    else:
        run_git(["init", "--quiet", "--bare", repo], cwd=tmp_path, env=git_env)
    env = _env(tmp_path)
    landed: set[str] = set()
    all_results = {}
    for run in ("r1", "r2"):
        results = _push_all(tmp_path, f"file://{repo}", env, run)
        all_results.update(results)
        landed = set(tags_of(repo))
        _exit_codes_tell_the_truth(results, landed & set(results))
    assert landed == set(all_results)
    check_history(repo, git_env, len(all_results) + (1 if init == "lfsreg-init" else 0))
    fsck_clean(repo, git_env)


@pytest.mark.interop
def test_one_user_pushes_many_tags_at_once_over_https(git_http_server, git_http_repo, tmp_path: Path) -> None:
    """Over HTTPS 1 of 8 pushers failed on ``FileLocked`` in the shared mirror, once after its tag landed (now forced too)."""
    git_env = isolated_git_env(tmp_path)
    env = _env(tmp_path, LFSREG_USERNAME=git_http_server.user, LFSREG_PASSWORD=git_http_server.password)
    all_results = {}
    for run in ("r1", "r2"):
        results = _push_all(tmp_path, git_http_repo.url, env, run)
        all_results.update(results)
        listed = run_cli("tags", git_http_repo.url, "--format", "json", env=env)
        assert listed.returncode == 0, listed.stderr
        landed = {f"{row['name']}:{row['tag']}" for row in json.loads(listed.stdout)}
        _exit_codes_tell_the_truth(results, landed & set(results))
    check_history(git_http_repo.path, git_env, len(all_results))
    fsck_clean(git_http_repo.path, git_env)


@pytest.mark.interop
def test_stale_branch_lock_on_the_server_is_reported_with_the_way_out(git_http_server, git_http_repo, tmp_path: Path, monkeypatch) -> None:
    """A ``main.lock`` left on the server (by a killed ``git receive-pack``): one clear line naming it, main unchanged."""
    # The push re-applies while the server says the branch is locked, for LOCK_WAIT (10 s), then
    # gives up; the CLI runs in this process, so a shorter wait takes the same path.
    monkeypatch.setattr(locks, "LOCK_WAIT", 1.5)
    env = _env(tmp_path, LFSREG_USERNAME=git_http_server.user, LFSREG_PASSWORD=git_http_server.password)
    env.pop("SLOW_GIT_LOCKS")
    first = run_cli("push", git_http_repo.url, SOURCES[0], "--tag", "a/b:1", env=env)
    assert first.returncode == 0, first.stderr
    lock = git_http_repo.path / "refs" / "heads" / "main.lock"
    before = (git_http_repo.path / "refs" / "heads" / "main").read_text()
    lock.write_text(before)
    proc = run_cli("push", git_http_repo.url, SOURCES[1], "--tag", "a/b:2", env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert "main.lock" in proc.stderr and "hint: " in proc.stderr, proc.stderr
    assert (git_http_repo.path / "refs" / "heads" / "main").read_text() == before
    lock.unlink()
    again = run_cli("push", git_http_repo.url, SOURCES[1], "--tag", "a/b:2", env=env)
    assert again.returncode == 0, again.stderr
