"""Pushes killed at many moments (SIGKILL and SIGTERM, as a cancelled CI job or ``timeout``).

After every kill: the registry branch is the old commit or the new one (never anything
else), stock ``git fsck`` has nothing to say, and the same push run again succeeds and
leaves no staged files behind. The moments are spread over the length of an unkilled push,
measured first, so they fall in every phase: the command's start, reading the source, staging
and uploading layers, writing git objects, the ref swap, packing. Each push is a process of its
own, forked from one that imported lfsreg (tests/forkserver.py): the interpreter's start-up,
where a kill can only lose the process, is not among the moments.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import tarfile
import time
from pathlib import Path

import forkserver
import pytest
from clirun import check_no_crash_text, run_cli
from forkserver import ForkedProcess
from gitenv import cli_env, isolated_git_env, run_git
from imageverify import FIXTURES
from test_git_durability import fsck_clean

SMALL = [f"oci:{FIXTURES / 'tool.oci'}:2.0", f"docker-archive:{FIXTURES / 'base.docker.tar'}", f"oci:{FIXTURES / 'app-zstd.oci'}:1.0"]
KILLS = 12
# Kill moments are spread over SPREAD times the measured length of an unkilled push: pushes run
# beside other tests (pytest-xdist) on a shared machine, and one measured in a quiet moment can
# take twice as long a moment later; over 1x only, every kill could then land before the commit.
SPREAD = 2.0
SETTLE_CHECKS = 6  # 50 ms apart: see _settled
BIG_LAYER = 12 << 20  # random bytes: compressing and storing them takes a while, so kills land in staging


def _big_archive(path: Path, seed: int) -> str:
    """A ``docker save`` archive with one new, incompressible, uncompressed layer (lfsreg gzips it while staging)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        data = random.Random(seed).randbytes(BIG_LAYER)
        info = tarfile.TarInfo("blob.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "history": [{}]}
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["kill/big:latest"], "Layers": ["layer/layer.tar"]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, blob in ((config_name, config), ("layer/layer.tar", layer_bytes), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return f"docker-archive:{path}"


def _push(location: str, source: str, tag: str, env: dict[str, str]) -> ForkedProcess:
    return forkserver.spawn(["push", location, source, "--tag", tag], env=env)


def _timed_push(location: str, source: str, tag: str, env: dict[str, str]) -> float:
    started = time.monotonic()
    proc = _push(location, source, tag, env)
    out, err = proc.communicate(timeout=120)
    check_no_crash_text(err, out)
    assert proc.returncode == 0, err
    return time.monotonic() - started


def _branch_tip(repo: Path, env: dict[str, str]) -> str | None:
    proc = run_git(["rev-parse", "--verify", "--quiet", "refs/heads/main"], cwd=repo, env=env, check=False)
    return proc.stdout.decode().strip() or None


def _working_in(repo: Path) -> bool:
    """A process works in ``repo`` (its directory is in it) or a push's quarantined objects are there."""
    top = os.path.realpath(repo)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:  # gone, or not ours to read
            continue
        if cwd == top or cwd.startswith(top + os.sep):
            return True
    return any((repo / "objects").glob("tmp_objdir-*"))


def _settled(repo: Path) -> None:
    """Return once no server process works in ``repo``, seen quiet on SETTLE_CHECKS checks in a row.

    A killed client's last request may be whole at the server already: git http-backend's
    receive-pack then goes on after the kill, moves the pack's objects in from its quarantine one
    file at a time and moves the ref. A ``git fsck`` or a read of the branch meanwhile sees a state
    half-way (trees whose subtrees are not moved in yet: "missing tree", seen once in a full run),
    which is the server at work, not what the kill left. The checks in a row cover a request the
    web server has but whose git has not started yet.
    """
    deadline = time.monotonic() + 60
    quiet = 0
    while quiet < SETTLE_CHECKS:
        assert time.monotonic() < deadline, f"a process still works in {repo} a minute after the push was killed"
        quiet = 0 if _working_in(repo) else quiet + 1
        time.sleep(0.05)


def _parent(repo: Path, commit: str, env: dict[str, str]) -> str | None:
    out = run_git(["rev-list", "--parents", "-n", "1", commit], cwd=repo, env=env).stdout.decode().split()
    return out[1] if len(out) > 1 else None


def _staging(tmp_path: Path, repo: Path) -> list[str]:
    """Layers staged and left behind: in ``<registry>/lfs/tmp``, the cache's ``lfs/tmp``, or beside LFS objects."""
    found = []
    for root in (repo / "lfs", tmp_path / "cache" / "lfs"):
        if root.is_dir():
            found += [str(p) for p in root.rglob("*") if p.is_file() and (p.parent.name == "tmp" or p.name.startswith("lfsreg-"))]
    return sorted(found)


# The KILLS moments are run as two tests (HALVES[half] are the kill numbers of each), which
# pytest-xdist runs side by side: one test of all 12 took up to 3 minutes of mostly waiting on a
# loaded machine, longer than the whole rest of the suite's share of a worker. Each half has early
# and late moments, SIGKILL and SIGTERM, big and small sources, so each still sees kills that
# miss the commit and kills that follow it. The first moment of each half kills at once (always
# before the commit) and the last kills right after the ref moved (always after it), so both
# outcomes are seen however loaded the machine is; the moments between are spread over a push.
HALVES = ([i for i in range(KILLS) if i % 4 in (0, 3)], [i for i in range(KILLS) if i % 4 in (1, 2)])


def _wait_for_commit(repo: Path, before: str | None, proc: ForkedProcess, git_env: dict[str, str]) -> None:
    """Return once the push has moved the branch (or ended); reading the ref file is cheaper than a git per poll."""
    ref = repo / "refs" / "heads" / "main"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if ref.exists() and ref.read_text().strip() != (before or ""):
            return
        time.sleep(0.005)
    assert _branch_tip(repo, git_env) != before, "the push ended without moving the branch"


def _kill_many(tmp_path: Path, location: str, repo: Path, env: dict[str, str], half: int) -> list[str]:
    """Kill pushes at spread moments; check each outcome; return the staging left at the end."""
    git_env = isolated_git_env(tmp_path)
    duration = _timed_push(location, _big_archive(tmp_path / "warm.tar", -1), "kill/img:warm", env)
    outcomes = []
    for i in HALVES[half]:
        source = _big_archive(tmp_path / f"big{i}.tar", i) if i % 3 != 2 else SMALL[i % len(SMALL)]
        tag = f"kill/img:k{i}"
        sig = signal.SIGKILL if i % 2 == 0 else signal.SIGTERM
        before = _branch_tip(repo, git_env)
        proc = _push(location, source, tag, env)
        if i == HALVES[half][0]:
            pass  # killed at once, as the command starts: always before the commit, however loaded the machine
        elif i == HALVES[half][-1]:
            _wait_for_commit(repo, before, proc, git_env)  # killed after the ref moved: always after the commit
        else:
            time.sleep(duration * SPREAD * (i + 0.5) / KILLS)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        check_no_crash_text(err, out)
        if location != str(repo):  # a server's process may go on after the kill; a local push has none
            _settled(repo)
        after = _branch_tip(repo, git_env)
        moved = after != before
        outcomes.append((sig.name, proc.returncode, moved))
        # old or new: the new commit sits right on the old one
        assert not moved or _parent(repo, after, git_env) == before, f"kill {i}: {before} -> {after}"
        assert not (proc.returncode == 0 and not moved), f"kill {i}: exit 0 but the branch did not move: {err}"
        assert "Traceback" not in err, err
        fsck_clean(repo, git_env)
        # the same push again succeeds and the tag is there (in this process: what the kill left
        # is on disk, and a second process start-up per kill would add nothing)
        again = run_cli("push", location, source, "--tag", tag, env=env)
        assert again.returncode == 0, f"push after kill {i} ({sig.name}): {again.stderr}"
        fsck_clean(repo, git_env)
    assert any(moved for *_, moved in outcomes) and not all(moved for *_, moved in outcomes), f"kills missed the push: {outcomes}"
    return _staging(tmp_path, repo)


@pytest.mark.parametrize("half", [0, 1])
def test_local_pushes_killed_at_many_moments(tmp_path: Path, half: int) -> None:
    repo = tmp_path / "reg.git"
    env = cli_env(tmp_path)
    assert _kill_many(tmp_path, str(repo), repo, env, half) == []  # no staging left (defect #4)


@pytest.mark.interop
@pytest.mark.parametrize("half", [0, 1])
def test_https_pushes_killed_at_many_moments(git_http_server, git_http_repo, tmp_path: Path, half: int) -> None:
    env = cli_env(tmp_path, LFSREG_USERNAME=git_http_server.user, LFSREG_PASSWORD=git_http_server.password)
    assert _kill_many(tmp_path, git_http_repo.url, git_http_repo.path, env, half) == []  # no staging left (defect #4)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.parametrize("kind", ["path", "file-url"])
def test_push_killed_while_it_holds_the_branch_lock(tmp_path: Path, kind: str, sig: signal.Signals) -> None:
    """Killed between taking ``refs/heads/main.lock`` and renaming it: the next push removes that lock and lands.

    The lock is held a second longer than usual (``SLOW_GIT_LOCKS``), so the kill lands in it
    every time. A lock that stock git left is only reported (test_git_durability).
    """
    git_env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    location = str(repo) if kind == "path" else f"file://{repo}"
    env = cli_env(tmp_path)
    _timed_push(location, SMALL[0], "kill/img:first", env)
    before = _branch_tip(repo, git_env)
    proc = forkserver.spawn(["push", location, SMALL[1], "--tag", "kill/img:second"], env={**env, "SLOW_GIT_LOCKS": "1.0"})
    lock = repo / "refs" / "heads" / "main.lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert lock.exists(), f"the push never took the branch lock: {proc.poll()} {proc.poll() is not None and proc.communicate()}"
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert _branch_tip(repo, git_env) == before
    assert lock.exists() or sig == signal.SIGTERM  # SIGTERM unwinds (lfsreg.cli), which may release it

    started = time.monotonic()
    _timed_push(location, SMALL[1], "kill/img:second", env)
    assert time.monotonic() - started < 8
    assert not lock.exists()
    assert _parent(repo, _branch_tip(repo, git_env) or "", git_env) == before
    fsck_clean(repo, git_env)
