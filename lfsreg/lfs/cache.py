"""The local content-addressed cache of LFS objects (``$XDG_CACHE_HOME/lfsreg/lfs``).

Entries appear only by atomic rename after their hash was checked, and are re-hashed before
use: a corrupted entry is deleted and fetched again, never served.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import BinaryIO

from ..digest import CHUNK
from ..errors import BlobNotFound
from ..formats.lfs_pointer import LfsObject
from ..integrity import staged_file


def cache_root() -> str:
    """``$XDG_CACHE_HOME/lfsreg`` (default ``~/.cache/lfsreg``), or ``$LFSREG_CACHE`` if set."""
    explicit = os.environ.get("LFSREG_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lfsreg")


class ObjectCache:
    """LFS objects laid out as git-lfs does: ``objects/<oid[0:2]>/<oid[2:4]>/<oid>``."""

    def __init__(self, root: str) -> None:
        self.root = root

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
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except FileNotFoundError:
            return False
        if h.hexdigest() != obj.oid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return False
        return True

    def staging(self) -> contextlib.AbstractContextManager[tuple[BinaryIO, str]]:
        """A temporary file in the cache (removed on error)."""
        return staged_file(os.path.join(self.root, "tmp"))

    def adopt(self, obj: LfsObject, staged: str) -> None:
        """Move a verified staged file into place."""
        target = self.path(obj)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.chmod(staged, 0o644)
        os.replace(staged, target)

    def open(self, obj: LfsObject, label: str = "cache") -> BinaryIO:
        """Open an entry (callers verify what they read); :class:`BlobNotFound` if it was not fetched."""
        try:
            return open(self.path(obj), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(f"{label}: LFS object sha256:{obj.oid} was not fetched") from exc
