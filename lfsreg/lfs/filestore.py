"""LFS objects of a ``file://`` remote: another bare repository's ``lfs/objects``, read through the cache.

This is how a remote registry on a host behaves (objects are copied in and out, the local
cache makes repeated pulls free), with a directory standing in for the LFS server.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Sequence

from ..errors import CorruptContentError, LfsregError, LocalStorageError
from ..formats.lfs_pointer import LfsObject
from ..progress import ProgressCallback, ProgressEvent, no_progress
from ..staging import VerifiedWriter, temp_path
from .cache import ObjectCache
from .store import CachedLfsStore, LocalLfsStore


def _step(progress: ProgressCallback, key: str, size: int, n: int) -> None:
    progress(ProgressEvent(key, "download", size, n))


def _storage_error(what: str, verb: str, exc: OSError) -> LocalStorageError:
    """One line naming the object and why the remote directory could not be read or written."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return LocalStorageError(
        f"{what}: cannot {verb} it" + (f" ({exc.filename})" if exc.filename else "") + f": {reason}",
        hint="free some space and run the command again" if full else None,
    )


class FileRemote:
    """:class:`lfsreg.lfs.store.Remote` for a bare repository's LFS directory on this machine."""

    def __init__(self, git_dir: str, label: str) -> None:
        self._remote = LocalLfsStore(git_dir)
        self.label = label

    def missing(self, objects: Sequence[LfsObject]) -> list[LfsObject]:
        """Objects the remote lacks."""
        return self._remote.missing(objects)

    def probe(self, objects: Sequence[LfsObject]) -> list[tuple[LfsObject, str]]:
        """Objects the remote has no file of the right size for, with why."""
        return self._remote.probe(objects)

    def upload(self, items: Sequence[tuple[LfsObject, str]], progress: ProgressCallback = no_progress) -> None:
        """Copy each staged file the remote lacks into it (verified, renamed atomically)."""
        for obj, staged in items:
            if self._remote.missing([obj]):
                # Another writer may place the same object meanwhile: both copies are verified
                # and renamed atomically, so whichever rename comes last leaves the same bytes.
                target = self._remote.path(obj)
                what = f"{self.label}: LFS object sha256:{obj.oid}"
                try:
                    tmp = temp_path(os.path.join(self._remote.root, "tmp"))
                    with VerifiedWriter(tmp, target, obj.oid, obj.size, what) as out, open(staged, "rb") as src:
                        out.copy_from(src)
                        out.commit()
                except LfsregError:
                    raise  # e.g. the staged file changed under us: named by the writer
                except OSError as exc:
                    raise _storage_error(what, "write", exc) from exc
            progress(ProgressEvent(f"sha256:{obj.oid}", "stored", obj.size, 0, True))

    def download(self, objects: Sequence[LfsObject], cache: ObjectCache, progress: ProgressCallback = no_progress) -> None:
        """Copy objects into the cache, hashing as they are written."""
        for obj in objects:
            key = f"sha256:{obj.oid}"
            what = f"{self.label}: LFS object sha256:{obj.oid}"
            progress(ProgressEvent(key, "download", obj.size))
            try:
                with self._remote.open(obj) as src, cache.writer(obj, what) as out:
                    out.copy_from(src, functools.partial(_step, progress, key, obj.size))
                    out.commit()
            except CorruptContentError as exc:  # too long, too short, or other bytes: nothing cached
                detail = str(exc).removeprefix(f"{what}: ")
                raise CorruptContentError(f"{what} is corrupt on the remote: {detail}") from exc
            except LfsregError:
                raise
            except OSError as exc:
                raise _storage_error(what, "copy", exc) from exc
            progress(ProgressEvent(key, "download", obj.size, 0, True))


class FileRemoteLfsStore(CachedLfsStore):
    """A remote bare repository's LFS directory, with downloads kept in an :class:`ObjectCache`."""

    def __init__(self, git_dir: str, cache: ObjectCache, label: str) -> None:
        super().__init__(FileRemote(git_dir, label), cache, label)
