"""``tags`` and ``images`` of a registry whose pack holds objects with a damaged header.

A packed object whose header claims an absurd size made dulwich (and lfsreg's pack reader)
raise ``OverflowError``: the listing ended in an internal error instead of naming the damaged
tag file and manifest and listing the rest (issue 9 item 3). ``git/store.py`` and
``git/packs.py`` now report it as damage.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli
from gitenv import cli_env
from test_listing_raw_reads import packed_registry

from lfsreg.git.store import GitStore
from lfsreg.registry import layout


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packed_registry(tmp_path_factory.mktemp("packed") / "reg.git")


def _blobs(repo: Path) -> list[tuple[str, bytes]]:
    """``(path, id)`` of every file of the registry's tree."""
    git = GitStore.open(str(repo))
    snap, out, todo = git.snapshot(git.head()), [], [("", git.snapshot(git.head()).root)]
    while todo:
        path, sha = todo.pop()
        for name, is_dir, child in snap.tree_entries(sha):  # type: ignore[arg-type]
            (todo.append((f"{path}/{name}", child)) if is_dir else out.append((f"{path}/{name}", child)))
    git.close()
    return out


def test_a_listing_names_packed_objects_whose_size_is_damaged(packed: Path, tmp_path: Path) -> None:
    """A packed object whose header claims an absurd size made dulwich raise OverflowError: an internal error."""
    blobs = _blobs(packed)
    repo = tmp_path / "reg.git"
    shutil.copytree(packed, repo)
    (idx,) = (repo / "objects" / "pack").glob("*.idx")
    index = subprocess.run(["git", "show-index"], stdin=idx.open("rb"), capture_output=True, check=True).stdout.decode()
    offsets = {sha.encode(): int(offset) for offset, sha, *_ in (line.split() for line in index.splitlines())}
    git = GitStore.open(str(packed))
    tool = git.snapshot(git.head()).read(f"{layout.NEW.tags_dir('acme/tool')}/2.0").decode().strip().split(":")[1]  # type: ignore[union-attr]
    git.close()
    damaged = [sha for path, sha in blobs if path.endswith((f"/{tool}", "acme/app/_tags/1.0"))]
    assert len(damaged) == 2
    pack = idx.with_suffix(".pack")
    data = bytearray(pack.read_bytes())
    for sha in damaged:
        data[offsets[sha]] |= 0x80  # the size goes on ...
        data[offsets[sha] + 1 : offsets[sha] + 10] = b"\xff" * 9  # ... for 70 bits
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    images = run_cli("images", repo, env=cli_env(tmp_path))
    assert "internal error" not in images.stderr, images.stderr
    assert images.returncode == 1 and images.stdout.splitlines()[1:] == [], images.stderr
    assert [line.split(": ")[2] for line in images.stderr.splitlines()] == ["acme/app:1.0", "acme/tool:2.0"], images.stderr
    assert all("is damaged" in line for line in images.stderr.splitlines()), images.stderr
    tags = run_cli("tags", repo, env=cli_env(tmp_path))
    assert tags.returncode == 1 and "acme/app/_tags/1.0) is damaged" in tags.stderr, tags.stderr
