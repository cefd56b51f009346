"""The local content-addressed cache of LFS objects (``$XDG_CACHE_HOME/lfsreg/lfs``).

This module alone knows the cache's layout (:meth:`ObjectCache.default` is the user's)::

    objects/<oid[0:2]>/<oid[2:4]>/<oid>   verified objects (as git-lfs lays them out)
    incomplete/<oid>.part                 a download cut short, resumed with Range (one owner at a time)
    tmp/lfsreg-<pid>.<host>-*             staged layers and downloads in progress

Entries appear only by atomic rename after their hash was checked
(:class:`lfsreg.staging.VerifiedWriter`), and are re-hashed before use: a corrupted entry is
deleted and fetched again, never served. Staging files of processes that are gone are
removed when the next process opens the cache (:func:`lfsreg.staging.sweep_stale`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import BinaryIO

from ..errors import BlobNotFound, ConcurrentUpdateError
from ..formats.lfs_pointer import LfsObject
from ..staging import VerifiedWriter, file_sha256, place, staged_file, sweep_once, temp_path

log = logging.getLogger(__name__)


def cache_root() -> str:
    """``$XDG_CACHE_HOME/lfsreg`` (default ``~/.cache/lfsreg``), or ``$LFSREG_CACHE`` if set."""
    explicit = os.environ.get("LFSREG_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lfsreg")


class ObjectCache:
    """LFS objects under ``root``, laid out as the module docstring says."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.tmp = os.path.join(root, "tmp")
        sweep_once(self.tmp)  # what killed processes left

    @classmethod
    def default(cls, cache_dir: str | None = None) -> ObjectCache:
        """The user's LFS object cache: ``lfs/`` under ``cache_dir`` (default :func:`cache_root`)."""
        return cls(os.path.join(cache_dir or cache_root(), "lfs"))

    def path(self, obj: LfsObject) -> str:
        """The cache file for ``obj``."""
        return os.path.join(self.root, "objects", obj.oid[0:2], obj.oid[2:4], obj.oid)

    def valid(self, obj: LfsObject) -> bool:
        """True if the entry exists and hashes to its oid; a corrupt entry is removed."""
        path = self.path(obj)
        try:
            if os.path.getsize(path) != obj.size:
                os.unlink(path)
                return False
            oid, _ = file_sha256(path)
        except FileNotFoundError:
            return False
        if oid != obj.oid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return False
        return True

    def staging(self) -> contextlib.AbstractContextManager[tuple[VerifiedWriter, str]]:
        """A temporary file in the cache (removed on error, and by the next run if abandoned)."""
        return staged_file(self.tmp)

    def adopt(self, obj: LfsObject, staged: str) -> None:
        """Move a verified staged file into place."""
        place(staged, self.path(obj))

    def writer(self, obj: LfsObject, what: str, *, resume: bool = False) -> VerifiedWriter:
        """A :class:`VerifiedWriter` whose commit puts ``obj`` in the cache.

        With ``resume`` it appends to the object's partial download (kept when the writer is
        left by an exception), else it writes a fresh temporary file. The partial download has
        one owner at a time: while another process (or thread) downloads the same object into
        it, this writer gets a temporary file of its own (not resumable, never shared).
        """
        if resume:
            part = os.path.join(self.root, "incomplete", obj.oid + ".part")
            try:
                return VerifiedWriter(part, self.path(obj), obj.oid, obj.size, what, resume=True)
            except ConcurrentUpdateError:
                log.debug("%s: %s is being written by another download; using a file of our own", what, part)
        return VerifiedWriter(temp_path(self.tmp), self.path(obj), obj.oid, obj.size, what)

    def open(self, obj: LfsObject, label: str = "cache") -> BinaryIO:
        """Open an entry (callers verify what they read); :class:`BlobNotFound` if it was not fetched."""
        try:
            return open(self.path(obj), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(f"{label}: LFS object sha256:{obj.oid} was not fetched") from exc
