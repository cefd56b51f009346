"""Packing a local registry sweeps what killed writers left in ``objects/`` (lfsreg/git/objects.py).

A registry is filled past git's auto-pack threshold with loose objects; temporary object files
and object locks are planted where a killed writer leaves them (an hour old, and fresh). The
next push packs, and the sweep after it removes the old temporary file and the stale lock,
keeps the fresh temporary file (its writer may still be alive), and stock ``git fsck`` finds
nothing to say.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import assert_ok, run_cli
from gitenv import isolated_git_env
from imageverify import FIXTURES
from test_git_durability import _fill_with_loose_objects, fsck_clean

import lfsreg

HOUR_AGO = time.time() - 3700


def test_the_push_that_packs_sweeps_old_leftovers_and_keeps_fresh_ones(tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    lfsreg.Registry(str(repo)).init()
    _fill_with_loose_objects(repo, 7400)
    fanout = repo / "objects" / "ab"
    fanout.mkdir(exist_ok=True)
    old_tmp, fresh_tmp, old_lock = fanout / "tmp_obj_old123", fanout / "tmp_obj_new456", fanout / ("c" * 38 + ".lock")
    for path in (old_tmp, fresh_tmp, old_lock):
        path.write_bytes(b"half an object")
    for path in (old_tmp, old_lock):
        os.utime(path, (HOUR_AGO, HOUR_AGO))
    assert_ok(run_cli("push", repo, f"oci:{FIXTURES / 'app.oci'}:1.0", "--tag", "acme/app:1"))
    assert list((repo / "objects" / "pack").glob("*.pack")), "the push did not pack"
    assert not old_tmp.exists() and not old_lock.exists()
    assert fresh_tmp.exists()
    fresh_tmp.unlink()  # git fsck would name it; it is the one thing the sweep must keep
    fsck_clean(repo, isolated_git_env(tmp_path))
