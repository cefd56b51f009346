"""Concurrent pushers: several OS processes push into one registry at the same moment.

Each pusher is a separate OS process (forked from one that imported lfsreg: tests/racers.py)
that reports that it is ready, then waits for a barrier file before calling the CLI, so the
pushes really overlap (the interpreter start-up is not part of the race). Afterwards the
registry must hold every tag with the right image, a linear history, and pass stock ``git fsck``. A push that fails
anywhere before its commit must leave ``refs/heads/main`` exactly as it was.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import assert_error, run_cli
from gitenv import isolated_git_env, run_git
from imageverify import FIXTURES, lfsreg, source_image, tags_of, verify_docker_archive, verify_oci_layout
from racers import SLOW_HOOKS, run_concurrently

import lfsreg as lfsreg_api
from lfsreg.lfs.store import LocalLfsStore

# The one-process form of racers.ZYGOTE (test_kill_push kills one such pusher): imports
# lfsreg, applies the SLOW_GIT_LOCKS / SLOW_GIT_INIT hooks (see tests/racers.py), says "ready",
# waits for the barrier, then runs the CLI with the remaining args.
DRIVER = (
    SLOW_HOOKS
    + r"""
from lfsreg.cli import main
barrier, ready = sys.argv[1], sys.argv[2]
open(ready, "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(barrier):
    if time.monotonic() > deadline:
        sys.exit("barrier never opened")
    time.sleep(0.001)
main(sys.argv[3:])
"""
)


def push_argv(repo: Path, source: str, tag: str) -> list[str]:
    return ["push", str(repo), source, "--tag", tag, "--format", "json"]


def pushed_digest(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}: exit {result.returncode}\n{result.stderr}"
    (image,) = json.loads(result.stdout)["images"]
    return image["digest"]


def head(repo: Path, env: dict[str, str]) -> str | None:
    proc = run_git(["rev-parse", "--verify", "--quiet", "refs/heads/main"], cwd=repo, env=env, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def check_history(repo: Path, env: dict[str, str], commits: int) -> None:
    """Linear history of ``commits`` commits, each with one parent (the root none); fsck clean."""
    lines = run_git(["rev-list", "--parents", "refs/heads/main"], cwd=repo, env=env).stdout.decode().splitlines()
    assert len(lines) == commits, lines
    assert all(len(line.split()) == 2 for line in lines[:-1]), "a commit with more than one parent"
    assert len(lines[-1].split()) == 1
    run_git(["fsck", "--full", "--strict", "--no-dangling"], cwd=repo, env=env)
    assert run_git(["symbolic-ref", "HEAD"], cwd=repo, env=env).stdout == b"refs/heads/main\n"


def leftover_staging(repo: Path) -> list[str]:
    tmp = repo / "lfs" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def lfs_objects(repo: Path) -> set[str]:
    return {p.name for p in (repo / "lfs" / "objects").glob("*/*/*")}


SOURCES = [
    f"docker-archive:{FIXTURES / 'app.docker.tar'}",
    f"docker-archive:{FIXTURES / 'tool.docker.tar'}",
    f"docker-archive:{FIXTURES / 'base.docker.tar'}",
    f"oci:{FIXTURES / 'app.oci'}:1.0",
    f"oci:{FIXTURES / 'tool.oci'}:2.0",
    f"oci:{FIXTURES / 'app-zstd.oci'}:1.0",
]


def _check_cli(*args: object) -> None:
    """``lfsreg ARGS`` in this process, exit 0: the set-up before a race and the checks after it
    (the racers themselves are processes of their own)."""
    proc = run_cli(*args)
    assert proc.returncode == 0, f"lfsreg {' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def prepare(kind: str, repo: Path, env: dict[str, str]) -> int:
    """Create the registry as ``kind`` says; return the number of commits it starts with."""
    if kind == "lfsreg-init":
        _check_cli("init", repo)
        return 1
    if kind == "git-init-bare":
        run_git(["init", "--quiet", "--bare", repo], cwd=repo.parent, env=env)
        return 0
    if kind == "empty-dir":
        repo.mkdir()
        return 0
    assert kind == "absent"
    return 0


@pytest.mark.parametrize(
    "kind",
    [
        "lfsreg-init",
        "git-init-bare",
        # The registry is created by the pushes themselves, so they race to create it too. Git init
        # is made slow (0.2 s) so that every pusher finds the repository missing or half-made: the
        # first version of GitStore.init (dulwich Repo.init_bare in place) then failed every time
        # ('<repo>/branches: File exists', '<repo>: not a git repository'); unslowed, 9 runs in 10.
        "absent",
        "empty-dir",
    ],
)
def test_concurrent_pushes_of_different_tags(tmp_path: Path, kind: str) -> None:
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    initial = prepare(kind, repo, env)
    wanted = {f"conc/img:t{i}": source for i, source in enumerate(SOURCES)}
    argvs = [push_argv(repo, s, t) for t, s in wanted.items()]
    slow = 0.2 if kind in ("absent", "empty-dir") else 0.0
    results = run_concurrently(tmp_path / "run", argvs, slow_git_init=slow)
    failures = [f"{r.args[4]}: exit {r.returncode}: {r.stderr.strip()}" for r in results if r.returncode != 0]
    assert not failures, "; ".join(failures)
    reported = {tag: pushed_digest(r) for tag, r in zip(wanted, results, strict=True)}

    assert tags_of(repo) == reported
    check_history(repo, env, initial + len(SOURCES))
    assert leftover_staging(repo) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no half-made repositories left

    # every tag pulls, verifies, and is the image its pusher pushed
    _check_cli("pull", repo, *wanted, "-o", f"oci:{tmp_path / 'out.oci'}")
    pulled = {i.manifest_digest: i for i in verify_oci_layout(tmp_path / "out.oci")}
    for tag, source in wanted.items():
        expected = source_image(source)
        got = pulled[reported[tag]]
        assert got.config_digest == expected.config_digest, tag
        assert got.diff_ids == expected.diff_ids, tag
        if source.startswith("oci:"):  # compressed layers are stored byte for byte
            assert reported[tag] == expected.manifest_digest, tag


@pytest.mark.parametrize(
    ("kind", "sources"),
    [
        ("oci", (f"oci:{FIXTURES / 'app.oci'}:1.0", f"oci:{FIXTURES / 'tool.oci'}:2.0")),
        ("docker-archive", (f"docker-archive:{FIXTURES / 'app.docker.tar'}", f"docker-archive:{FIXTURES / 'tool.docker.tar'}")),
    ],
)
def test_concurrent_pushes_of_the_same_tag(tmp_path: Path, kind: str, sources: tuple[str, str]) -> None:
    env = isolated_git_env(tmp_path)
    expected = {s: source_image(s) for s in sources}
    for round_ in range(2):
        repo = tmp_path / f"reg{round_}.git"
        _check_cli("init", repo)
        results = run_concurrently(tmp_path / f"run{round_}", [push_argv(repo, s, "race/img:latest") for s in sources])
        digests = {pushed_digest(r): s for r, s in zip(results, sources, strict=True)}
        assert len(digests) == 2

        final = tags_of(repo)
        assert list(final) == ["race/img:latest"]
        winner = final["race/img:latest"]
        assert winner in digests
        # both pushes committed, one after the other; the later commit's tag is the one that stays
        check_history(repo, env, 3)
        tip_message = run_git(["log", "-1", "--format=%B", "refs/heads/main"], cwd=repo, env=env).stdout.decode()
        assert f"race/img:latest {winner}" in tip_message
        # ... and the commit before it tagged the other image: the loser was not dropped, it was overtaken
        (loser,) = set(digests) - {winner}
        parent_message = run_git(["log", "-1", "--format=%B", "refs/heads/main~1"], cwd=repo, env=env).stdout.decode()
        assert f"race/img:latest {loser}" in parent_message
        assert leftover_staging(repo) == []

        # the winning manifest is complete and is exactly one source's image, never a mix
        source = expected[digests[winner]]
        out = tmp_path / f"out{round_}.oci"
        _check_cli("pull", repo, "race/img:latest", "-o", f"oci:{out}")
        (pulled,) = verify_oci_layout(out)
        assert pulled.manifest_digest == winner
        assert pulled.config_digest == source.config_digest
        assert pulled.diff_ids == source.diff_ids
        _check_cli("pull", repo, "race/img:latest", "-o", f"docker-archive:{tmp_path / f'out{round_}.tar'}")
        (archive,) = verify_docker_archive(tmp_path / f"out{round_}.tar")
        assert (archive.config_digest, archive.diff_ids) == (source.config_digest, source.diff_ids)
        # the loser's image is still reachable by digest
        _check_cli("pull", repo, f"race/img@{loser}", "-o", f"oci:{tmp_path / f'loser{round_}.oci'}")
        (pulled_loser,) = verify_oci_layout(tmp_path / f"loser{round_}.oci")
        assert pulled_loser.diff_ids == expected[digests[loser]].diff_ids


# -- failed pushes leave the branch alone ----------------------------------------------------------


def _existing_registry(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "reg.git"
    lfsreg_api.Registry(str(repo)).push([f"docker-archive:{FIXTURES / 'base.docker.tar'}"])
    return repo, env


def test_failed_layer_upload_leaves_main_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, env = _existing_registry(tmp_path)
    before_head, before_tags, before_objects = head(repo, env), tags_of(repo), lfs_objects(repo)
    original = LocalLfsStore.upload
    calls = []

    def failing_upload(self: LocalLfsStore, items: list, progress: object = None) -> None:
        calls.append(len(items))
        original(self, items[:1])  # one object makes it, then the "disk" fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LocalLfsStore, "upload", failing_upload)
    registry = lfsreg_api.Registry(str(repo))
    with pytest.raises(OSError, match="No space left"):
        registry.push([f"docker-archive:{FIXTURES / 'app.docker.tar'}"], tags=["acme/app:1.0"])
    assert calls and calls[0] >= 2, "the push should have had several layers to upload"
    assert head(repo, env) == before_head
    assert tags_of(repo) == before_tags
    assert len(lfs_objects(repo) - before_objects) == 1  # the orphan is harmless
    assert leftover_staging(repo) == []
    run_git(["fsck", "--strict", "--no-dangling"], cwd=repo, env=env)

    # a retry after the failure succeeds and pulls verified
    monkeypatch.setattr(LocalLfsStore, "upload", original)
    registry.push([f"docker-archive:{FIXTURES / 'app.docker.tar'}"], tags=["acme/app:1.0"])
    assert "acme/app:1.0" in tags_of(repo)
    _check_cli("pull", repo, "acme/app:1.0", "-o", f"docker-archive:{tmp_path / 'app.tar'}")
    verify_docker_archive(tmp_path / "app.tar")


def test_upload_that_silently_loses_objects_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, env = _existing_registry(tmp_path)
    before_head, before_objects = head(repo, env), lfs_objects(repo)
    monkeypatch.setattr(LocalLfsStore, "upload", lambda self, items, progress=None: None)
    with pytest.raises(lfsreg_api.BlobNotFound, match="missing after upload"):
        lfsreg_api.Registry(str(repo)).push([f"oci:{FIXTURES / 'tool.oci'}:2.0"], tags=["acme/tool:2.0"])
    assert head(repo, env) == before_head
    assert lfs_objects(repo) == before_objects
    assert leftover_staging(repo) == []


@pytest.mark.parametrize(
    "source",
    [
        f"docker-archive:{FIXTURES / 'bad' / 'digest-mismatch.docker.tar'}",
        f"oci:{FIXTURES / 'bad' / 'blob-mismatch.oci'}:1.0",
    ],
)
def test_push_of_corrupt_layer_leaves_main_unchanged(tmp_path: Path, source: str) -> None:
    repo, env = _existing_registry(tmp_path)
    before_head, before_tags, before_objects = head(repo, env), tags_of(repo), lfs_objects(repo)
    result = lfsreg("push", repo, source, "--tag", "acme/bad:1.0", check=False)
    assert_error(result, 1, Path(source.split(":")[1]).name, "layer sha256:")
    assert head(repo, env) == before_head
    assert tags_of(repo) == before_tags
    assert lfs_objects(repo) == before_objects
    assert leftover_staging(repo) == []


def test_failed_first_push_creates_no_branch(tmp_path: Path) -> None:
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "new.git"
    result = lfsreg("push", repo, f"docker-archive:{FIXTURES / 'bad' / 'digest-mismatch.docker.tar'}", check=False)
    assert_error(result, 1, "digest-mismatch.docker.tar", "expected sha256:")
    # an empty repository may be left behind, but without a branch, objects or staged files
    if repo.exists():
        assert head(repo, env) is None
        assert lfs_objects(repo) == set()
        assert leftover_staging(repo) == []
    # and the next (good) push into it works
    lfsreg("push", repo, f"docker-archive:{FIXTURES / 'base.docker.tar'}")
    assert list(tags_of(repo)) == ["acme/base:1.0"]
    check_history(repo, env, 1)
