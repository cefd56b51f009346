"""Durability of the git side of a local registry: locks left by killed writers, packing.

A full disk (a real one) is tested in ``test_disk_full.py``.

Each test drives the real CLI in a subprocess against a real bare repository and checks the
result with stock ``git`` (``git fsck`` must not complain: no ``bad sha1 file``, no errors).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from dulwich.objects import Blob
from dulwich.repo import Repo
from gitenv import isolated_git_env, run_git
from imageverify import FIXTURES, lfsreg, tags_of
from test_concurrency import check_history, head, push_argv, pushed_digest, run_concurrently

APP = f"oci:{FIXTURES / 'app.oci'}:1.0"
TOOL = f"oci:{FIXTURES / 'tool.oci'}:2.0"
HOUR_AGO = time.time() - 3600


def fsck_clean(repo: Path, env: dict[str, str]) -> None:
    """Stock ``git fsck`` finds nothing to say about ``repo`` (it exits 0 even on stray files)."""
    proc = run_git(["fsck", "--full", "--strict", "--no-dangling"], cwd=repo, env=env)
    complaints = [line for line in proc.stderr.decode().splitlines() if not line.startswith(("Checking", "notice:"))]
    assert complaints == [], complaints


def leftovers(repo: Path) -> list[str]:
    """Lock and temporary files under ``objects/`` and ``refs/``."""
    found = []
    for top in ("objects", "refs"):
        for path in (repo / top).rglob("*"):
            if path.name.endswith(".lock") or path.name.startswith("tmp_obj_"):
                found.append(str(path.relative_to(repo)))
    return sorted(found)


def object_ids(repo: Path, env: dict[str, str], kinds: tuple[str, ...]) -> list[str]:
    """Ids of the objects of ``kinds`` reachable from ``main``."""
    listing = run_git(["rev-list", "--objects", "refs/heads/main"], cwd=repo, env=env).stdout.decode().split()
    ids = [word for word in listing if len(word) == 40]
    types = run_git(["cat-file", "--batch-check=%(objectname) %(objecttype)"], cwd=repo, env=env, input_bytes="\n".join(ids).encode())
    return [line.split()[0] for line in types.stdout.decode().splitlines() if line.split()[1] in kinds]


def test_object_locks_left_by_a_killed_push_do_not_block_later_pushes(tmp_path: Path, monkeypatch) -> None:
    """Defect #2: a push killed while writing an object left ``objects/xx/<sha>.lock``.

    Every later push that needed that object waited 10 s and failed with ``internal error:
    FileLocked``. The locks are planted where a killed writer of dulwich's lock protocol
    leaves them: for every blob and tree the push below writes, an hour old, as well as
    fresh ones (the push right after a kill) that no process holds.
    """
    env = isolated_git_env(tmp_path)
    model, repo = tmp_path / "model.git", tmp_path / "reg.git"
    for registry in (model, repo):
        lfsreg("init", registry)
    lfsreg("push", model, APP, "--tag", "acme/app:1.0")
    planted = set(object_ids(model, env, ("blob", "tree"))) - set(object_ids(repo, env, ("blob", "tree")))
    assert len(planted) > 10
    for sha in planted:
        lock = repo / "objects" / sha[:2] / f"{sha[2:]}.lock"
        lock.parent.mkdir(exist_ok=True)
        lock.write_bytes(b"half an object")
        if int(sha, 16) % 2:
            os.utime(lock, (HOUR_AGO, HOUR_AGO))

    # Whether the push waited on the locks: the sleeps it asked for, counted in this process (a
    # wait on a lock is a loop of sleeps; dulwich's was 10 s), not its wall time, which a loaded
    # machine stretches (a bound of 2 x a baseline push + 5 s failed at load 12-24).
    slept: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda seconds: (slept.append(seconds), real_sleep(seconds))[1])
    result = lfsreg("push", repo, APP, "--tag", "acme/app:1.0", check=False)
    monkeypatch.undo()
    assert result.returncode == 0, result.stderr
    assert sum(slept) < 0.5, f"the push waited on the dead writer's locks: slept {sum(slept):.1f} s in {len(slept)} naps"
    assert tags_of(repo) == tags_of(model)
    assert leftovers(repo) == []
    fsck_clean(repo, env)


def test_stale_branch_lock_is_named_with_the_way_out(tmp_path: Path) -> None:
    """Defect #2: a stale ``refs/heads/main.lock`` made every push fail without naming it."""
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    lfsreg("push", repo, APP, "--tag", "acme/app:1.0")
    before = head(repo, env)
    lock = repo / "refs" / "heads" / "main.lock"
    lock.write_text(f"{before}\n")
    os.utime(lock, (HOUR_AGO, HOUR_AGO))

    started = time.monotonic()
    result = lfsreg("push", repo, TOOL, "--tag", "acme/tool:2.0", check=False, spawn=True)
    assert time.monotonic() - started < 8, "a lock an hour old is stale: no need to wait for it"
    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert str(lock) in result.stderr
    assert f"rm '{lock}'" in result.stderr  # the way out
    assert head(repo, env) == before

    lock.unlink()
    lfsreg("push", repo, TOOL, "--tag", "acme/tool:2.0", spawn=True)
    assert set(tags_of(repo)) == {"acme/app:1.0", "acme/tool:2.0"}
    fsck_clean(repo, env)


def test_branch_lock_held_by_a_live_process_is_waited_for(tmp_path: Path) -> None:
    """A fresh lock that a running process holds open is another writer at work: wait, then push."""
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    lfsreg("push", repo, APP, "--tag", "acme/app:1.0")
    lock = repo / "refs" / "heads" / "main.lock"
    holder = lock.open("w")  # held open by this (live) process, as a writer would
    release = threading.Timer(2.0, lambda: (holder.close(), lock.unlink()))
    release.start()
    try:
        result = lfsreg("push", repo, TOOL, "--tag", "acme/tool:2.0", check=False, spawn=True)
    finally:
        release.join()
    assert result.returncode == 0, result.stderr
    assert set(tags_of(repo)) == {"acme/app:1.0", "acme/tool:2.0"}
    check_history(repo, env, 2)


def _fill_with_loose_objects(repo: Path, count: int) -> None:
    """``count`` unreferenced loose blobs, as a few hundred pushes leave behind."""
    store = Repo(str(repo)).object_store
    try:
        for i in range(count):
            store.add_object(Blob.from_string(b"filler %d\n" % i))
    finally:
        store.close()


def test_concurrent_pushes_past_the_auto_pack_threshold_all_succeed(tmp_path: Path) -> None:
    """Defect #3: past git's auto-pack threshold, 7 of 8 concurrent pushes exited 1 with their tags published.

    Every pusher packed the loose objects after its ref swap, at the same time as the others
    read and packed them. Now: one packs, nobody fails, every exit code tells the truth.
    """
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    lfsreg("init", repo)
    _fill_with_loose_objects(repo, 7400)
    sources = [APP, TOOL, f"docker-archive:{FIXTURES / 'app.docker.tar'}", f"docker-archive:{FIXTURES / 'tool.docker.tar'}"] * 2
    wanted = {f"pack/img:t{i}": source for i, source in enumerate(sources)}
    results = run_concurrently(tmp_path / "run", [push_argv(repo, s, t) for t, s in wanted.items()])
    failures = [f"{r.args[4]}: exit {r.returncode}: {r.stderr.strip()}" for r in results if r.returncode != 0]
    assert not failures, "; ".join(failures)
    reported = {tag: pushed_digest(r) for tag, r in zip(wanted, results, strict=True)}
    assert tags_of(repo) == reported
    assert list((repo / "objects" / "pack").glob("*.pack")), "nobody packed"
    check_history(repo, env, 1 + len(sources))
    assert leftovers(repo) == []
    fsck_clean(repo, env)
