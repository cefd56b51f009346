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
    pack_dir.mkdir(parents=True, exist_ok=True)
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


# -- packs written here, in orders git does not write (a server may) -------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _entry(kind: int, size: int, payload: bytes, prefix: bytes = b"") -> bytes:
    head = bytearray([(kind << 4) | (size & 15) | (0x80 if size > 15 else 0)])
    size >>= 4
    while size:
        head.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
    return bytes(head) + prefix + zlib.compress(payload)


def _ofs(back: int) -> bytes:
    out = [back & 0x7F]
    back >>= 7
    while back:
        back -= 1
        out.append(0x80 | (back & 0x7F))
        back >>= 7
    return bytes(reversed(out))


def _delta(source: bytes, target: bytes) -> bytes:
    """A delta that copies nothing: inserts the whole target, 127 bytes at a time."""
    out = _varint(len(source)) + _varint(len(target))
    for i in range(0, len(target), 127):
        piece = target[i : i + 127]
        out += bytes([len(piece)]) + piece
    return out


def _blob_id(data: bytes) -> bytes:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).digest()


def _packed(entries: list[bytes]) -> bytes:
    body = b"PACK" + struct.pack(">II", 2, len(entries)) + b"".join(entries)
    return body + hashlib.sha1(body).digest()


def _agrees_with_git(tmp_path: Path, data: bytes) -> None:
    ok, pack_dir = _stored(tmp_path, data)
    assert ok
    (idx,) = pack_dir.glob("pack-*.idx")
    theirs = tmp_path / "theirs.pack"
    theirs.write_bytes(data)
    _git(tmp_path, "index-pack", str(theirs))
    assert idx.read_bytes() == theirs.with_suffix(".idx").read_bytes()


def test_deltas_before_their_bases_by_id(tmp_path: Path) -> None:
    """A delta naming its base by id may come before it; so may the delta its own base is (a chain resolved backwards)."""
    base, one, two = b"base content\n" * 20, b"first version\n" * 20, b"second version\n" * 20
    data = _packed(
        [
            _entry(7, len(_delta(one, two)), _delta(one, two), _blob_id(one)),  # two, against one (later)
            _entry(7, len(_delta(base, one)), _delta(base, one), _blob_id(base)),  # one, against base (later)
            _entry(3, len(base), base),
        ]
    )
    _agrees_with_git(tmp_path, data)


def test_a_chain_of_deltas_deeper_than_python_recurses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bases too big to keep (here: none kept) are resolved down the chain and back, not by recursion (a hostile chain of thousands)."""
    import sys

    from lfsreg.git import packstore

    monkeypatch.setattr(packstore, "_KEPT_BYTES", 0)
    entries, offsets = [_entry(3, 4, b"v0\n\n")], [12]
    for i in range(1, 300):
        previous, current = f"v{i - 1}\n\n".encode(), f"v{i}\n\n".encode()
        offset = offsets[-1] + len(entries[-1])
        entries.append(_entry(6, len(_delta(previous, current)), _delta(previous, current), _ofs(offset - offsets[-1])))
        offsets.append(offset)
    data = _packed(entries)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(150)
    try:
        ok, _ = _stored(tmp_path, data)
    finally:
        sys.setrecursionlimit(limit)
    assert ok
    _agrees_with_git(tmp_path / "again", data)


def test_deltas_that_wait_for_each_other_are_a_thin_pack(tmp_path: Path) -> None:
    one, two = b"one\n" * 10, b"two\n" * 10
    data = _packed(
        [
            _entry(7, len(_delta(two, one)), _delta(two, one), _blob_id(two)),
            _entry(7, len(_delta(one, two)), _delta(one, two), _blob_id(one)),
        ]
    )
    assert not _stored(tmp_path, data)[0]
