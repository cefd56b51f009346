"""Processes sharing one cache fetch the same pack into the same mirror at the same moment.

dulwich names a fetched pack by its objects, so two processes that fetch the same commits
write the same ``objects/pack/pack-<name>.idx``, under git's lock protocol: the second met
the first one's ``.idx.lock`` and failed with ``internal error: FileLocked`` (seen in the
concurrent-push tests under load). Now it waits for that lock and finds the objects there.
The overlap is forced: the test itself holds that very lock (the pack's name is learnt by
the same fetch into a copy of the mirror), and lets it go after a second.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from conftest import assert_ok, run_cli
from imageverify import FIXTURES

APP = f"oci:{FIXTURES / 'app.oci'}:1.0"
TOOL = f"oci:{FIXTURES / 'tool.oci'}:2.0"
HOLD = 1.5


def _env(tmp_path: Path, cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LFSREG_", "XDG_", "GIT_"))}
    env.update(HOME=str(tmp_path / "home"), LFSREG_CACHE=str(tmp_path / cache))
    return env


def _packs(cache: Path) -> set[str]:
    return {p.name for p in cache.glob("mirrors/*.git/objects/pack/pack-*.pack")}


def test_a_fetch_waits_for_another_process_writing_the_same_pack_index(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    url = f"file://{tmp_path / 'reg.git'}"
    writer, shared = _env(tmp_path, "writer-cache"), _env(tmp_path, "shared-cache")
    assert_ok(run_cli("push", url, APP, "--tag", "acme/app:1.0", env=writer))
    assert_ok(run_cli("tags", url, env=shared))  # the shared cache's mirror
    assert_ok(run_cli("push", url, TOOL, "--tag", "acme/tool:2.0", env=writer))  # the remote moves on

    # The fetch of the new commits, made into a copy of the mirror, names the pack.
    cache = tmp_path / "shared-cache"
    shutil.copytree(cache, tmp_path / "probe-cache")
    before = _packs(tmp_path / "probe-cache")
    assert_ok(run_cli("tags", url, env=_env(tmp_path, "probe-cache")))
    (name,) = _packs(tmp_path / "probe-cache") - before
    (mirror,) = cache.glob("mirrors/*.git")
    lock = mirror / "objects" / "pack" / (name.removesuffix(".pack") + ".idx.lock")

    held = lock.open("wb")  # another process writing that index: live, fresh
    released: list[float] = []

    def release() -> None:
        held.close()
        lock.unlink()
        released.append(time.monotonic())

    timer = threading.Timer(HOLD, release)
    timer.start()
    try:
        proc = run_cli("tags", url, env=shared)
        finished = time.monotonic()
    finally:
        timer.join()
    assert_ok(proc)
    assert "acme/tool" in proc.stdout
    assert released and released[0] <= finished, "the fetch ended while the index was still locked: it met no lock"
    assert not lock.exists()
    assert not list(mirror.glob("objects/pack/tmp*"))
