"""prune and gc over HTTP (nginx + git http-backend + giftless): the branch is rewritten on the
server by compare-and-swap, and gc says what the host must do to give the space back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import assert_ok, run_cli
from dulwich.repo import Repo
from gitenv import isolated_git_env, run_git
from retention_images import image_archive

pytestmark = pytest.mark.interop


def _env(tmp_path: Path, server, cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LFSREG_", "XDG_"))}
    env.update(LFSREG_USERNAME=server.user, LFSREG_PASSWORD=server.password, LFSREG_CACHE=str(tmp_path / cache))
    return env


def _server_history(repo: Path) -> list[bytes]:
    r = Repo(str(repo))
    return [e.commit.id for e in r.get_walker(include=[r.refs[b"refs/heads/main"]])]


def _tags(url: str, env: dict[str, str]) -> dict[str, str]:
    proc = run_cli("tags", url, "--format", "json", env=env)
    assert_ok(proc)
    return {f"{r['name']}:{r['tag']}": r["digest"] for r in json.loads(proc.stdout)}


def test_prune_and_gc_over_http(git_http_server, git_http_repo, tmp_path: Path) -> None:
    url = git_http_repo.url
    env = _env(tmp_path, git_http_server, "c1")
    for i in range(4):
        archive = image_archive(tmp_path / f"i{i}.tar", f"ci/app:{i}", f"http{i}", 40_000)
        assert_ok(run_cli("push", url, f"docker-archive:{archive}", env=env))
    proc = run_cli("prune", url, "--keep-last", "2", "--format", "json", env=env)
    assert_ok(proc)
    pruned = json.loads(proc.stdout)
    assert [p["tag"] for p in pruned["pruned"]] == ["0", "1"] and pruned["layers_freed"] == 2
    live = _tags(url, env)
    assert set(live) == {"ci/app:2", "ci/app:3"}
    assert len(_server_history(git_http_repo.path)) == 5

    dry = run_cli("gc", url, "--dry-run", "--format", "json", env=env)
    assert_ok(dry)
    planned = json.loads(dry.stdout)
    assert planned["local"] is False and planned["commits_after"] == 1 and planned["live_layers"] == 2
    assert planned["referenced_bytes"] > planned["live_bytes"] > 80_000
    assert len(_server_history(git_http_repo.path)) == 5

    commit_map = tmp_path / "commit-map"
    proc = run_cli("gc", url, "--commit-map", commit_map, env=env)
    assert_ok(proc)
    assert "note: the host keeps" in proc.stdout and "Repository cleanup" in proc.stdout and "lfsreg copy" in proc.stdout
    history = _server_history(git_http_repo.path)
    assert len(history) == 1
    lines = commit_map.read_text().splitlines()
    assert lines[0] == "old new" and len(lines) == 6 and {line.split()[1] for line in lines[1:]} == {history[0].decode()}

    # a pusher whose mirror still has the old history lands on top of the rewritten branch
    archive = image_archive(tmp_path / "late.tar", "ci/app:4", "late", 40_000)
    assert_ok(run_cli("push", url, f"docker-archive:{archive}", env=env))
    assert len(_server_history(git_http_repo.path)) == 2
    # a fresh clone of the server: the live tags pull, and stock git sees a clean repository
    fresh = _env(tmp_path, git_http_server, "c2")
    tags = _tags(url, fresh)
    assert set(tags) == {"ci/app:2", "ci/app:3", "ci/app:4"}
    for i, (ref, digest) in enumerate(sorted(tags.items())):
        out = tmp_path / f"pull-{i}"
        assert_ok(run_cli("pull", url, ref, "-o", f"oci:{out}", env=fresh))
        assert [m["digest"] for m in json.loads((out / "index.json").read_text())["manifests"]] == [digest]
    history_after = json.loads(run_cli("history", url, "ci/app", "--format", "json", env=fresh).stdout)
    # the squashed commit created the live tags; the late push came after it
    assert [(c["tag"], c["action"]) for c in history_after["changes"]] == [("4", "created"), ("2", "created"), ("3", "created")]
    run_git(["fsck", "--strict"], cwd=git_http_repo.path, env=isolated_git_env(tmp_path))
