"""A registry's git repository damaged below the registry format (lfsreg/git/store.py).

Stock ``git`` damages a registry pushed by lfsreg the ways a disk, a careless script or a
hand-made commit can: a missing object, a branch pointing at a tree, a tree entry whose mode
and object disagree (written with ``git hash-object --literally``), a file where a directory
should be, a detached ``HEAD``, a working tree instead of a bare repository. Each read must end
in one error line naming the object or the repository (no internal error, no traceback), and
nothing must be written.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import assert_error, assert_ok, fixture, run_cli
from gitenv import isolated_git_env, run_git

import lfsreg
from lfsreg.errors import NotFoundError
from lfsreg.git.store import GitStore
from lfsreg.registry import layout

IMAGE = "docker-archive:" + str(fixture("base.docker.tar"))
OTHER = "docker-archive:" + str(fixture("app.docker.tar"))
NAME, TAG = "acme/base", "1.0"


@pytest.fixture
def reg(tmp_path: Path) -> Path:
    path = tmp_path / "reg.git"
    lfsreg.Registry(str(path)).init()
    assert_ok(run_cli("push", path, IMAGE, "--tag", f"{NAME}:{TAG}"))
    return path


def _git(reg: Path, *args: str, stdin: bytes | None = None) -> str:
    env = isolated_git_env(reg.parent / "git-env", lfs=False)
    proc = subprocess.run(["git", "--git-dir", str(reg), *args], input=stdin, capture_output=True, env=env, check=True, timeout=60)
    return proc.stdout.decode().strip()


def _main(reg: Path) -> str:
    return (reg / "refs" / "heads" / "main").read_text().strip()


def _set_main(reg: Path, sha: str) -> None:
    (reg / "refs" / "heads" / "main").write_text(sha + "\n")


def _literal(reg: Path, kind: str, body: bytes) -> str:
    """Write an object of ``kind`` exactly as given (git's own checks skipped)."""
    return _git(reg, "hash-object", "-w", "-t", kind, "--literally", "--stdin", stdin=body)


def _tree(entries: list[tuple[str, str, str]]) -> bytes:
    """Raw tree content from ``(mode, name, hex sha)`` entries, sorted as git sorts them."""
    key = {name: name + ("/" if mode == "40000" else "") for mode, name, _ in entries}
    return b"".join(f"{m} {n}".encode() + b"\0" + bytes.fromhex(s) for m, n, s in sorted(entries, key=lambda e: key[e[1]]))


def _commit_tree(reg: Path, tree: str, parent: str) -> str:
    return _git(reg, "commit-tree", tree, "-p", parent, "-m", "hand-made")


def _with_root_entry(reg: Path, mode: str, name: str, sha: str) -> str:
    """A commit on main whose root tree has ``name`` replaced by (or added as) ``mode sha``."""
    entries = []
    for line in _git(reg, "ls-tree", "main").splitlines():
        meta, entry_name = line.split("\t")
        entry_mode, _, entry_sha = meta.split()
        if entry_name != name:
            entries.append((entry_mode.lstrip("0") or "0", entry_name, entry_sha))
    entries.append((mode, name, sha))
    return _commit_tree(reg, _literal(reg, "tree", _tree(entries)), _main(reg))


def _pull_fails(reg: Path, tmp_path: Path, *needles: str) -> None:
    out = tmp_path / "out.tar"
    before = _main(reg)
    assert_error(run_cli("pull", reg, f"{NAME}:{TAG}", "-o", f"docker-archive:{out}"), 1, *needles)
    assert not out.exists()
    assert _main(reg) == before


# -- missing objects ----------------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["manifest", "tag-file", "tags-tree"])
def test_a_missing_git_object_is_named_not_an_internal_error(reg, tmp_path, what):
    path = {
        "manifest": next(p for p in _git(reg, "ls-tree", "-r", "--name-only", "main").splitlines() if p.startswith("blobs/")),
        "tag-file": f"{layout.NEW.tags_dir(NAME)}/{TAG}",
        "tags-tree": f"{layout.NEW.tags_dir(NAME)}",
    }[what]
    sha = _git(reg, "rev-parse", f"main:{path}")
    (reg / "objects" / sha[:2] / sha[2:]).unlink()
    _pull_fails(reg, tmp_path, f"git object {sha}", "is missing")
    if what != "manifest":
        assert_error(run_cli("images", reg), 1, f"git object {sha}", "is missing")


def test_a_missing_commit_is_named(reg, tmp_path):
    sha = _main(reg)
    (reg / "objects" / sha[:2] / sha[2:]).unlink()
    assert_error(run_cli("images", reg), 1, f"git object {sha} is missing")
    assert_error(run_cli("push", reg, OTHER, "--tag", "acme/app:1"), 1, f"git object {sha} is missing")
    assert "git fsck" in run_cli("images", reg).stderr
    assert _main(reg) == sha


# -- objects of the wrong kind -------------------------------------------------------------------------
def test_a_branch_pointing_at_a_tree_is_not_a_commit(reg, tmp_path):
    tree = _git(reg, "rev-parse", "main^{tree}")
    _set_main(reg, tree)
    assert_error(run_cli("images", reg), 1, f"git object {tree} is not a commit")
    assert_error(run_cli("push", reg, OTHER, "--tag", "acme/app:1"), 1, "is not a commit")
    assert _main(reg) == tree


def test_a_directory_entry_naming_a_blob_is_not_a_tree(reg, tmp_path):
    blob = _literal(reg, "blob", b"not a directory\n")
    _set_main(reg, _with_root_entry(reg, "40000", "repositories", blob))
    assert_error(run_cli("images", reg), 1, f"git object {blob} is not a tree")
    _pull_fails(reg, tmp_path, f"git object {blob} is not a tree")


def test_a_file_entry_naming_a_tree_is_not_a_blob(reg, tmp_path):
    tree = _git(reg, "rev-parse", "main:blobs")
    marker = "lfsreg.json"
    _set_main(reg, _with_root_entry(reg, "100644", marker, tree))
    assert_error(run_cli("images", reg), 1, f"git object {tree} is not a blob")


def test_a_file_where_the_image_directories_should_be_holds_no_image(reg, tmp_path):
    blob = _literal(reg, "blob", b"a file\n")
    _set_main(reg, _with_root_entry(reg, "100644", "repositories", blob))
    out = tmp_path / "out.tar"
    proc = run_cli("pull", reg, f"{NAME}:{TAG}", "-o", f"docker-archive:{out}")
    assert_error(proc, 1, f"no image {NAME}:{TAG}")
    assert "lfsreg images" in proc.stderr
    proc = run_cli("images", reg)
    assert_ok(proc)
    assert NAME not in proc.stdout


def test_commits_are_made_only_on_commits_and_trees(reg):
    """The store's own guards, for callers that did not read the tree first."""
    store = GitStore.open(str(reg))
    tree = _git(reg, "rev-parse", "main^{tree}")
    blob = _git(reg, "rev-parse", "main:lfsreg.json")
    with pytest.raises(NotFoundError, match=f"git object {tree} is not a commit"):
        store.make_commit(tree, {}, "on a tree")
    bad_commit = _literal(reg, "commit", f"tree {blob}\nauthor a <a@b> 0 +0000\ncommitter a <a@b> 0 +0000\n\nx\n".encode())
    with pytest.raises(NotFoundError, match=f"git object {blob} is not a tree"):
        store.make_commit(bad_commit, {"x": store.write_blob(b"x")}, "on a commit whose tree is a blob")


# -- the repository itself -------------------------------------------------------------------------------
def test_a_detached_head_keeps_the_registry_on_main(reg, tmp_path):
    tip = _main(reg)
    (reg / "HEAD").write_text(tip + "\n")
    proc = run_cli("images", reg)
    assert_ok(proc)
    assert NAME in proc.stdout
    assert_ok(run_cli("push", reg, OTHER, "--tag", "acme/app:1"))
    assert _main(reg) != tip
    assert (reg / "HEAD").read_text().strip() == tip  # HEAD left as it was
    assert _git(reg, "cat-file", "-t", f"main:{layout.NEW.tag_path('acme/app', '1')}") == "blob"


def test_a_working_tree_is_not_a_registry(tmp_path):
    work = tmp_path / "work"
    env = isolated_git_env(tmp_path / "git-env", lfs=False)
    run_git(["init", "-q", str(work)], cwd=tmp_path, env=env)
    for argv in (["images", work], ["push", work, IMAGE, "--tag", f"{NAME}:{TAG}"]):
        assert_error(run_cli(*argv), 1, "a git working tree, not a bare registry repository")
    assert not list((work / ".git" / "refs" / "heads").iterdir())
