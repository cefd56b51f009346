"""The LFS store protocol, the local store, and the one cache-backed store for every remote.

A local registry keeps LFS objects where stock git-lfs keeps them for a local remote:
``<bare repo>/lfs/objects/<oid[0:2]>/<oid[2:4]>/<oid>``, with temporary files in
``<bare repo>/lfs/tmp`` (swept of dead processes' files when a store is opened). Objects
appear only by atomic rename, complete and verified.

Every remote store (HTTP, SSH, ``file://``) is a :class:`CachedLfsStore`: layers are staged
in the local object cache, uploaded from there and kept there, and downloads land there;
what differs between remotes is a small :class:`Remote` (what is missing, moving objects).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from typing import BinaryIO, Protocol

from ..errors import BlobNotFound
from ..formats.lfs_pointer import LfsObject
from ..progress import ProgressCallback, ProgressEvent, no_progress
from ..staging import VerifiedWriter, place, staged_file, sweep_once
from .cache import ObjectCache

log = logging.getLogger(__name__)


class LfsStore(Protocol):
    """Where a registry's layer blobs live.

    Call order for a push: ``staging()`` files are written and verified by the caller, then
    ``upload()`` makes them durable in the store; only after it returns may a ref point at them.
    """

    label: str

    def missing(self, objects: Sequence[LfsObject]) -> list[LfsObject]:
        """The objects the store does not hold (complete, with the right size)."""
        ...

    def probe(self, objects: Sequence[LfsObject]) -> list[tuple[LfsObject, str]]:
        """The objects the store cannot serve, each with why (missing, another size); nothing is read."""
        ...

    def staging(self) -> contextlib.AbstractContextManager[tuple[VerifiedWriter, str]]:
        """A temporary file (handle, path) to write an object into before ``upload``."""
        ...

    def upload(self, items: Sequence[tuple[LfsObject, str]], progress: ProgressCallback = no_progress) -> None:
        """Store each staged file as its object; the staged files are consumed."""
        ...

    def fetch(self, objects: Sequence[LfsObject], progress: ProgressCallback = no_progress) -> None:
        """Make ``objects`` readable locally (download into the cache); a no-op for local stores."""
        ...

    def open(self, obj: LfsObject) -> BinaryIO:
        """Open an object for reading (raw, unverified); :class:`BlobNotFound` if absent."""
        ...


class LocalLfsStore:
    """LFS objects inside a local bare repository, laid out as git-lfs does."""

    def __init__(self, git_dir: str) -> None:
        self.root = os.path.join(git_dir, "lfs")
        self.label = git_dir
        sweep_once(os.path.join(self.root, "tmp"))  # what killed processes left

    def path(self, obj: LfsObject) -> str:
        """The file that holds ``obj``."""
        return os.path.join(self.root, "objects", obj.oid[0:2], obj.oid[2:4], obj.oid)

    def _present(self, obj: LfsObject) -> bool:
        path = self.path(obj)
        try:
            if os.path.getsize(path) != obj.size:
                return False
        except OSError:
            return False
        # Refresh its time, as git refreshes an object it reuses: a push about to reference it
        # keeps `lfsreg gc` (which deletes only unreferenced objects older than its grace) off it.
        with contextlib.suppress(OSError):
            os.utime(path)
        return True

    def missing(self, objects: Sequence[LfsObject]) -> list[LfsObject]:
        """Objects with no file of the right size."""
        return [o for o in objects if not self._present(o)]

    def probe(self, objects: Sequence[LfsObject]) -> list[tuple[LfsObject, str]]:
        """Objects with no file, or a file of another size (one ``stat`` each)."""
        out = []
        base = os.path.join(self.root, "objects", "")
        for obj in objects:
            oid = obj.oid
            try:
                size = os.stat(f"{base}{oid[0:2]}/{oid[2:4]}/{oid}").st_size  # self.path(obj), without a join per object
            except FileNotFoundError:
                out.append((obj, "missing"))
                continue
            except OSError as exc:
                out.append((obj, f"unreadable ({exc.strerror or exc})"))
                continue
            if size != obj.size:
                out.append((obj, f"has {size} bytes, expected {obj.size}"))
        return out

    def staging(self) -> contextlib.AbstractContextManager[tuple[VerifiedWriter, str]]:
        """A temporary file under ``lfs/tmp`` (same file system, so upload is a rename)."""
        return staged_file(os.path.join(self.root, "tmp"))

    def upload(self, items: Sequence[tuple[LfsObject, str]], progress: ProgressCallback = no_progress) -> None:
        """Rename each staged file into place (an existing complete object wins)."""
        for obj, staged in items:
            if os.path.getsize(staged) != obj.size:
                raise BlobNotFound(f"staged file for sha256:{obj.oid} has the wrong size")
            place(staged, self.path(obj))
            progress(ProgressEvent(f"sha256:{obj.oid}", "stored", obj.size, 0, True))

    def fetch(self, objects: Sequence[LfsObject], progress: ProgressCallback = no_progress) -> None:
        """Nothing to fetch: the objects are already on this disk."""

    def open(self, obj: LfsObject) -> BinaryIO:
        """Open the object's file."""
        try:
            return open(self.path(obj), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(
                f"{self.label}: LFS object sha256:{obj.oid} ({obj.size} bytes) is missing",
                hint="push the image again, or run `git lfs push --all` from a clone that has it",
            ) from exc


class Remote(Protocol):
    """What differs between remote LFS stores: asking what is missing, and moving objects."""

    label: str

    def missing(self, objects: Sequence[LfsObject]) -> list[LfsObject]:
        """The objects the server lacks."""
        ...

    def probe(self, objects: Sequence[LfsObject]) -> list[tuple[LfsObject, str]]:
        """The objects the server cannot serve, with why (asked as for a download; nothing is downloaded)."""
        ...

    def upload(self, items: Sequence[tuple[LfsObject, str]], progress: ProgressCallback = no_progress) -> None:
        """Send the files the server lacks; the files stay where they are."""
        ...

    def download(self, objects: Sequence[LfsObject], cache: ObjectCache, progress: ProgressCallback = no_progress) -> None:
        """Fetch ``objects`` into ``cache``, each verified before it appears there."""
        ...


class CachedLfsStore:
    """:class:`LfsStore` of a remote, with staging and downloads in a local :class:`ObjectCache`.

    Uploaded files are kept in the cache (so a pull right after a push is free); fetching
    skips objects the cache holds intact.
    """

    def __init__(self, remote: Remote, cache: ObjectCache, label: str | None = None) -> None:
        self.remote = remote
        self.cache = cache
        self.label = label or remote.label

    def missing(self, objects: Sequence[LfsObject]) -> list[LfsObject]:
        """Objects the remote lacks."""
        return self.remote.missing(objects) if objects else []

    def probe(self, objects: Sequence[LfsObject]) -> list[tuple[LfsObject, str]]:
        """Objects the remote cannot serve, with why (the cache is not consulted)."""
        return self.remote.probe(objects) if objects else []

    def staging(self) -> contextlib.AbstractContextManager[tuple[VerifiedWriter, str]]:
        """Stage in the cache, so an uploaded object is also cached."""
        return self.cache.staging()

    def upload(self, items: Sequence[tuple[LfsObject, str]], progress: ProgressCallback = no_progress) -> None:
        """Upload what the remote lacks, check that it holds them all, then cache every staged file.

        :class:`BlobNotFound` if the remote still lacks an object after a second upload of it.
        """
        if items:
            self.remote.upload(items, progress)
            lacking = {o.oid for o in self.remote.missing([o for o, _ in items])}
            if lacking:
                # A server that writes objects in place (giftless's local storage) shows a
                # concurrent pusher's half-written copy as missing after ours was verified: send
                # ours once more, and give up only if it is still missing after that.
                log.info("%s: %d object(s) missing right after upload; uploading them again", self.label, len(lacking))
                again = [(o, staged) for o, staged in items if o.oid in lacking]
                self.remote.upload(again, progress)
                still = self.remote.missing([o for o, _ in again])
                if still:
                    raise BlobNotFound(f"{self.label}: LFS objects missing after upload: {', '.join(o.oid[:12] for o in still)}")
        for obj, staged in items:
            self.cache.adopt(obj, staged)

    def fetch(self, objects: Sequence[LfsObject], progress: ProgressCallback = no_progress) -> None:
        """Download the objects that are not validly cached."""
        todo = [o for o in objects if not self.cache.valid(o)]
        if todo:
            self.remote.download(todo, self.cache, progress)

    def open(self, obj: LfsObject) -> BinaryIO:
        """Open the cached copy (call :meth:`fetch` first)."""
        return self.cache.open(obj, self.label)
