"""gc never deletes what a push running at the same moment found already stored and will reference.

A push checks that the layers it reuses are stored (``LocalLfsStore.missing``) and writes git
objects that may already be packed (``ObjectFiles.add``) before it commits. Both refresh the
time of what they found, as git does, and gc deletes unreferenced objects only once they are
older than its grace. Each test makes the push's check happen between gc's rewrite and its
deletions (a hook on gc's collection step), on objects made old on purpose.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import assert_ok, lfs_objects, run_cli, tree_files
from dulwich.objects import Blob
from dulwich.repo import Repo
from retention_images import image_archive

from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.git.store import GitStore
from lfsreg.lfs.store import LocalLfsStore
from lfsreg.ops import gc as gc_module
from lfsreg.registry import layout

HOURS_AGO = time.time() - 2 * 3600


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))


def _push(repo: Path, tmp_path: Path, ref: str, seed: str) -> None:
    assert_ok(run_cli("push", repo, f"docker-archive:{image_archive(tmp_path / f'{seed}.tar', ref, seed, 30_000)}"))


def _age(paths: list[Path]) -> None:
    for path in paths:
        os.utime(path, (HOURS_AGO, HOURS_AGO))


def test_gc_keeps_a_layer_a_running_push_found_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "reg.git"
    _push(repo, tmp_path, "acme/a:1", "a")
    _push(repo, tmp_path, "acme/b:1", "b")
    (layer,) = json.loads(run_cli("inspect", repo, "acme/a:1", "--format", "json").stdout)["layers"]
    assert_ok(run_cli("rm", repo, "acme/a:1"))
    _age(lfs_objects(repo))
    checked: list[bool] = []
    real = gc_module.sweep_objects

    def push_checks_then_sweep(*args: object, **kwargs: object) -> object:
        # a push of acme/a again: its layer is stored, so it will not upload it, only reference it
        obj = LfsObject(layer["digest"][7:], layer["size"])
        checked.append(LocalLfsStore(str(repo)).missing([obj]) == [])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gc_module, "sweep_objects", push_checks_then_sweep)
    proc = run_cli("gc", repo, "--format", "json")
    assert_ok(proc)
    assert checked == [True], "the push's check did not run inside gc"
    assert json.loads(proc.stdout)["lfs_deleted"] == 0
    assert layer["digest"][7:] in {p.name for p in lfs_objects(repo)}
    # once old again and not referenced, it goes
    monkeypatch.setattr(gc_module, "sweep_objects", real)
    _age(lfs_objects(repo))
    proc = run_cli("gc", repo, "--format", "json")
    assert_ok(proc)
    assert json.loads(proc.stdout)["lfs_deleted"] == 1


def test_gc_keeps_a_packed_git_object_a_running_push_found_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "reg.git"
    _push(repo, tmp_path, "acme/a:1", "a")
    _push(repo, tmp_path, "acme/b:1", "b")
    digest = json.loads(run_cli("tags", repo, "acme/a", "--format", "json").stdout)[0]["digest"]
    manifest = tree_files(repo, path := layout.NEW.hex_path("blobs", digest[7:]))[path]
    assert_ok(run_cli("gc", repo, "--grace", "0"))  # everything in one pack
    assert_ok(run_cli("rm", repo, "acme/a:1"))
    packs = list((repo / "objects" / "pack").glob("*.pack"))
    assert len(packs) == 1
    _age(packs)
    written: list[bytes] = []
    real = gc_module.collect

    def push_writes_then_collect(*args: object, **kwargs: object) -> object:
        # a push of acme/a again writes its manifest: already stored (packed), so not written again
        git = GitStore.open(str(repo))
        try:
            written.append(git.write_blob(manifest))
        finally:
            git.close()
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gc_module, "collect", push_writes_then_collect)
    assert_ok(run_cli("gc", repo))
    sha = Blob.from_string(manifest).id
    assert written == [sha], "the push's write did not run inside gc"
    assert not (repo / "objects" / sha[:2].decode() / sha[2:].decode()).exists(), "it should have been found packed, not written"
    assert sha in Repo(str(repo)).object_store, "gc deleted an object a running push had found stored"
