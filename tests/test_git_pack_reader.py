"""The bulk pack reader (lfsreg/git/packs.py, RawObjects, BulkSnapshot) against packs stock git writes.

``lfsreg`` packs with dulwich, which stores whole objects; a registry that went through a
host (a fetch) or ``git gc`` holds deltas: ``OFS_DELTA`` by default, ``REF_DELTA`` when
``repack.useDeltaBaseOffset`` is off. Every object is read back through the bulk reader and
compared with what dulwich reads; ``du`` and ``verify`` give the same answers as before the
repack; a damaged packed object is named, not misread.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import fixture, run_cli
from dulwich.repo import Repo

import lfsreg
from lfsreg.git import packs
from lfsreg.git.bulk import BulkSnapshot, RawObjects
from lfsreg.git.store import GitStore
from lfsreg.registry import layout

APP = "docker-archive:" + str(fixture("app.docker.tar"))
TOOL = "docker-archive:" + str(fixture("tool.docker.tar"))


def _registry(path: Path) -> Path:
    """A registry with history: several pushes and retags, so trees change a little each commit (delta material)."""
    reg = lfsreg.Registry(str(path))
    reg.push([APP])
    reg.push([TOOL])
    for k in range(6):
        reg.push([APP], tags=[f"acme/app:v{k}"])
        reg.push([TOOL], tags=[f"acme/tool:v{k}"])
    return path


def _repack(path: Path, *config: str) -> None:
    subprocess.run(["git", *config, "-C", str(path), "repack", "-adf", "--depth=50", "--window=50"], check=True, capture_output=True)


def _delta_count(path: Path) -> int:
    (idx,) = (path / "objects" / "pack").glob("*.idx")
    out = subprocess.run(["git", "verify-pack", "-v", str(idx)], check=True, capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if len(line.split()) == 7 and line.split()[0] != "chain")


def _every_object(path: Path) -> dict[bytes, tuple[int, bytes]]:
    repo = Repo(str(path))
    return {
        bytes(sha): (kind, b"".join(data) if isinstance(data, list) else data)
        for sha in repo.object_store
        for kind, data in [repo.object_store.get_raw(sha)]
    }


@pytest.mark.parametrize("searches", [0, 10**9], ids=["table", "search"])  # how the index is looked up (packs._SEARCHES)
@pytest.mark.parametrize("config", [(), ("-c", "repack.useDeltaBaseOffset=false")], ids=["ofs-delta", "ref-delta"])
def test_every_object_of_a_deltified_pack_reads_as_dulwich_reads_it(tmp_path, monkeypatch, config, searches):
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(packs, "_SEARCHES", searches)
    repo = _registry(tmp_path / "reg.git")
    _repack(repo, *config)
    assert not [n for n in os.listdir(repo / "objects") if len(n) == 2 and os.listdir(repo / "objects" / n)]  # all packed
    assert _delta_count(repo) > 10  # the pack really holds deltas
    expected = _every_object(repo)
    raw = RawObjects(GitStore.open(str(repo)).objects, check=True)
    try:
        for sha, (kind, data) in expected.items():
            if kind in (2, 3):
                assert raw.raw(sha, kind) == data, sha
        assert raw._packs, "the pack was read by the bulk reader, not by the fallback"
        # many at once, in pack order, answered in the order asked; what is not a blob there is None
        asked = [*reversed(expected), b"0" * 40, b"not hex"]
        assert raw.many(asked, 3) == [expected[s][1] if expected[s][0] == 3 else None for s in reversed(expected)] + [None, None]
    finally:
        raw.close()


def test_du_and_verify_answer_the_same_after_git_repacks_with_deltas(tmp_path, monkeypatch):
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))
    repo = _registry(tmp_path / "reg.git")
    before_du = run_cli("du", repo, "--format", "json")
    before_verify = run_cli("verify", repo, "--format", "json")
    assert before_du.returncode == 0 and before_verify.returncode == 0, before_verify.stdout
    _repack(repo)
    assert _delta_count(repo) > 10
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache2"))  # no memo: every object is read again
    after_du = run_cli("du", repo, "--format", "json")
    after_verify = run_cli("verify", repo, "--format", "json")
    du_a, du_b = json.loads(before_du.stdout), json.loads(after_du.stdout)
    for du in (du_a, du_b):
        du["registry"].pop("git_bytes")  # the repack changed the object files' size
    assert du_a == du_b
    assert json.loads(after_verify.stdout) == json.loads(before_verify.stdout)
    assert json.loads(after_verify.stdout)["problems"] == []


def test_a_damaged_packed_object_is_named_by_verify(tmp_path, monkeypatch):
    monkeypatch.setenv("LFSREG_CACHE", str(tmp_path / "cache"))
    repo = _registry(tmp_path / "reg.git")
    subprocess.run(["git", "-C", str(repo), "repack", "-adf", "--depth=0"], check=True, capture_output=True)  # whole objects
    git = GitStore.open(str(repo))
    snap = git.snapshot(git.head())
    digest = layout.parse_tag(snap.read(layout.NEW.tag_path("acme/app", "1.0")))
    sha = snap._entry(layout.NEW.path("blobs", digest))[1]
    (idx,) = (repo / "objects" / "pack").glob("*.idx")
    listing = subprocess.run(["git", "verify-pack", "-v", str(idx)], check=True, capture_output=True, text=True).stdout
    offset, packed = next((int(f[4]), int(f[3])) for f in (line.split() for line in listing.splitlines()) if f and f[0] == sha.decode())
    pack = idx.with_suffix(".pack")
    data = bytearray(pack.read_bytes())
    data[offset + packed - 3] ^= 0xFF  # inside the zlib stream (its checksum): the object no longer inflates right
    os.chmod(pack, 0o644)
    pack.write_bytes(bytes(data))
    result = run_cli("verify", repo)
    assert result.returncode == 1
    assert f"git object {sha.decode()}" in result.stdout + result.stderr and "is damaged" in result.stdout + result.stderr
    with BulkSnapshot(git.snapshot(git.head())) as bulk, pytest.raises(lfsreg.LfsregError, match="is damaged"):
        bulk.blob(sha)
