"""Processes sharing one cache meet in its mirror of a remote: each meeting point forced, not hoped for.

The soak tests (test_remote_concurrency: pushers; test_mirror_fetch_race: readers) release
several processes through one cache at once and hope they collide. Here each place where they
can collide is made to happen once, and the test checks that it did:

* the mirror's copy of the remote's branch (``refs/remotes/origin/main``) is a hint that the
  last writer sets: a push that lands while another process holds that ref's lock exits 0 with
  its tag published, and leaves the other's lock alone (over HTTPS a pusher once exited 1 on
  ``FileLocked`` after its tag had landed);
* objects are added to the mirror by one process at a time (the lock on ``objects/pack``): a
  fetch waits while another holds it, then completes (two fetching the same pack at once met
  on its index's lock or read a half-written index).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import assert_ok, run_cli
from gitenv import cli_env
from imageverify import FIXTURES, lfsreg

import lfsreg as lfsreg_api
from lfsreg.api import RemoteOptions
from lfsreg.git import locks

APP = f"oci:{FIXTURES / 'app.oci'}:1.0"
TOOL = f"oci:{FIXTURES / 'tool.oci'}:2.0"
WAIT = 60.0  # seconds a test waits for the other side before failing


def _mirror(cache: Path) -> Path:
    (mirror,) = (cache / "mirrors").glob("*.git")
    return mirror


def _tags(url: str, env: dict[str, str]) -> set[str]:
    proc = run_cli("tags", url, "--format", "json", env=env)
    assert_ok(proc)
    return {f"{row['name']}:{row['tag']}" for row in json.loads(proc.stdout)}


def _remote(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    if kind == "https":
        server, repo = request.getfixturevalue("git_http_server"), request.getfixturevalue("git_http_repo")
        return repo.url, cli_env(tmp_path, server)
    repo = tmp_path / "remote.git"
    lfsreg("init", repo)
    return repo.as_uri(), cli_env(tmp_path)


@pytest.mark.parametrize("kind", ["file-url", pytest.param("https", marks=pytest.mark.interop)])
def test_a_push_lands_while_another_process_holds_the_mirrors_branch_lock(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, env = _remote(kind, tmp_path, request)
    assert_ok(run_cli("push", url, APP, "--tag", "mirror/a:1", env=env))
    mirror_ref = _mirror(tmp_path / "cache") / "refs" / "remotes" / "origin" / "main"
    noted = mirror_ref.read_text()
    lock = mirror_ref.with_name("main.lock")
    with open(lock, "w"):  # another process of this user, writing the same hint right now
        proc = run_cli("push", url, TOOL, "--tag", "mirror/a:2", env=env)
        assert_ok(proc)
        assert lock.exists(), "a live writer's lock was taken away"
        assert mirror_ref.read_text() == noted, "the push did not meet the lock (the mirror's ref moved)"
    lock.unlink()
    assert _tags(url, env) == {"mirror/a:1", "mirror/a:2"}  # exit 0, and the tag is there
    assert mirror_ref.read_text() != noted  # with the lock gone the hint follows the remote again


def test_a_fetch_waits_while_another_process_adds_objects_to_the_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "remote.git"
    lfsreg("init", repo)
    cache = tmp_path / "cache"
    url = repo.as_uri()
    with lfsreg_api.Registry(url, options=RemoteOptions(cache_dir=str(cache))) as reg:
        reg.push([APP], tags=["mirror/b:1"])
    lfsreg("push", repo, TOOL, "--tag", "mirror/b:2")  # straight into the remote: the mirror lacks it
    waiting = threading.Event()
    original = locks.flock_within

    def flock_within(fd: int, wait: float) -> bool:
        waiting.set()
        return original(fd, wait)

    monkeypatch.setattr(locks, "flock_within", flock_within)
    result: list[object] = []

    def read() -> None:
        try:
            with lfsreg_api.Registry(url, options=RemoteOptions(cache_dir=str(cache))) as reg:
                result.append({f"{t.name}:{t.tag}" for t in reg.tags()})
        except BaseException as exc:  # handed to the test's thread
            result.append(exc)

    pack_dir = _mirror(cache) / "objects" / "pack"
    fd = os.open(pack_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process adding a pack to the mirror
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + WAIT
        while not waiting.wait(0.01):
            assert reader.is_alive(), f"the fetch ended without asking for the mirror's pack lock: {result}"
            assert time.monotonic() < deadline, "the fetch never asked for the mirror's pack lock"
        reader.join(0.3)
        assert reader.is_alive() and not result, f"the fetch did not wait for the pack lock: {result}"
    finally:
        os.close(fd)  # released: the fetch goes on
    reader.join(WAIT)
    assert not reader.is_alive(), "the fetch did not finish once the lock was released"
    assert result == [{"mirror/b:1", "mirror/b:2"}]
