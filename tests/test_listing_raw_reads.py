"""``RawSnapshot`` (lfsreg/git/bulk.py), the listings' fast reader, answers exactly as ``Snapshot``.

Every tree and blob of a registry is read both ways, on a repository whose objects are packed
and then damaged (a corrupt packed object, a loose object that is garbage, one that holds other
content, one that is missing) and with a hostile tree whose entries are out of git's order and
repeat a name: the same entries, bytes, or error (type and message) each time.
"""

from __future__ import annotations

import gc
import hashlib
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from conftest import run_cli
from gitenv import cli_env
from imageverify import FIXTURES

from lfsreg.git.bulk import RawSnapshot
from lfsreg.git.snapshot import Snapshot
from lfsreg.git.store import GitStore


def packed_registry(repo: Path) -> Path:
    """A registry of two images at ``repo``, its objects in one pack."""
    env = cli_env(repo.parent)
    for ref, source in (("acme/app:1.0", "app.oci:1.0"), ("acme/tool:2.0", "tool.oci:2.0")):
        assert run_cli("push", repo, f"oci:{FIXTURES / source}", "--tag", ref, env=env).returncode == 0
    subprocess.run(["git", "-C", str(repo), "repack", "-adq"], check=True)
    return repo


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packed_registry(tmp_path_factory.mktemp("raw") / "reg.git")


def _objects(snap: Snapshot) -> tuple[list[bytes], list[tuple[str, bytes]]]:
    """Every tree id, and every blob's ``(path, id)``, of the snapshot (read the ordinary way)."""
    trees, blobs, todo = [], [], [("", snap.root)]
    while todo:
        path, sha = todo.pop()
        assert sha is not None
        trees.append(sha)
        for name, is_dir, child in snap.tree_entries(sha):
            (todo.append((f"{path}/{name}", child)) if is_dir else blobs.append((f"{path}/{name}", child)))
    return trees, blobs


def _answer(read, *args):  # type: ignore[no-untyped-def]
    try:
        return read(*args)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def _listed(repo: Path) -> tuple[list[bytes], list[tuple[str, bytes]]]:
    git = GitStore.open(str(repo))
    try:
        return _objects(git.snapshot(git.head()))
    finally:
        git.close()


def _same(repo: Path, trees: list[bytes], blobs: list[tuple[str, bytes]]) -> None:
    """Every one of ``trees`` and ``blobs`` (listed before any damage) read both ways in ``repo``."""
    git = GitStore.open(str(repo))
    tip = git.head()
    plain, raw = git.snapshot(tip), RawSnapshot(git.snapshot(tip))
    try:
        for sha in trees:
            assert _answer(raw.tree_entries, sha) == _answer(plain.tree_entries, sha), sha
        for path, sha in blobs:
            assert _answer(raw.blob, sha, path) == _answer(plain.blob, sha, path), path
            assert _answer(raw.read, path) == _answer(plain.read, path), path
    finally:
        raw.close()
        gc.collect()  # dulwich's errors keep views of its pack map alive until collected
        git.close()


def _loose(repo: Path, sha: bytes, kind: bytes, data: bytes) -> None:
    path = repo / "objects" / sha[:2].decode() / sha[2:].decode()
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(zlib.compress(b"%s %d\0%s" % (kind, len(data), data)))


def test_the_same_answers_on_a_sound_packed_registry(packed: Path) -> None:
    _same(packed, *_listed(packed))


def _damaged_pack(packed: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "reg.git"
    shutil.copytree(packed, repo)
    (pack,) = (repo / "objects" / "pack").glob("*.pack")
    data = bytearray(pack.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64  # packed objects there no longer inflate
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    return repo


def test_the_same_answers_on_damaged_objects(packed: Path, tmp_path: Path) -> None:
    trees, blobs = _listed(packed)
    repo = _damaged_pack(packed, tmp_path)
    tags = [sha for path, sha in blobs if "/_tags/" in path]
    _loose(repo, tags[0], b"blob", b"sha256:" + b"0" * 64 + b"\n")  # other content under the id (a loose copy wins)
    garbage = repo / "objects" / tags[1][:2].decode() / tags[1][2:].decode()
    garbage.parent.mkdir(exist_ok=True)
    garbage.write_bytes(b"not a zlib stream")
    _same(repo, trees, blobs)


def test_the_same_entries_of_a_tree_out_of_order_with_a_repeated_name(packed: Path, tmp_path: Path) -> None:
    repo = tmp_path / "reg.git"
    shutil.copytree(packed, repo)
    git = GitStore.open(str(repo))
    blob = git.write_blob(b"x")
    entries = [(b"100644", b"b", blob), (b"100644", b"a", blob), (b"40000", b"c", blob), (b"100644", b"a", blob)]
    raw_tree = b"".join(b"%s %s\0%s" % (mode, name, bytes.fromhex(sha.decode())) for mode, name, sha in entries)  # git never writes it
    sha = hashlib.sha1(b"tree %d\0%s" % (len(raw_tree), raw_tree)).hexdigest().encode()
    _loose(repo, sha, b"tree", raw_tree)
    plain, raw = git.snapshot(git.head()), RawSnapshot(git.snapshot(git.head()))
    try:
        assert _answer(raw.tree_entries, sha) == _answer(plain.tree_entries, sha)
        assert [name for name, _, _ in plain.tree_entries(sha)] != ["b", "a", "c"]  # dulwich sorts: so must the raw reader
    finally:
        raw.close()
        git.close()
