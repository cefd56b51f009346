"""lfsreg.git.packstore: a pack a server sent, indexed here, is the pack stock git would have kept.

Packs made by stock ``git pack-objects`` (whole objects, deltas against an offset and against an
id, a thin pack whose bases are elsewhere); the index written must be byte for byte the one
``git index-pack`` writes for the same pack. A damaged pack is refused and nothing is kept.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from lfsreg.errors import ProtocolError
from lfsreg.git.packstore import store_pack


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A repository of two commits whose files are near copies of each other (so packs hold deltas)."""
    repo = tmp_path_factory.mktemp("packstore") / "src"
    _git(repo.parent, "init", "-q", str(repo))
    text = "".join(f"line {i} of a file that deltas well\n" for i in range(400))
    for commit in range(2):
        for i in range(6):
            (repo / f"f{i}.txt").write_text(text + f"file {i} commit {commit}\n" * (i + 1))
        (repo / "sub").mkdir(exist_ok=True)
        (repo / "sub" / "x").write_text(f"small {commit}\n")
        _git(repo, "add", "-A")
        _git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", f"c{commit}")
    return repo


def _pack(source: Path, *args: str, revs: bytes = b"HEAD\n") -> bytes:
    return _git(source, "pack-objects", "--revs", "--stdout", "-q", *args, stdin=revs)


def _stored(tmp_path: Path, data: bytes) -> tuple[bool, Path]:
    pack_dir = tmp_path / "pack"
    pack_dir.mkdir(exist_ok=True)
    answer = pack_dir / "tmp_pack_answer_test"
    answer.write_bytes(data)
    return store_pack(str(pack_dir), str(answer), "test/repo"), pack_dir


@pytest.mark.parametrize("args", [["--delta-base-offset"], []], ids=["ofs-delta", "ref-delta"])
def test_the_index_is_the_one_git_writes(source: Path, tmp_path: Path, args: list[str]) -> None:
    data = _pack(source, *args, revs=b"HEAD\nHEAD~1\n")
    ok, pack_dir = _stored(tmp_path, data)
    assert ok
    (idx,) = pack_dir.glob("pack-*.idx")
    (pack,) = pack_dir.glob("pack-*.pack")
    assert pack.read_bytes() == data and not list(pack_dir.glob("tmp_*"))
    theirs = tmp_path / "theirs.pack"
    theirs.write_bytes(data)
    _git(tmp_path, "index-pack", str(theirs))
    assert idx.read_bytes() == theirs.with_suffix(".idx").read_bytes()
    listed = _git(tmp_path, "verify-pack", "-v", str(idx)).decode()
    assert "chain length" in listed  # deltas were there to resolve
    assert pack.name == f"pack-{data[-20:].hex()}.pack"


def test_a_pack_kept_before_is_kept_once(source: Path, tmp_path: Path) -> None:
    data = _pack(source)
    assert _stored(tmp_path, data)[0]
    ok, pack_dir = _stored(tmp_path, data)
    assert ok
    assert len(list(pack_dir.iterdir())) == 2  # one pack, one index, the answer gone


def test_a_thin_pack_is_left_to_the_caller(source: Path, tmp_path: Path) -> None:
    data = _pack(source, "--thin", revs=b"HEAD\n^HEAD~1\n")
    ok, pack_dir = _stored(tmp_path, data)
    assert not ok
    assert [p.name for p in pack_dir.iterdir()] == ["tmp_pack_answer_test"]  # untouched, for dulwich


def _retrailed(data: bytes) -> bytes:
    return data[:-20] + hashlib.sha1(data[:-20]).digest()


def _first_entry_data(data: bytes) -> int:
    pos = 12
    c = data[pos]
    pos += 1
    while c & 0x80:
        c = data[pos]
        pos += 1
    return pos


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:-1] + bytes([d[-1] ^ 1]),  # the checksum
        lambda d: _retrailed(d[:8] + struct.pack(">I", struct.unpack_from(">I", d, 8)[0] + 1) + d[12:]),  # one entry more than sent
        lambda d: _retrailed(d[:8] + struct.pack(">I", struct.unpack_from(">I", d, 8)[0] - 1) + d[12:]),  # bytes after the last
        lambda d: _retrailed(d[: _first_entry_data(d)] + zlib.compress(b"not the size the header says") + d[_first_entry_data(d) :]),
        lambda d: _retrailed(d[: _first_entry_data(d) + 2] + bytes([d[_first_entry_data(d) + 2] ^ 0xFF]) + d[_first_entry_data(d) + 3 :]),
        lambda d: b"",
        lambda d: _retrailed(b"PACK\0\0\0\4" + d[8:-20]),  # a version git does not write
    ],
    ids=["checksum", "count-high", "count-low", "size", "zlib", "empty", "version"],
)
def test_a_damaged_pack_is_refused_and_nothing_kept(source: Path, tmp_path: Path, damage) -> None:
    data = damage(_pack(source, "--delta-base-offset"))
    with pytest.raises(ProtocolError, match="test/repo: the git server sent"):
        _stored(tmp_path, data)
    assert [p.name for p in (tmp_path / "pack").iterdir()] == ["tmp_pack_answer_test"]


def test_what_it_inflated_is_handed_over_by_id_within_its_budget(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lfsreg.git import packstore

    data = _pack(source, "--delta-base-offset", revs=b"HEAD\nHEAD~1\n")
    fresh: dict[bytes, tuple[int, bytes]] = {}
    pack_dir = tmp_path / "pack"
    pack_dir.mkdir()
    (pack_dir / "tmp_pack_answer_a").write_bytes(data)
    assert store_pack(str(pack_dir), str(pack_dir / "tmp_pack_answer_a"), "test/repo", fresh)
    (idx,) = pack_dir.glob("pack-*.idx")
    listed = [line.split() for line in _git(tmp_path, "verify-pack", "-v", str(idx)).decode().splitlines() if line[:40].isalnum()]
    assert {bytes.fromhex(row[0]) for row in listed if len(row[0]) == 40} == set(fresh)  # deltas resolved too
    names = {1: "commit", 2: "tree", 3: "blob"}
    for sha, (kind, body) in fresh.items():
        assert _git(source, "cat-file", names[kind], sha.hex()) == body
    monkeypatch.setattr(packstore, "FRESH_BYTES", 600)
    small: dict[bytes, tuple[int, bytes]] = {}
    (pack_dir / "tmp_pack_answer_b").write_bytes(data)
    assert store_pack(str(pack_dir), str(pack_dir / "tmp_pack_answer_b"), "test/repo", small)
    assert small and sum(len(body) for _, body in small.values()) < 600 and set(small) < set(fresh)
    thin: dict[bytes, tuple[int, bytes]] = {}
    (pack_dir / "tmp_pack_answer_c").write_bytes(_pack(source, "--thin", revs=b"HEAD\n^HEAD~1\n"))
    assert not store_pack(str(pack_dir), str(pack_dir / "tmp_pack_answer_c"), "test/repo", thin)
    assert not thin  # nothing kept: nothing of it is in the repository
