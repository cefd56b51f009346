"""The bulk pack reader (lfsreg/git/packs.py) on what a walk of a registry rarely meets: big and long
delta chains, a base that is missing, and files that are not what their names say.

Packs are written by stock git (``git repack``) and then damaged byte by byte, so every answer is
about a real pack: the reader either reads what git wrote or names the damage; it never misreads.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
from pathlib import Path

import pytest
from dulwich.repo import Repo
from gitenv import isolated_git_env

from lfsreg.errors import BlobNotFound, CorruptContentError
from lfsreg.git import packs
from lfsreg.git.bulk import RawObjects
from lfsreg.git.packs import PackReader, open_packs
from lfsreg.git.store import GitStore


def _pack_of(tmp_path: Path, blobs: list[bytes], ofs_delta: bool = True) -> tuple[Path, Path, dict[bytes, bytes]]:
    """A bare repository holding ``blobs``, packed by stock git with deltas; (idx, pack, id -> content)."""
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True, env=env)
    ids = {}
    for blob in blobs:
        out = subprocess.run(["git", "-C", str(repo), "hash-object", "-w", "--stdin"], input=blob, check=True, capture_output=True, env=env)
        ids[bytes.fromhex(out.stdout.decode().strip())] = blob
    argv = ["git", "-C", str(repo), "pack-objects", "-q", "--window=300", "--depth=300", "objects/pack/pack"]
    wanted = "".join(sha.hex() + "\n" for sha in ids).encode()
    subprocess.run([*argv, *(["--delta-base-offset"] if ofs_delta else [])], input=wanted, check=True, capture_output=True, env=env)
    (idx,) = (repo / "objects" / "pack").glob("*.idx")
    return idx, idx.with_suffix(".pack"), ids


def _lookup(repo_dir: Path):
    store = Repo(str(repo_dir)).object_store

    def lookup(sha: bytes) -> tuple[int, bytes]:
        kind, data = store.get_raw(sha.hex().encode())
        return kind, data

    return lookup


def _text(rng: random.Random, n: int) -> bytes:
    return bytes(rng.choice(b"abcdefghij \n") for _ in range(n))


def test_a_delta_whose_result_is_big_reads_exactly(tmp_path):
    """Results over 64 KiB are not kept as bases (the cache holds small registry documents), yet read right."""
    rng = random.Random(1)
    base = _text(rng, 200_000)
    blobs = [base, base[:1000] + b"changed" + base[1000:], base + b"tail"]
    idx, pack, ids = _pack_of(tmp_path, blobs)
    reader = PackReader(str(idx), str(pack))
    lookup = _lookup(tmp_path / "r.git")
    for sha, content in ids.items():
        offset = reader.offset(sha)
        assert offset is not None
        assert reader.read(offset, lookup) == (3, content)
    assert all(len(data) <= packs._BASE_BYTES for _, data in reader._bases.values())
    reader.close()


def test_a_long_delta_chain_reads_exactly_with_a_bounded_base_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(packs, "_BASES", 8)
    rng = random.Random(2)
    doc = _text(rng, 3000)
    blobs = []
    for k in range(60):
        doc = doc[: 50 * k] + b"%d" % k + doc[50 * k :]
        blobs.append(doc)
    idx, pack, ids = _pack_of(tmp_path, blobs)
    reader = PackReader(str(idx), str(pack))
    lookup = _lookup(tmp_path / "r.git")
    for sha, content in ids.items():
        assert reader.read(reader.offset(sha), lookup) == (3, content)
    assert 0 < len(reader._bases) <= 8  # bases were kept, and old ones dropped
    reader.close()


def test_a_ref_delta_whose_base_is_missing_is_named(tmp_path):
    rng = random.Random(3)
    base = _text(rng, 5000)
    idx, pack, ids = _pack_of(tmp_path, [base, base + b"more"], ofs_delta=False)
    reader = PackReader(str(idx), str(pack))
    errors = []
    for sha in ids:
        try:
            reader.read(reader.offset(sha), lambda _sha: None)
        except CorruptContentError as exc:
            errors.append(str(exc))
    assert len(errors) == 1 and "base of the delta" in errors[0] and "is missing" in errors[0]
    reader.close()


def test_an_object_header_with_an_impossible_type_is_named(tmp_path):
    idx, pack, ids = _pack_of(tmp_path, [b"one small blob\n"])
    reader = PackReader(str(idx), str(pack))
    (sha,) = ids
    offset = reader.offset(sha)
    reader.close()
    data = bytearray(pack.read_bytes())
    data[offset] = (data[offset] & 0x8F) | (5 << 4)  # type 5 is reserved: no whole object has it
    pack.write_bytes(bytes(data))
    reader = PackReader(str(idx), str(pack))
    with pytest.raises(CorruptContentError, match="bad header"):
        reader.read(offset, lambda _sha: None)
    reader.close()


def test_files_that_are_not_an_index_or_a_pack_are_left_to_dulwich(tmp_path):
    idx, pack, _ids = _pack_of(tmp_path, [b"x\n", b"y\n"])
    good_idx = idx.read_bytes()
    for name, damage in [
        ("version 1 index", lambda: idx.write_bytes(b"\0" * 1100)),
        ("truncated index", lambda: idx.write_bytes(good_idx[: 8 + 1024 + 40])),
    ]:
        damage()
        with pytest.raises(ValueError, match=r"not a version 2 pack index|truncated"):
            PackReader(str(idx), str(pack))
        assert open_packs(str(pack.parent.parent)) == [], name  # skipped: dulwich reads such a pack
    idx.write_bytes(good_idx)
    pack.write_bytes(b"JUNK" + pack.read_bytes()[4:])
    with pytest.raises(ValueError, match="not a pack"):
        PackReader(str(idx), str(pack))


def test_the_index_search_finds_every_id_and_nothing_between_them(tmp_path, monkeypatch):
    """Before the table is built, ids are searched in the index's bytes: only whole, aligned ids match."""
    monkeypatch.setattr(packs, "_SEARCHES", 10**9)
    idx, pack, ids = _pack_of(tmp_path, [b"blob %d\n" % k for k in range(40)])
    reader = PackReader(str(idx), str(pack))
    table = dict(zip([reader._ids[i : i + 20] for i in range(0, len(reader._ids), 20)], reader._where, strict=True))
    for sha in ids:
        assert reader.offset(sha) == table[sha] and reader.get(sha, lambda _sha: None)[1] == ids[sha]
    assert reader.offset(b"\xff" * 20) is None and reader.offset(b"\0" * 20) is None and reader.offset(b"short") is None
    assert reader._offsets is None  # all of it by search
    reader.close()

    # Three ids whose bytes hold a fourth, straddling two of them inside the first byte's range.
    a, b, c = b"\1" * 20, b"\1" * 19 + b"\2", b"\1" * 18 + b"\2\7"
    fanout = struct.pack(">256I", 0, *([3] * 255))
    index = b"\377tOc\0\0\0\2" + fanout + a + b + c + b"\0" * 12 + struct.pack(">3I", 12, 40, 80) + b"\0" * 40
    (tmp_path / "x.idx").write_bytes(index)
    (tmp_path / "x.pack").write_bytes(b"PACK" + b"\0" * 100)
    reader = PackReader(str(tmp_path / "x.idx"), str(tmp_path / "x.pack"))
    assert [reader.offset(sha) for sha in (a, b, c)] == [12, 40, 80]
    assert reader.offset(b[1:] + c[:1]) is None  # found at byte 21 of the ids: not an id
    reader.close()


def test_a_commit_is_read_from_its_header_whatever_its_message(tmp_path):
    """RawObjects.commit: tree and parents of a packed commit from its first bytes, and of every other one in full."""
    env = isolated_git_env(tmp_path)
    repo = tmp_path / "c.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True, env=env)

    def commit(parents: list[str], message: bytes) -> str:
        text = b"tree %s\n" % tree.encode() + b"".join(b"parent %s\n" % p.encode() for p in parents)
        text += b"author a <a@a> 0 +0000\ncommitter a <a@a> 0 +0000\n\n" + message
        argv = ["git", "-C", str(repo), "hash-object", "-t", "commit", "-w", "--stdin"]
        return subprocess.run(argv, input=text, check=True, capture_output=True, env=env).stdout.decode().strip()

    tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # the empty tree: git knows it without storing it
    first = commit([], b"first\n")
    huge = commit([first], os.urandom(300_000).hex().encode())  # a message of a push of thousands of images
    parents = [f"{k:040x}" for k in range(1, 101)]  # a header longer than what is read first (parents need not exist)
    many = commit(parents, b"octopus\n")
    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "pack-objects", "-q", "objects/pack/pack"], input=f"{first}\n{huge}\n{many}\n".encode(), check=True, env=env)
    subprocess.run([*git, "prune-packed"], check=True, env=env)
    loose = commit([huge], b"not packed yet\n")
    raw = RawObjects(GitStore.open(str(repo)).objects)
    try:
        assert raw.commit(huge.encode()) == (tree.encode(), (first,))
        assert raw.commit(many.encode()) == (tree.encode(), tuple(parents))
        assert raw.commit(loose.encode()) == (tree.encode(), (huge,))
        assert raw.commit(first.encode()) == (tree.encode(), ())
        assert raw._packs and not (repo / "objects" / huge[:2] / huge[2:]).exists()  # read from the pack
        with pytest.raises(BlobNotFound, match="is missing"):
            raw.commit(b"0" * 40)
    finally:
        raw.close()
