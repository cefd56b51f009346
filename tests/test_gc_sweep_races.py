"""gc's sweep of a local registry's LFS objects when the file system or a push gets in its way
(lfsreg/lfs/collect.py): an object refreshed between gc's look and its rename stays, one that
cannot be renamed aside or deleted stays where it was, and the rest are deleted.

The interference is injected at the ``os`` calls the sweep makes (a concurrent push's refresh
is an ``os.utime``; a failing file system raises ``OSError``): the objects, registry and gc are real.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from conftest import lfs_objects, run_cli
from imageverify import FIXTURES

import lfsreg

APP = "acme/app:1.0"


@pytest.fixture
def orphaned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry whose only tag was removed: its 3 LFS objects are garbage."""
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "reg.git"
    assert run_cli("push", repo, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", APP).returncode == 0
    assert run_cli("rm", str(repo), APP).returncode == 0
    assert len(lfs_objects(repo)) == 3
    return repo


def _victim(repo: Path) -> Path:
    return sorted(lfs_objects(repo))[0]


def _gc(repo: Path):
    with lfsreg.Registry(str(repo)) as reg:
        return reg.gc(grace=0)


def test_an_object_refreshed_before_the_rename_stays(orphaned, monkeypatch):
    victim = _victim(orphaned)
    real = os.rename

    def rename(src, dst, *a, **kw):
        if str(src) == str(victim) and "gc-" in os.path.basename(str(dst)):
            os.utime(src)  # a push found it stored just now
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(os, "rename", rename)
    result = _gc(orphaned)
    assert [p.name for p in lfs_objects(orphaned)] == [victim.name]
    assert result.lfs_deleted == 2
    assert not list((orphaned / "lfs" / "tmp").iterdir())


def test_an_object_that_cannot_be_renamed_aside_stays(orphaned, caplog):
    victim = _victim(orphaned)
    blocker = orphaned / "lfs" / "tmp" / f"gc-{os.getpid()}-{victim.name}"
    (blocker / "x").mkdir(parents=True)  # a non-empty directory where the sweep renames it to
    with caplog.at_level(logging.WARNING, logger="lfsreg.lfs.collect"):
        result = _gc(orphaned)
    assert [p.name for p in lfs_objects(orphaned)] == [victim.name]
    assert result.lfs_deleted == 2
    assert any("could not delete" in r.getMessage() and victim.name in r.getMessage() for r in caplog.records)


def test_an_object_that_cannot_be_deleted_is_put_back(orphaned, monkeypatch, caplog):
    victim = _victim(orphaned)
    data = victim.read_bytes()
    real = os.unlink

    def unlink(path, *a, **kw):
        if os.path.basename(str(path)) == f"gc-{os.getpid()}-{victim.name}":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(os, "unlink", unlink)
    with caplog.at_level(logging.WARNING, logger="lfsreg.lfs.collect"):
        result = _gc(orphaned)
    assert [p.name for p in lfs_objects(orphaned)] == [victim.name]
    assert victim.read_bytes() == data
    assert result.lfs_deleted == 2
    assert any("could not delete" in r.getMessage() for r in caplog.records)
