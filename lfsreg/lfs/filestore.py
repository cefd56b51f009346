"""LFS objects of a ``file://`` remote: another bare repository's ``lfs/objects``, read through the cache.

This is how a remote registry on a host behaves (objects are copied in and out, the local
cache makes repeated pulls free), with a directory standing in for the LFS server.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from ..digest import CHUNK
from ..errors import DigestMismatchError
from ..formats.lfs_pointer import LfsObject
from ..progress import ProgressCallback, ProgressEvent, no_progress
from .cache import ObjectCache
from .store import LocalLfsStore


class FileRemoteLfsStore:
    """A remote bare repository's LFS directory, with downloads kept in an :class:`ObjectCache`."""

    def __init__(self, git_dir: str, cache: ObjectCache, label: str) -> None:
        self._remote = LocalLfsStore(git_dir)
        self._cache = cache
        self.label = label

    def missing(self, objects: Sequence[LfsObject]) -> list[LfsObject]:
        """Objects the remote lacks."""
        return self._remote.missing(objects)

    @contextlib.contextmanager
    def staging(self) -> Iterator[tuple[BinaryIO, str]]:
        """Stage in the cache, so an uploaded object is also cached."""
        with self._cache.staging() as staged:
            yield staged

    def upload(self, items: Sequence[tuple[LfsObject, str]], progress: ProgressCallback = no_progress) -> None:
        """Copy each staged file to the remote (atomically), then keep it in the cache."""
        for obj, staged in items:
            if self._remote.missing([obj]):
                target = self._remote.path(obj)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix="lfsreg-", dir=os.path.dirname(target))
                os.close(fd)
                try:
                    shutil.copyfile(staged, tmp)
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, target)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                    raise
            self._cache.adopt(obj, staged)
            progress(ProgressEvent(f"sha256:{obj.oid}", "stored", obj.size, 0, True))

    def fetch(self, objects: Sequence[LfsObject], progress: ProgressCallback = no_progress) -> None:
        """Copy objects that are not validly cached from the remote, hashing as they are written."""
        for obj in objects:
            if self._cache.valid(obj):
                continue
            key = f"sha256:{obj.oid}"
            progress(ProgressEvent(key, "download", obj.size))
            with self._remote.open(obj) as src, self._cache.staging() as (out, path):
                h = hashlib.sha256()
                count = 0
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    count += len(chunk)
                    progress(ProgressEvent(key, "download", obj.size, len(chunk)))
                out.flush()
                if count != obj.size or h.hexdigest() != obj.oid:
                    raise DigestMismatchError(f"{self.label}: LFS object sha256:{obj.oid} is corrupt on the remote")
                self._cache.adopt(obj, path)
            progress(ProgressEvent(key, "download", obj.size, 0, True))

    def open(self, obj: LfsObject) -> BinaryIO:
        """Open the cached copy (call :meth:`fetch` first)."""
        return self._cache.open(obj, self.label)
