"""The ``file://`` LFS store (``lfsreg.lfs.filestore``): another bare repository's ``lfs/objects``.

Every way a copy in or out can go wrong ends in one named error, with nothing half-written in
the cache or the remote: a missing object, a damaged one (other bytes, too short, too long),
a path that cannot be read or written, an object already there, and two writers of one object.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from conftest import concurrently

from lfsreg.errors import BlobNotFound, CorruptContentError, LocalStorageError
from lfsreg.formats.lfs_pointer import LfsObject
from lfsreg.lfs.cache import ObjectCache
from lfsreg.lfs.filestore import FileRemote, FileRemoteLfsStore
from lfsreg.progress import ProgressEvent

DATA = os.urandom(3000) + b"lfsreg filestore test"


def _obj(data: bytes = DATA) -> LfsObject:
    return LfsObject(hashlib.sha256(data).hexdigest(), len(data))


def _remote_file(remote: Path, obj: LfsObject) -> Path:
    return remote / "lfs" / "objects" / obj.oid[:2] / obj.oid[2:4] / obj.oid


def _put(remote: Path, obj: LfsObject, data: bytes) -> Path:
    path = _remote_file(remote, obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _staged(tmp_path: Path, data: bytes = DATA) -> str:
    path = tmp_path / f"staged-{hashlib.sha256(data).hexdigest()[:8]}"
    path.write_bytes(data)
    return str(path)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    path.mkdir()
    return path


@pytest.fixture
def cache(tmp_path: Path) -> ObjectCache:
    return ObjectCache(str(tmp_path / "cache"))


def test_round_trip_and_progress(tmp_path: Path, remote: Path, cache: ObjectCache) -> None:
    obj = _obj()
    events: list[ProgressEvent] = []
    store = FileRemoteLfsStore(str(remote), cache, "file:///r")
    assert store.missing([obj]) == [obj]
    FileRemote(str(remote), "file:///r").upload([(obj, _staged(tmp_path))], events.append)
    assert _remote_file(remote, obj).read_bytes() == DATA
    assert store.missing([obj]) == []
    store.fetch([obj], events.append)
    with store.open(obj) as f:
        assert f.read() == DATA
    assert [(e.action, e.done) for e in events if e.done] == [("stored", True), ("download", True)]
    assert sum(e.delta for e in events if e.action == "download") == len(DATA)
    assert _files(remote / "lfs" / "tmp") == [] and _files(Path(cache.tmp)) == []


def test_missing_object_is_named_and_nothing_is_cached(remote: Path, cache: ObjectCache) -> None:
    obj = _obj()
    store = FileRemoteLfsStore(str(remote), cache, "file:///r")
    with pytest.raises(BlobNotFound, match=f"LFS object sha256:{obj.oid} .*is missing"):
        store.fetch([obj])
    assert not cache.valid(obj)
    assert _files(Path(cache.root)) == []


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: bytes([d[0] ^ 1]) + d[1:], id="other-bytes"),
        pytest.param(lambda d: d[:-1], id="too-short"),
        pytest.param(lambda d: d + b"x", id="too-long"),
    ],
)
def test_corrupt_object_is_named_and_nothing_is_cached(remote: Path, cache: ObjectCache, damage) -> None:
    obj = _obj()
    _put(remote, obj, damage(DATA))
    store = FileRemoteLfsStore(str(remote), cache, "file:///r")
    with pytest.raises(CorruptContentError) as info:
        store.fetch([obj])
    text = str(info.value)
    assert text.startswith(f"file:///r: LFS object sha256:{obj.oid} is corrupt on the remote: ")
    assert "\n" not in text and text.count("file:///r") == 1, text
    assert not cache.valid(obj)
    assert _files(Path(cache.root)) == []  # no temporary file, no entry


def test_unreadable_object_is_a_storage_error_naming_it(remote: Path, cache: ObjectCache) -> None:
    """The object's path cannot be read (a directory there; as root, permissions would not stop a read)."""
    obj = _obj()
    _remote_file(remote, obj).mkdir(parents=True)
    with pytest.raises(LocalStorageError, match=f"sha256:{obj.oid}: cannot copy it .*{obj.oid}.*: Is a directory"):
        FileRemoteLfsStore(str(remote), cache, "file:///r").fetch([obj])
    assert _files(Path(cache.root)) == []


def test_unwritable_remote_directory_is_a_storage_error_naming_it(tmp_path: Path, remote: Path) -> None:
    """The remote's ``lfs/objects`` is not a directory: the upload names the object, leaves no temporary file."""
    obj = _obj()
    (remote / "lfs").mkdir()
    (remote / "lfs" / "objects").write_bytes(b"not a directory")
    staged = _staged(tmp_path)
    with pytest.raises(LocalStorageError, match=f"sha256:{obj.oid}: cannot write it .*: Not a directory"):
        FileRemote(str(remote), "file:///r").upload([(obj, staged)])
    assert _files(remote / "lfs" / "tmp") == []
    assert Path(staged).read_bytes() == DATA  # the staged copy stays for the cache


def test_staged_file_that_changed_is_refused_and_not_placed(tmp_path: Path, remote: Path) -> None:
    obj = _obj()
    staged = _staged(tmp_path, DATA[:-1] + b"?")
    with pytest.raises(CorruptContentError, match=f"sha256:{obj.oid}"):
        FileRemote(str(remote), "file:///r").upload([(obj, staged)])
    assert not _remote_file(remote, obj).exists()
    assert _files(remote / "lfs" / "tmp") == []


def test_existing_object_is_not_copied_again(tmp_path: Path, remote: Path) -> None:
    obj = _obj()
    path = _put(remote, obj, DATA)
    before = os.stat(path)
    events: list[ProgressEvent] = []
    FileRemote(str(remote), "file:///r").upload([(obj, _staged(tmp_path))], events.append)
    after = os.stat(path)
    # the same file, not copied again (only its time is refreshed, as git refreshes an object it reuses: gc's grace)
    assert after.st_ino == before.st_ino and path.read_bytes() == DATA
    assert [(e.action, e.done) for e in events] == [("stored", True)]


def test_existing_object_of_the_wrong_size_is_replaced(tmp_path: Path, remote: Path) -> None:
    obj = _obj()
    _put(remote, obj, DATA[:100])  # a truncated copy (an interrupted tool): the store counts it as missing
    FileRemote(str(remote), "file:///r").upload([(obj, _staged(tmp_path))])
    assert _remote_file(remote, obj).read_bytes() == DATA


def test_two_writers_of_one_object_both_succeed(tmp_path: Path, remote: Path) -> None:
    """Both writers find the object missing before either places it (forced by a barrier); both copies land intact."""
    obj = _obj()
    barrier = threading.Barrier(2, timeout=30)
    saw_missing: list[bool] = []

    def writer(i: int) -> None:
        remote_store = FileRemote(str(remote), f"writer{i}")
        inner = remote_store._remote.missing

        def missing_then_wait(objects):  # the race window: between the check and the copy
            found = inner(objects)
            saw_missing.append(bool(found))
            barrier.wait()
            return found

        remote_store._remote.missing = missing_then_wait  # type: ignore[method-assign]
        remote_store.upload([(obj, _staged(tmp_path / f"w{i}", DATA))])

    for i in range(2):
        (tmp_path / f"w{i}").mkdir()
    assert concurrently(writer, 2, timeout=60) == []
    assert saw_missing == [True, True]  # the race really happened: both copied
    assert _remote_file(remote, obj).read_bytes() == DATA
    assert _files(remote / "lfs" / "tmp") == []
