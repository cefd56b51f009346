"""Locks and tree edits of lfsreg's own git stores (lfsreg/git/store.py, objects.py, locks.py) at their edges.

A stale lock in a mirror (lfsreg's cache) is removed, not reported; another lfsreg process
that keeps the branch-update guard or the pack lock past the wait is one clear
ConcurrentUpdateError; removing paths a tree does not have changes nothing.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from lfsreg.errors import ConcurrentUpdateError
from lfsreg.git import locks
from lfsreg.git.store import GitStore


def _held(path: str) -> int:
    """An open descriptor holding the advisory lock on ``path`` (as another process would)."""
    fd = os.open(path, os.O_RDONLY | (os.O_CREAT if not os.path.isdir(path) else 0), 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _registry(tmp_path: Path, *, cache: bool = False) -> tuple[GitStore, str]:
    store = GitStore.init(str(tmp_path / "reg.git"), cache=cache)
    commit = store.make_commit(None, {"tags/a": store.write_blob(b"a\n"), "blobs/b/c": store.write_blob(b"c\n")}, "first")
    return store, commit


def test_a_stale_lock_in_a_mirror_is_removed_and_the_fetch_boundary_merged(tmp_path):
    mirror, commit = _registry(tmp_path, cache=True)
    try:
        lock = Path(mirror.repo.controldir()) / "shallow.lock"
        lock.write_bytes(b"")
        old = time.time() - 10 * locks.STALE_AFTER
        os.utime(lock, (old, old))  # left by a process killed long ago; nobody holds it
        mirror.repo.update_shallow({commit.encode()}, None)
        assert not lock.exists()
        assert mirror.shallow() == {commit.encode()}
    finally:
        mirror.close()


def test_a_branch_update_guard_kept_by_another_process_is_one_error(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "LOCK_WAIT", 0.3)
    store, commit = _registry(tmp_path)
    fd = _held(os.path.join(store.repo.controldir(), locks.GUARD))
    try:
        with pytest.raises(ConcurrentUpdateError) as caught:
            store.compare_and_swap(None, commit)
        assert "another lfsreg process kept updating the branch" in str(caught.value)
        assert store.head() is None  # the branch was not touched
    finally:
        os.close(fd)
        store.close()
    store = GitStore.open(str(tmp_path / "reg.git"))
    try:
        assert store.compare_and_swap(None, commit)  # once it is released, the update goes through
        assert store.head() == commit
    finally:
        store.close()


def test_a_pack_lock_kept_by_another_process_is_one_error(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "LOCK_WAIT", 0.3)
    store, _ = _registry(tmp_path)
    fd = _held(os.path.join(store.objects.path, "pack"))
    entered = []
    try:
        with pytest.raises(ConcurrentUpdateError) as caught, store.objects.pack_writes():
            entered.append(True)
        assert "another lfsreg process kept adding objects" in str(caught.value)
        assert entered == []
    finally:
        os.close(fd)
        store.close()


def test_removing_paths_a_tree_lacks_changes_nothing(tmp_path):
    store, commit = _registry(tmp_path)
    try:
        again = store.make_commit(commit, {"tags/none": None, "gone": None, "nothing/here": None}, "no-op")
        assert store.repo[again.encode()].tree == store.repo[commit.encode()].tree
        assert store.snapshot(again).read("blobs/b/c") == b"c\n"
    finally:
        store.close()
