"""A real full disk at each stage of push and pull: one clear line, nothing half-written, then it works.

Each test mounts a small tmpfs (as root; under ``CI`` a failed mount fails the test) and
fills it to the last byte at the stage under test (``tests/cli_at.py fill`` fills it when a
chosen lfsreg function is first called, so the earlier stages had room). The kernel then
answers a real ``ENOSPC``. The command must exit 1 with one ``lfsreg: error:`` line naming
the path on the full disk, leave no lock, temporary or partial file, leave the registry as
it was (branch, tags, every object whole: stock ``git fsck``), and succeed once the space is
free again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import forkserver
import pytest
from conftest import CLI_TIMEOUT, assert_error, assert_ok, describe, run_cli
from gitenv import cli_env, isolated_git_env, run_git
from imageverify import FIXTURES, tags_of, verify_docker_archive, verify_oci_layout

APP = f"oci:{FIXTURES / 'app.oci'}:1.0"
TOOL = f"oci:{FIXTURES / 'tool.oci'}:2.0"
NO_SPACE = "No space left on device"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs mounted at ``tmp_path/disk`` for this test (unmounted after it)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3M,mode=755", "tmpfs", str(mount)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        msg = f"cannot mount a tmpfs for a real full disk (needs root): {proc.stderr.strip()}"
        if "CI" in os.environ:
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The CLI's environment: its own home and cache (on the ordinary disk)."""
    return cli_env(tmp_path)


def cli(env: dict[str, str], *args: object) -> subprocess.CompletedProcess[str]:
    """Run the CLI with room on every disk (in this process: the state before and the retry after)."""
    return run_cli(*args, env=env)


def run_filled(env: dict[str, str], disk: Path, hook: str, *args: object) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a process of its own (forked: tests/forkserver.py), filling ``disk`` when ``hook`` is first called.

    ``hook`` ``-``: before the command starts.
    """
    return forkserver.run(["fill", disk, hook, "--", *args], env=env, entry="cli_at", timeout=CLI_TIMEOUT)


def free(disk: Path) -> None:
    """Give the space back."""
    (disk / "filler").unlink()


def assert_disk_full(proc: subprocess.CompletedProcess[str], disk: Path) -> None:
    """Exit 1, one error line naming a path on ``disk`` and the full disk, the hint to free space."""
    line = assert_error(proc, 1, str(disk), NO_SPACE)
    assert "Exception ignored" not in proc.stderr, describe(proc)
    assert "hint: free some space" in proc.stderr, describe(proc)
    assert line


def leftovers(root: Path) -> list[str]:
    """Locks, temporary and staged files anywhere under ``root`` (the filler aside)."""
    found = []
    for path in root.rglob("*"):
        name = path.name
        if path.is_dir() or path.name == "filler":
            continue
        rel = str(path.relative_to(root))
        if (
            name.endswith((".lock", ".part"))
            or name.startswith(("tmp_obj_", "lfsreg-", ".lfsreg", "tmp"))
            or "/tmp/" in f"/{rel}"
            or "/incomplete/" in f"/{rel}"
        ) and name != "lfsreg-ref-update":
            found.append(rel)
    return sorted(found)


def registry_state(repo: Path, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The branch's commit and the tags: what a failed command must not change."""
    head = run_git(["rev-parse", "refs/heads/main"], cwd=repo, env=env).stdout.decode().strip()
    return head, tags_of(repo)


def check_whole(repo: Path, env: dict[str, str]) -> None:
    """Stock ``git fsck`` finds nothing wrong, and every LFS object hashes to its name."""
    proc = run_git(["fsck", "--full", "--strict", "--no-dangling"], cwd=repo, env=env)
    complaints = [line for line in proc.stderr.decode().splitlines() if not line.startswith(("Checking", "notice:"))]
    assert complaints == [], complaints
    for path in (repo / "lfs" / "objects").rglob("*"):
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"{path}: half-written LFS object"


@pytest.fixture
def git_env(tmp_path: Path) -> dict[str, str]:
    return isolated_git_env(tmp_path / "git")


def _pushed_once(env: dict[str, str], url: str) -> None:
    assert_ok(cli(env, "push", url, APP, "--tag", "acme/app:1.0"))


# -- push: a local registry -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stage", "hook", "source"),
    [
        # layers staged in the registry's lfs/tmp: the first write of a push of new layers
        ("staging", "lfsreg.lfs.store:LocalLfsStore.staging", TOOL),
        # the layers are in (same image): the push writes git objects only
        ("git objects", "lfsreg.git.store:GitStore.make_commit", APP),
        # every object written: the branch's new value cannot be written
        ("ref update", "lfsreg.git.locks:ref_update", APP),
    ],
)
def test_local_registry_full_disk(disk: Path, env: dict[str, str], git_env: dict[str, str], stage: str, hook: str, source: str) -> None:
    """A full disk at each stage of a push into a registry on this machine."""
    repo = disk / "reg.git"
    _pushed_once(env, repo)
    before = registry_state(repo, git_env)

    proc = run_filled(env, disk, hook, "push", repo, source, "--tag", "acme/next:1.0")
    assert_disk_full(proc, disk)
    assert leftovers(disk) == []
    free(disk)
    assert registry_state(repo, git_env) == before
    check_whole(repo, git_env)

    assert_ok(cli(env, "push", repo, source, "--tag", "acme/next:1.0"))
    assert set(tags_of(repo)) == {"acme/app:1.0", "acme/next:1.0"}
    assert leftovers(disk) == []
    check_whole(repo, git_env)


# -- push: a file:// registry (the layers go into its lfs/ through the LFS store) ---------------------
@pytest.mark.parametrize(
    ("stage", "hook", "source"),
    [
        ("LFS store", "lfsreg.lfs.filestore:FileRemote.upload", TOOL),
        ("git objects", "lfsreg.git.remote:GitRemote.push", APP),
        ("ref update", "lfsreg.git.locks:ref_update", APP),
    ],
)
def test_file_url_registry_full_disk(disk: Path, env: dict[str, str], git_env: dict[str, str], stage: str, hook: str, source: str) -> None:
    """A full disk under a ``file://`` registry; the cache (and its mirror) have room."""
    repo = disk / "reg.git"
    url = f"file://{repo}"
    _pushed_once(env, url)
    before = registry_state(repo, git_env)

    proc = run_filled(env, disk, hook, "push", url, source, "--tag", "acme/next:1.0")
    assert_disk_full(proc, disk)
    assert leftovers(disk) == []
    free(disk)
    assert registry_state(repo, git_env) == before
    check_whole(repo, git_env)

    assert_ok(cli(env, "push", url, source, "--tag", "acme/next:1.0"))
    assert set(tags_of(repo)) == {"acme/app:1.0", "acme/next:1.0"}
    assert leftovers(disk) == []
    check_whole(repo, git_env)


def test_staging_in_a_full_cache(disk: Path, env: dict[str, str], git_env: dict[str, str], tmp_path: Path) -> None:
    """The cache (where a remote registry's layers are staged) is on the full disk."""
    repo = tmp_path / "reg.git"
    url = f"file://{repo}"
    env = {**env, "LFSREG_CACHE": str(disk / "cache")}
    _pushed_once(env, url)
    before = registry_state(repo, git_env)

    proc = run_filled(env, disk, "lfsreg.lfs.cache:ObjectCache.staging", "push", url, TOOL, "--tag", "acme/next:1.0")
    assert_disk_full(proc, disk)
    assert leftovers(disk) == []
    free(disk)
    assert registry_state(repo, git_env) == before
    check_whole(repo, git_env)

    assert_ok(cli(env, "push", url, TOOL, "--tag", "acme/next:1.0"))
    assert set(tags_of(repo)) == {"acme/app:1.0", "acme/next:1.0"}
    assert leftovers(disk) == []


# -- pull output --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["oci", "docker-archive"])
def test_pull_output_on_a_full_disk(disk: Path, env: dict[str, str], tmp_path: Path, kind: str) -> None:
    """Pulling into a full disk writes nothing there; with room, the same pull gives a valid image."""
    repo = tmp_path / "reg.git"
    _pushed_once(env, repo)
    out = disk / ("app.oci" if kind == "oci" else "app.tar")
    target = f"{kind}:{out}"

    proc = run_filled(env, disk, "-", "pull", repo, "acme/app:1.0", "-o", target)
    assert_disk_full(proc, disk)
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    free(disk)

    assert_ok(cli(env, "pull", repo, "acme/app:1.0", "-o", target))
    images = verify_oci_layout(out) if kind == "oci" else verify_docker_archive(out)
    assert len(images) == 1
    assert leftovers(disk) == []


def test_pull_output_fills_up_half_way(disk: Path, env: dict[str, str], tmp_path: Path) -> None:
    """The disk fills up after the output was started: what was written is removed again."""
    repo = tmp_path / "reg.git"
    _pushed_once(env, repo)
    out = disk / "app.oci"
    # the layout's directory and its first files are written, then the blobs meet a full disk
    proc = run_filled(env, disk, "lfsreg.transports.sinks:DirSink.put", "pull", repo, "acme/app:1.0", "-o", f"oci:{out}")
    assert_disk_full(proc, disk)
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    free(disk)
    assert_ok(cli(env, "pull", repo, "acme/app:1.0", "-o", f"oci:{out}"))
    assert len(verify_oci_layout(out)) == 1
    shutil.rmtree(out)


# -- a repository created on a full disk: a new registry, the cache's mirror of a remote one ----------
def test_first_push_into_a_new_registry_on_a_full_disk(disk: Path, env: dict[str, str], git_env: dict[str, str]) -> None:
    """The registry does not exist yet and the disk has no room for it: nothing of it is left."""
    repo = disk / "reg.git"
    proc = run_filled(env, disk, "-", "push", repo, APP, "--tag", "acme/app:1.0")
    assert_disk_full(proc, disk)
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    free(disk)
    assert_ok(cli(env, "push", repo, APP, "--tag", "acme/app:1.0"))
    assert set(tags_of(repo)) == {"acme/app:1.0"}
    check_whole(repo, git_env)


def test_pull_with_the_cache_on_a_full_disk(disk: Path, env: dict[str, str], tmp_path: Path) -> None:
    """A remote registry's mirror and layers cannot be written to the cache: one line, no lock left there."""
    url = f"file://{tmp_path / 'reg.git'}"
    _pushed_once(env, url)
    cache = {**env, "LFSREG_CACHE": str(disk / "cache")}
    out = tmp_path / "app.oci"

    proc = run_filled(cache, disk, "-", "pull", url, "acme/app:1.0", "-o", f"oci:{out}")
    assert_disk_full(proc, disk)
    assert leftovers(disk) == []
    assert not out.exists()
    free(disk)
    assert_ok(cli(cache, "pull", url, "acme/app:1.0", "-o", f"oci:{out}"))
    assert len(verify_oci_layout(out)) == 1
    assert leftovers(disk) == []


def test_fetch_into_the_cache_mirror_on_a_full_disk(disk: Path, env: dict[str, str], tmp_path: Path) -> None:
    """The mirror exists; the remote moved on; the fetch of its new commits meets a full disk."""
    url = f"file://{tmp_path / 'reg.git'}"
    _pushed_once(env, url)
    cache = {**env, "LFSREG_CACHE": str(disk / "cache")}
    assert_ok(cli(cache, "tags", url))  # the mirror is made
    assert_ok(cli(env, "push", url, TOOL, "--tag", "acme/tool:2.0"))  # elsewhere: the remote moves on

    proc = run_filled(cache, disk, "-", "tags", url)
    assert_disk_full(proc, disk)
    assert leftovers(disk) == []
    free(disk)
    proc = cli(cache, "tags", url)
    assert_ok(proc)
    assert "acme/tool" in proc.stdout
    assert leftovers(disk) == []
