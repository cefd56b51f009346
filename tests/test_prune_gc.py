"""``lfsreg prune`` and ``lfsreg gc`` on local registries: policies, bytes freed, disk use, races, stock git.

Commit times are set by shifting the clock the registry's commits are stamped with (the
``time`` module seen by :mod:`lfsreg.git.store`), so "set 10 days ago" is a real commit of 10
days ago and prune/gc read it from the history as they would any other.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import assert_error, assert_ok, commit_count, lfs_objects, main_ref, run_cli, snapshot
from dulwich.object_store import tree_lookup_path
from dulwich.repo import Repo
from gitenv import isolated_git_env, run_git
from retention_images import image_archive, shared_layer

import lfsreg
from lfsreg.git import store as git_store
from lfsreg.registry import layout, location

DAY = 86400.0
MIB = 1024 * 1024


class _Clock:
    """The ``time`` module, ``offset`` seconds away."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)

    def time(self) -> float:
        return time.time() + self.offset


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))


def _push(repo: Path, tmp_path: Path, ref: str, seed: str, payload: int = 4096, *, shared: bytes | None = None, ago: float = 0.0) -> str:
    archive = image_archive(tmp_path / f"{seed}.tar", ref, seed, payload, shared=shared)
    saved = git_store.time
    git_store.time = _Clock(-ago)  # type: ignore[assignment]
    try:
        with lfsreg.Registry(str(repo)) as reg:
            result = reg.push([f"docker-archive:{archive}"])
    finally:
        git_store.time = saved
    archive.unlink()
    return str(result.images[0].digest)


def _tags(where: str) -> dict[str, str]:
    proc = run_cli("tags", where, "--format", "json")
    assert_ok(proc)
    return {f"{r['name']}:{r['tag']}": r["digest"] for r in json.loads(proc.stdout)}


def _layer_sizes(repo: Path, digests: list[str]) -> dict[str, int]:
    """``oid -> size`` of the layers of the manifests ``digests``, read with dulwich from main's tree."""
    r = Repo(str(repo))
    tree = r[r.refs[b"refs/heads/main"]].tree
    out = {}
    for digest in digests:
        hexd = digest[7:]
        _, sha = tree_lookup_path(r.object_store.__getitem__, tree, layout.NEW.hex_path("blobs", hexd).encode())
        for layer in json.loads(r[sha].as_raw_string())["layers"]:
            out[layer["digest"][7:]] = layer["size"]
    return out


def _du(path: Path) -> int:
    return int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]) * 1024


def _pull_all(where: str, tags: dict[str, str], tmp_path: Path) -> None:
    for i, (ref, digest) in enumerate(sorted(tags.items())):
        out = tmp_path / f"pull-{i}"
        assert_ok(run_cli("pull", where, ref, "-o", f"oci:{out}"))
        assert [m["digest"] for m in json.loads((out / "index.json").read_text())["manifests"]] == [digest]


# -- prune ------------------------------------------------------------------------------------------


def test_prune_keep_last_untags_the_oldest_and_counts_only_their_bytes(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    base = shared_layer("base", 50_000)
    digests = {
        f"acme/app:v{i}": _push(repo, tmp_path, f"acme/app:v{i}", f"app{i}", 30_000 + i, shared=base, ago=(10 - i) * DAY) for i in range(5)
    }
    other = _push(repo, tmp_path, "acme/other:1", "other", 20_000, ago=20 * DAY)
    head = main_ref(repo)
    dry = run_cli("prune", str(repo), "--keep-last", "2", "--image", "acme/app", "--dry-run", "--format", "json")
    assert_ok(dry)
    planned = json.loads(dry.stdout)
    assert main_ref(repo) == head and planned["commit"] is None and planned["dry_run"] is True
    assert [(p["name"], p["tag"]) for p in planned["pruned"]] == [("acme/app", "v0"), ("acme/app", "v1"), ("acme/app", "v2")]
    # only the pruned images' own layers: the shared base stays with v3 and v4
    own = _layer_sizes(repo, [digests[f"acme/app:v{i}"] for i in range(3)])
    kept = _layer_sizes(repo, [digests["acme/app:v3"], digests["acme/app:v4"], other])
    freed = {oid: size for oid, size in own.items() if oid not in kept}
    assert len(freed) == 3 and planned["layers_freed"] == 3 and planned["bytes_freed"] == sum(freed.values())
    done = run_cli("prune", str(repo), "--keep-last", "2", "--image", "acme/app", "--format", "json")
    assert_ok(done)
    result = json.loads(done.stdout)
    assert result["commit"] == main_ref(repo).decode() and commit_count(repo) == 7
    assert {k: v for k, v in result.items() if k not in ("commit", "dry_run")} == {
        k: v for k, v in planned.items() if k not in ("commit", "dry_run")
    }
    assert set(_tags(str(repo))) == {"acme/app:v3", "acme/app:v4", "acme/other:1"}
    text = run_cli("prune", str(repo), "--keep-last", "2")
    assert_ok(text)
    assert "0 tag(s) untagged, 3 kept" in text.stdout


def test_prune_older_than_protect_and_globs(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    for tag, ago in (("1.0", 40), ("1.1", 35), ("latest", 30), ("dev-1", 20), ("dev-2", 1)):
        _push(repo, tmp_path, f"acme/app:{tag}", f"s-{tag}", ago=ago * DAY)
    _push(repo, tmp_path, "acme/db:dev-0", "db", ago=50 * DAY)
    proc = run_cli("prune", str(repo), "--older-than", "25d", "--protect", "latest", "--protect", "acme/app:1.0", "--format", "json")
    assert_ok(proc)
    assert sorted(f"{p['name']}:{p['tag']}" for p in json.loads(proc.stdout)["pruned"]) == ["acme/app:1.1", "acme/db:dev-0"]
    # keep-last and older-than together: beyond the newest one AND older than 10 days
    proc = run_cli("prune", str(repo), "--tag", "dev-*", "--keep-last", "1", "--older-than", "10d", "--format", "json")
    assert_ok(proc)
    assert [f"{p['name']}:{p['tag']}" for p in json.loads(proc.stdout)["pruned"]] == ["acme/app:dev-1"]
    assert set(_tags(str(repo))) == {"acme/app:1.0", "acme/app:latest", "acme/app:dev-2"}
    # --tag alone untags what it matches
    assert_ok(run_cli("prune", str(repo), "--tag", "dev-*"))
    assert set(_tags(str(repo))) == {"acme/app:1.0", "acme/app:latest"}


def test_prune_without_a_policy_or_with_a_bad_age_is_a_usage_error(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    _push(repo, tmp_path, "acme/app:1", "one")
    head = main_ref(repo)
    assert_error(run_cli("prune", str(repo)), 2, "needs a policy")
    proc = run_cli("prune", str(repo), "--older-than", "ten days")
    assert proc.returncode == 2 and "is not an age" in proc.stderr
    proc = run_cli("gc", str(repo), "--keep-history", "-1d")
    assert proc.returncode == 2 and "is not an age" in proc.stderr
    assert main_ref(repo) == head


# -- gc ---------------------------------------------------------------------------------------------


def test_prune_and_gc_leave_the_live_tags_and_disk_use_near_their_bytes(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    for i in range(12):
        _push(repo, tmp_path, f"ci/build:{i}", f"build{i}", 2 * MIB, ago=(20 - i) * DAY)
    before = _du(repo)
    assert_ok(run_cli("prune", str(repo), "--keep-last", "3"))
    live = _tags(str(repo))
    assert set(live) == {"ci/build:9", "ci/build:10", "ci/build:11"}
    live_bytes = sum(_layer_sizes(repo, list(live.values())).values())
    proc = run_cli("gc", str(repo), "--grace", "0", "--format", "json")
    assert_ok(proc)
    result = json.loads(proc.stdout)
    assert result["live_bytes"] == live_bytes and result["live_layers"] == 3
    assert result["lfs_deleted"] == 9 and result["commits_after"] == 1 and result["squashed"] == 13
    after = _du(repo)
    assert live_bytes <= after <= 1.10 * live_bytes, f"du {after} vs live {live_bytes} (before gc: {before})"
    assert commit_count(repo) == 1
    assert {p.name for p in lfs_objects(repo)} == set(_layer_sizes(repo, list(live.values())))
    assert _tags(str(repo)) == live
    _pull_all(str(repo), live, tmp_path)
    # stock git reads the collected registry cleanly
    env = isolated_git_env(tmp_path)
    run_git(["fsck", "--strict", "--no-dangling"], cwd=repo, env=env)
    clone_env = {**env, "GIT_LFS_SKIP_SMUDGE": "1"}
    run_git(["clone", "--quiet", str(repo), "work"], cwd=tmp_path, env=clone_env)
    work = tmp_path / "work"
    run_git(["lfs", "pull"], cwd=work, env=env)
    assert run_git(["status", "--porcelain"], cwd=work, env=env).stdout == b""
    run_git(["lfs", "fsck"], cwd=work, env=env)
    on_disk = sorted(p.name for p in (work / "layers").rglob("*") if p.is_file())
    assert on_disk == sorted(p.name for p in lfs_objects(repo))
    # a second gc finds nothing to do
    again = run_cli("gc", str(repo), "--grace", "0", "--format", "json")
    assert_ok(again)
    assert json.loads(again.stdout)["commit"] is None and json.loads(again.stdout)["lfs_deleted"] == 0


def test_gc_keeps_recent_history_and_rollback_works_there(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    old = _push(repo, tmp_path, "acme/app:1", "old", 100_000, ago=30 * DAY)
    gone = _push(repo, tmp_path, "acme/tmp:1", "gone", 100_000, ago=29 * DAY)
    assert_ok(run_cli("rm", str(repo), "acme/tmp:1"))  # now, but see below: its commit is in the window
    middle = _push(repo, tmp_path, "acme/app:1", "middle", 100_000, ago=2 * DAY)
    new = _push(repo, tmp_path, "acme/app:1", "new", 100_000, ago=1 * DAY)
    proc = run_cli("gc", str(repo), "--keep-history", "3d", "--grace", "0", "--format", "json")
    assert_ok(proc)
    result = json.loads(proc.stdout)
    # squashed: the two old pushes; kept: rm, middle, new (rm is recent, so acme/tmp's layer is gone only
    # from the commits after it; the squashed base still holds acme/tmp:1, so its layer stays)
    assert result["commits_before"] == 5 and result["commits_after"] == 4 and result["squashed"] == 2
    history = json.loads(run_cli("history", str(repo), "acme/app:1", "--format", "json").stdout)["changes"]
    assert [c["digest"] for c in history] == [new, middle, old]
    assert_ok(run_cli("rollback", str(repo), "acme/app:1", "--to", middle))
    _pull_all(str(repo), {"acme/app:1": middle}, tmp_path)
    assert gone  # (its layer is still referenced by the squashed base)
    assert len(lfs_objects(repo)) == 4


def test_gc_dry_run_changes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    for i in range(3):
        _push(repo, tmp_path, f"acme/app:{i}", f"d{i}", 50_000, ago=DAY)
    assert_ok(run_cli("rm", str(repo), "acme/app:0"))
    before = snapshot(repo)
    proc = run_cli("gc", str(repo), "--grace", "0", "--dry-run", "--format", "json")
    assert_ok(proc)
    result = json.loads(proc.stdout)
    assert result["lfs_deleted"] == 1 and result["lfs_bytes_freed"] > 50_000 and result["commits_after"] == 1
    assert snapshot(repo) == before
    text = run_cli("gc", str(repo), "--grace", "0", "--dry-run")
    assert_ok(text)
    assert "would free" in text.stdout


def test_gc_racing_a_push_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "reg.git"
    for i in range(4):
        _push(repo, tmp_path, f"acme/app:{i}", f"r{i}", 50_000, ago=DAY)
    assert_ok(run_cli("prune", str(repo), "--keep-last", "1"))
    archive = image_archive(tmp_path / "racer.tar", "acme/racer:1", "racer", 60_000)
    swaps: list[bool] = []
    original = location.LocalBackend.swap
    inside = threading.local()

    def swap(self: location.LocalBackend, old: str | None, new: str) -> bool:
        if getattr(inside, "racer", False) or swaps:
            return original(self, old, new)
        inside.racer = True
        try:  # the race: a push lands between gc's read of the tip and its compare-and-swap
            with lfsreg.Registry(str(repo)) as reg:
                reg.push([f"docker-archive:{archive}"])
        finally:
            inside.racer = False
        swaps.append(original(self, old, new))
        return swaps[-1]

    monkeypatch.setattr(location.LocalBackend, "swap", swap)
    proc = run_cli("gc", str(repo), "--grace", "0", "--format", "json")
    assert_ok(proc)
    assert swaps == [False], "gc's first compare-and-swap should have lost the race"
    assert json.loads(proc.stdout)["attempts"] == 2
    tags = _tags(str(repo))
    assert set(tags) == {"acme/app:3", "acme/racer:1"}
    _pull_all(str(repo), tags, tmp_path)
    assert len(lfs_objects(repo)) == 2
    run_git(["fsck", "--strict", "--no-dangling"], cwd=repo, env=isolated_git_env(tmp_path))


def test_gc_keeps_objects_a_running_push_may_reference(tmp_path: Path) -> None:
    """An unreferenced LFS object younger than --grace (a push's, not yet committed) stays."""
    repo = tmp_path / "reg.git"
    _push(repo, tmp_path, "acme/app:1", "a", 50_000)
    _push(repo, tmp_path, "acme/app:2", "b", 50_000)
    assert_ok(run_cli("rm", str(repo), "acme/app:1"))
    objects = lfs_objects(repo)
    assert len(objects) == 2
    proc = run_cli("gc", str(repo), "--format", "json")  # default grace: 1 hour
    assert_ok(proc)
    assert json.loads(proc.stdout)["lfs_deleted"] == 0 and len(lfs_objects(repo)) == 2
    for obj in objects:  # an hour and a minute later
        os.utime(obj, (time.time() - 3660, time.time() - 3660))
    proc = run_cli("gc", str(repo), "--format", "json")
    assert_ok(proc)
    assert json.loads(proc.stdout)["lfs_deleted"] == 1 and len(lfs_objects(repo)) == 1


def test_a_repository_that_is_not_a_registry_is_refused_untouched(tmp_path: Path) -> None:
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "plain.git"
    run_git(["init", "-q", "--bare", str(repo)], cwd=tmp_path, env=env)
    work = tmp_path / "work"
    run_git(["clone", "-q", str(repo), str(work)], cwd=tmp_path, env=env)
    (work / "blobs").mkdir()
    (work / "blobs" / "data").write_text("not a registry\n")
    run_git(["add", "-A"], cwd=work, env=env)
    run_git(["commit", "-qm", "x"], cwd=work, env=env)
    run_git(["push", "-q", "origin", "HEAD:main"], cwd=work, env=env)
    before = snapshot(repo)
    for argv in (["gc"], ["gc", "--dry-run"], ["prune", "--keep-last", "1"], ["history", "a/b"], ["rollback", "a/b:1"]):
        assert_error(run_cli(argv[0], repo, *argv[1:]), 1, "not an lfsreg registry")
    assert snapshot(repo) == before


def test_history_of_a_name_never_tagged(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    _push(repo, tmp_path, "acme/app:1", "one")
    assert_error(run_cli("history", repo, "acme/nope"), 1, "never tagged")
    assert_error(run_cli("history", repo, "acme/app:2"), 1, "never tagged")
